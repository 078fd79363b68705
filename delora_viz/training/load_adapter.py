"""A saved PEFT adapter (a folder, or a Hub id already cached) loaded onto its base model, then measured.

    inspected = inspect_adapter("out/delora")                    # base from adapter_config.json
    inspected = inspect_adapter("out/delora", base_model="minilm", device="cpu")
    inspected.frame                                              # instruments/inspect.py's rows, one per layer

The base model comes from adapter_config.json's base_model_name_or_path unless given: a local folder, the
embedded presets ("minilm", "smollm2") or a Hub id in the local cache. It is loaded in float32 with the head
the adapter was trained with (sequence classification, causal LM, else the bare model). Every saved adapter
tensor must land in the model, or the load is refused: a wrong base would otherwise measure nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..delora.peft_io import CONFIG_NAME, read_metadata
from ..errors import DeloraVizError
from ..instruments.inspect import TOP_K, inspect_model
from .models import _HUB_ID, _quiet_transformers, pick_device, resolve_model_source

WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
HEAD_SUFFIXES = ("classifier.weight", "score.weight", "classifier.out_proj.weight")  # -> num_labels


@dataclass
class Inspected:
    label: str  # the adapter's folder name (checkpoint-N with its parent) or Hub id
    path: Path  # the adapter folder
    base_model: str  # what the base was loaded from
    peft_type: str  # "LORA", "DELORA", ... as in adapter_config.json
    frame: object  # pandas DataFrame: adapter, COLUMNS, sv_1 .. sv_k


def adapter_folder(spec: str | os.PathLike) -> Path:
    """The folder holding adapter_config.json: `spec` itself, or a Hub id's cached snapshot."""
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file():
            hint = " (it holds a full model: pass it as --base_model)" if (path / "config.json").is_file() else ""
            raise DeloraVizError(
                f"{path} is not a PEFT adapter folder: it has no {CONFIG_NAME}{hint}; pass the folder that "
                "PeftModel.save_pretrained wrote"
            )
        if not any((path / name).is_file() for name in WEIGHT_FILES):
            raise DeloraVizError(f"{path} is not a complete PEFT adapter folder: it has no {' or '.join(WEIGHT_FILES)}")
        return path
    if path.exists():
        raise DeloraVizError(f"{path} is a file; pass the adapter's folder (with {CONFIG_NAME})")
    if str(spec).startswith((".", "/", "~")) or not _HUB_ID.match(str(spec)) or "/" not in str(spec):
        raise FileNotFoundError(f"adapter folder not found: {spec}")
    from huggingface_hub import snapshot_download

    try:
        return adapter_folder(
            snapshot_download(str(spec), allow_patterns=[CONFIG_NAME, *WEIGHT_FILES, "delora_viz.json"])
        )
    except (OSError, ValueError) as err:
        if isinstance(err, ValueError) and "adapter" in str(err):
            raise
        raise DeloraVizError(
            f"adapter '{spec}' is neither a local folder nor available offline: download it once with network "
            "access, or pass its local folder"
        ) from None


def read_adapter_config(path: Path) -> dict:
    try:
        config = json.loads((path / CONFIG_NAME).read_text())
    except ValueError as err:
        raise DeloraVizError(f"{path / CONFIG_NAME} is not valid JSON ({err})") from None
    if not isinstance(config, dict) or "peft_type" not in config:
        raise DeloraVizError(f"{path / CONFIG_NAME} is not a PEFT adapter config: it has no peft_type")
    return config


def load_adapter(spec, base_model: str | None = None, device: str = "cpu"):
    """(PeftModel in eval mode, adapter folder, adapter config, base source)."""
    path = adapter_folder(spec)
    config = read_adapter_config(path)
    base = base_model or config.get("base_model_name_or_path")
    if not base:
        raise DeloraVizError(f"{path / CONFIG_NAME} names no base model (base_model_name_or_path): pass --base_model")
    saved = _saved_tensors(path)
    task_type, dev = config.get("task_type"), pick_device(device)
    model = _attach(_load_base(base, task_type, _num_labels(saved), dev), path, base)
    if _stray(model, saved) and task_type is None:  # trained on the bare model (AutoModel), not on its head class
        model = _attach(_load_base(base, task_type, None, dev, bare=True), path, base)
    stray = _stray(model, saved)
    if stray:  # PEFT only warns: a wrong base would measure untrained layers
        raise DeloraVizError(
            f"the adapter at {path} does not fit the base model '{base}': {len(stray)} of its tensors have no "
            f"place in it (e.g. '{stray[0]}'); pass the model it was trained on with --base_model"
        )
    return model.eval(), path, config, base


def inspect_adapter(spec, base_model: str | None = None, device: str = "cpu", top_k: int = TOP_K) -> Inspected:
    """Load the adapter at `spec` onto its base and measure every adapted layer (instruments/inspect.py)."""
    import pandas as pd

    model, path, config, base = load_adapter(spec, base_model, device)
    rows = inspect_model(model, metadata=read_metadata(path), top_k=top_k, step=_global_step(path))
    label = str(spec) if not Path(spec).expanduser().exists() else _folder_label(path)
    frame = pd.DataFrame(rows)
    frame.insert(0, "adapter", label)
    return Inspected(label, path, str(base), str(config["peft_type"]), frame)


# ----------------------------------------------------------------------------- helpers
def _load_base(spec: str, task_type: str | None, num_labels: int | None, device: torch.device, bare: bool = False):
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    try:
        source = resolve_model_source(spec)
    except FileNotFoundError:
        raise DeloraVizError(
            f"the base model '{spec}' is not there: pass --base_model with its folder or Hub id"
        ) from None
    try:
        with _quiet_transformers():
            config = AutoConfig.from_pretrained(source, trust_remote_code=False)
            archs = " ".join(getattr(config, "architectures", None) or [])
            kw = dict(dtype=torch.float32, trust_remote_code=False)
            if bare:
                model = AutoModel.from_pretrained(source, **kw)
            elif task_type == "SEQ_CLS" or (task_type is None and "ForSequenceClassification" in archs):
                if num_labels:  # the saved head's size, so its weights load
                    kw.update(num_labels=num_labels, ignore_mismatched_sizes=True)
                model = AutoModelForSequenceClassification.from_pretrained(source, **kw)
            elif task_type == "CAUSAL_LM" or (task_type is None and "ForCausalLM" in archs):
                model = AutoModelForCausalLM.from_pretrained(source, **kw)
            else:
                model = AutoModel.from_pretrained(source, **kw)
    except OSError:
        if Path(source).exists():
            raise
        raise DeloraVizError(
            f"the base model '{spec}' is not available offline: download it once with network access, "
            "or pass its local folder with --base_model"
        ) from None
    return model.to(device)


def _saved_tensors(path: Path) -> dict:
    file = path / WEIGHT_FILES[0]
    if file.is_file():
        from safetensors.torch import load_file

        return load_file(str(file))
    return torch.load(path / WEIGHT_FILES[1], map_location="cpu", weights_only=True)


def _num_labels(saved: dict) -> int | None:
    return next((t.shape[0] for k, t in saved.items() if k.endswith(HEAD_SUFFIXES) and t.ndim == 2), None)


def _attach(model, path: Path, base: str):
    """PeftModel.from_pretrained, its errors in the user's words."""
    from peft import PeftModel

    try:
        with _quiet_transformers():
            return PeftModel.from_pretrained(model, str(path), is_trainable=False)
    except (ValueError, RuntimeError) as err:  # target modules not found, tensors of another shape
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DeloraVizError(
            f"the adapter at {path} does not fit the base model '{base}' ({first[:200]}); "
            "pass the model it was trained on with --base_model"
        ) from None


def _stray(model, saved: dict) -> list[str]:
    """Saved adapter tensors with no place in the model (sorted)."""
    from peft import get_peft_model_state_dict

    return sorted(set(saved) - set(get_peft_model_state_dict(model)))


def _global_step(path: Path) -> int:
    """A Trainer checkpoint's step (its trainer_state.json), else 0."""
    try:
        return int(json.loads((path / "trainer_state.json").read_text())["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _folder_label(path: Path) -> str:
    path = path.resolve()
    return f"{path.parent.name}/{path.name}" if path.name.startswith("checkpoint-") else path.name
