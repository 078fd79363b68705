"""Round trips between our DeLoRALinear and PEFT adapter directories."""

import copy

import pytest
import torch
from builders import ToyBlock
from peft import PeftModel

from delora_viz.delora.layer import add_delora, delora_layers
from delora_viz.delora.peft_io import load_peft_delora, save_peft_delora, save_peft_lora


def Net():
    return ToyBlock(12, 10, 3)  # q_proj, v_proj (10, 12) and `head` (3, 10)


def _trained(init, seed=0):
    torch.manual_seed(seed)
    base = Net()
    model = add_delora(copy.deepcopy(base), ["q_proj", "v_proj"], r=3, delora_lambda=2.0, init=init)
    model.head.requires_grad_(True)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    for _ in range(5):
        opt.zero_grad()
        model(torch.randn(8, 12)).logsumexp(-1).mean().backward()
        opt.step()
    return base, model


def test_peft_loads_our_delora_adapter_with_identical_outputs(tmp_path):
    base, model = _trained("peft")
    x = torch.randn(6, 12)
    save_peft_delora(model, tmp_path / "adapter", modules_to_save=["head"])
    peft_model = PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path / "adapter"))
    torch.testing.assert_close(peft_model(x), model(x), rtol=1e-6, atol=1e-6)
    lambdas = {n: layer.delora_lambda.item() for n, layer in delora_layers(model).items()}
    assert len(set(lambdas.values())) > 1  # learned per layer, and carried by the weights


def test_our_layer_loads_a_peft_adapter(tmp_path):
    base, model = _trained("peft", seed=1)
    save_peft_delora(model, tmp_path / "a", modules_to_save=["head"])
    peft_model = PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path / "a"))
    peft_model.save_pretrained(str(tmp_path / "b"))  # written by PEFT itself
    ours = load_peft_delora(copy.deepcopy(base), tmp_path / "b")
    x = torch.randn(4, 12)
    torch.testing.assert_close(ours(x), peft_model(x), rtol=1e-6, atol=1e-6)
    assert set(delora_layers(ours)) == {"q_proj", "v_proj"}


def test_a_loaded_adapter_trains_every_layer_and_its_saved_head(tmp_path):
    """Loading goes layer by layer; each layer's A, B and lambda must stay trainable (an earlier layer was
    frozen again when the next one was added), as must the modules saved with it, and nothing else."""
    base, model = _trained("peft")
    save_peft_delora(model, tmp_path / "a", modules_to_save=["head"])
    ours = load_peft_delora(copy.deepcopy(base), tmp_path / "a")
    trainable = {n for n, p in ours.named_parameters() if p.requires_grad}
    adapters = {f"{layer}.delora_{k}" for layer in ("q_proj", "v_proj") for k in ("A", "B", "lambda")}
    assert trainable == adapters | {"head.weight", "head.bias"}


def test_paper_init_exports_an_exact_rank_2r_lora(tmp_path):
    base, model = _trained("paper")
    with pytest.raises(ValueError, match="save_peft_lora"):
        save_peft_delora(model, tmp_path / "no")
    save_peft_lora(model, tmp_path / "lora", modules_to_save=["head"])
    peft_model = PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path / "lora"))
    x = torch.randn(6, 12)
    torch.testing.assert_close(peft_model(x), model(x), rtol=1e-5, atol=1e-6)
    assert peft_model.peft_config["default"].r == 6


def test_bad_directories_and_models(tmp_path):
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        load_peft_delora(Net(), tmp_path)
    with pytest.raises(ValueError, match="no DeLoRALinear layers"):
        save_peft_delora(Net(), tmp_path / "x")
    _, model = _trained("peft")
    save_peft_lora(model, tmp_path / "lora")
    with pytest.raises(ValueError, match="LORA adapter, not a DeLoRA"):
        load_peft_delora(Net(), tmp_path / "lora")
    with pytest.raises(ValueError, match="does not have"):
        save_peft_delora(model, tmp_path / "y", modules_to_save=["classifier"])
