"""DeLoRALinear: parity with PEFT's DeloraLinear, the paper init, merge, surgery, bad input."""

import pytest
import torch
from builders import TwoLayer
from peft import DeloraConfig, get_peft_model
from torch import nn

from delora_viz import DeloraVizError
from delora_viz.delora.geometry import fro_norm
from delora_viz.delora.layer import (
    DeLoRALinear,
    add_delora,
    delora_layers,
    delora_parameters,
    merge_delora,
    remove_delora,
)


def _peft_twin(model, r, lam, dtype):
    """A PEFT DeLoRA model on a copy of `model`, with A, B, lambda copied from our layers."""
    import copy

    peft_model = get_peft_model(
        copy.deepcopy(remove_delora(copy.deepcopy(model))),
        DeloraConfig(r=r, delora_lambda=lam, target_modules=["up", "down"]),
    )
    for name, ours in delora_layers(model).items():
        theirs = peft_model.base_model.model.get_submodule(name)
        with torch.no_grad():
            theirs.delora_A["default"].copy_(ours.delora_A)
            theirs.delora_B["default"].copy_(ours.delora_B)
            theirs.delora_lambda["default"].copy_(ours.delora_lambda)
        # the same column norms through two libraries' norm calls (kernels may sum in another order): 1e-6
        torch.testing.assert_close(theirs.delora_w_norm["default"], ours.delora_w_norm, rtol=1e-6, atol=0)
    return peft_model.to(dtype)


@pytest.mark.parametrize("dtype,rtol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parity_with_peft_update_forward_merge(dtype, rtol, seed):
    torch.manual_seed(seed)
    model = add_delora(TwoLayer().to(dtype), ["up", "down"], r=4, delora_lambda=3.0)
    for layer in delora_layers(model).values():  # move B off zero so the update is non-trivial
        nn.init.normal_(layer.delora_B)
    peft_model = _peft_twin(model, 4, 3.0, dtype)
    x = torch.randn(7, 24, dtype=dtype)
    for name, ours in delora_layers(model).items():
        theirs = peft_model.base_model.model.get_submodule(name)
        torch.testing.assert_close(ours.delta_weight(), theirs.get_delta_weight("default"), rtol=rtol, atol=rtol * 1e-2)
    out = model(x)
    torch.testing.assert_close(out, peft_model(x), rtol=rtol, atol=rtol * 1e-1)
    for layer in delora_layers(model).values():
        layer.merge()
    peft_model.merge_adapter()
    torch.testing.assert_close(model(x), peft_model(x), rtol=rtol * 10, atol=rtol)
    torch.testing.assert_close(model(x), out, rtol=rtol * 10, atol=rtol)
    for layer in delora_layers(model).values():
        layer.unmerge()
    torch.testing.assert_close(model(x), out, rtol=rtol * 10, atol=rtol)


def test_gradients_match_peft():
    model = add_delora(TwoLayer().double(), ["up", "down"], r=3, delora_lambda=2.0)
    for layer in delora_layers(model).values():
        nn.init.normal_(layer.delora_B)
    peft_model = _peft_twin(model, 3, 2.0, torch.float64)
    x = torch.randn(5, 24, dtype=torch.float64)
    model(x).pow(2).sum().backward()
    peft_model(x).pow(2).sum().backward()
    for name, ours in delora_layers(model).items():
        theirs = peft_model.base_model.model.get_submodule(name)
        for key in ("delora_A", "delora_B", "delora_lambda"):
            torch.testing.assert_close(
                getattr(ours, key).grad, getattr(theirs, key)["default"].grad, rtol=1e-10, atol=1e-12
            )


@pytest.mark.parametrize("init", ["peft", "paper"])
def test_identity_at_init(init):
    base = TwoLayer()
    x = torch.randn(4, 24)
    expected = base(x)
    model = add_delora(base, ["up", "down"], r=4, delora_lambda=5.0, init=init)
    torch.testing.assert_close(model(x), expected, rtol=0, atol=1e-6)
    for layer in delora_layers(model).values():
        assert fro_norm(layer.update()).item() < 1e-5


def test_paper_init_moves_on_the_first_step_on_cpu():
    """Regression test: the original code aliased the frozen copy to the trained weights, so dW stayed 0."""
    model = add_delora(TwoLayer(), ["up", "down"], r=4, delora_lambda=1.0, init="paper")
    layer = model.up
    assert layer.delora_A0.data_ptr() != layer.delora_A.data_ptr()
    assert layer.delora_B0.data_ptr() != layer.delora_B.data_ptr()
    opt = torch.optim.SGD(delora_parameters(model), lr=1e-2)
    model(torch.randn(8, 24)).pow(2).sum().backward()
    opt.step()
    assert fro_norm(layer.update()).item() > 1e-4
    assert layer.delta_weight().abs().max().item() > 0


def test_paper_init_grows_smoothly_while_peft_init_jumps():
    """PEFT's zero B jumps to ~lambda rms(w)/sqrt(r) after one step at any learning rate; the paper's does not."""
    sizes = {}
    for init in ("peft", "paper"):
        torch.manual_seed(0)
        model = add_delora(TwoLayer(64, 64, 8), ["up"], r=4, delora_lambda=2.0, init=init)
        opt = torch.optim.AdamW(delora_parameters(model), lr=1e-5)
        model(torch.randn(16, 64)).pow(2).sum().backward()
        opt.step()
        sizes[init] = fro_norm(model.up.update()).item() / model.up.bound_loose().item()
    assert sizes["peft"] > 0.05
    assert sizes["paper"] < 1e-3


@pytest.mark.parametrize("init", ["peft", "paper"])
def test_bound_holds_after_training_at_very_high_learning_rates(init):
    torch.manual_seed(0)
    model = add_delora(TwoLayer(32, 32, 4), ["up", "down"], r=4, delora_lambda=0.5, init=init)
    opt = torch.optim.Adam(delora_parameters(model), lr=10.0)
    for _ in range(25):
        opt.zero_grad()
        model(torch.randn(16, 32)).pow(2).sum().neg().backward()  # push the update as far as it goes
        opt.step()
        for layer in delora_layers(model).values():
            norm = fro_norm(layer.update())
            assert norm <= layer.bound() * (1 + 1e-5)
            assert layer.bound() <= layer.bound_loose() * (1 + 1e-5)


def test_only_delora_parameters_train():
    model = add_delora(TwoLayer(), ["up"], r=2, delora_lambda=1.0)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"up.delora_A", "up.delora_B", "up.delora_lambda"}
    assert len(list(delora_parameters(model))) == 3


def test_merge_delora_and_remove_delora():
    base = TwoLayer()
    x = torch.randn(3, 24)
    original = base(x)
    model = add_delora(base, ["up", "down"], r=2, delora_lambda=1.0)
    for layer in delora_layers(model).values():
        nn.init.normal_(layer.delora_B)
    adapted = model(x)
    assert not torch.allclose(adapted, original)  # the update moved the output: merging has something to keep
    merged = merge_delora(model)
    assert not delora_layers(merged) and isinstance(merged.up, nn.Linear)
    torch.testing.assert_close(merged(x), adapted, rtol=1e-5, atol=1e-6)

    model = add_delora(TwoLayer(), ["up"], r=2, delora_lambda=1.0)
    reference = model(x)
    model.up.merge()
    restored = remove_delora(model)
    assert isinstance(restored.up, nn.Linear)
    torch.testing.assert_close(restored(x), reference, rtol=1e-5, atol=1e-6)


def test_regex_and_suffix_targets():
    model = nn.Sequential(TwoLayer(), TwoLayer())
    assert set(delora_layers(add_delora(model, r".*\.up", r=2, delora_lambda=1.0))) == {"0.up", "1.up"}
    model = nn.Sequential(TwoLayer(), TwoLayer())
    assert set(delora_layers(add_delora(model, ["down"], r=2, delora_lambda=1.0))) == {"0.down", "1.down"}


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(r=0), "positive integer"),
        (dict(r=-2), "positive integer"),
        (dict(r=2.5), "positive integer"),
        (dict(delora_lambda=0.0), "finite number > 0"),
        (dict(delora_lambda=-1.0), "finite number > 0"),
        (dict(delora_lambda=float("nan")), "finite number > 0"),
        (dict(delora_lambda=float("inf")), "finite number > 0"),
        (dict(init="kaiming"), "init must be one of"),
        (dict(module_dropout=1.0), "module_dropout"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(r=2, delora_lambda=1.0) | kwargs
    with pytest.raises(ValueError, match=match):
        DeLoRALinear(nn.Linear(4, 3), **args)
    with pytest.raises(ValueError, match=match):
        add_delora(TwoLayer(), ["up"], **args)


def test_non_linear_targets_and_no_match_list_what_exists():
    with pytest.raises(DeloraVizError, match="'act' is a GELU.*down, up") as err:
        add_delora(TwoLayer(), ["act"], r=2, delora_lambda=1.0)
    assert err.value.field == "target_modules"
    with pytest.raises(ValueError, match="matches no module.*down, up"):
        add_delora(TwoLayer(), ["q_proj"], r=2, delora_lambda=1.0)
    with pytest.raises(TypeError, match="nn.Linear"):
        DeLoRALinear(nn.Conv1d(3, 3, 1))
