"""The task a model is for, read from its config: a `...ForCausalLM` checkpoint or a decoder-only
config (Llama, Qwen, Mistral, ...) means causal LM; anything else (BERT, a sequence classifier) means
classification. An explicit task always wins (the CLI's --task, TrainConfig.task)."""

from __future__ import annotations

from ..errors import DeloraVizError
from .config import TASKS


def task_from_config(config, task: str | None = None, num_labels: int | None = None) -> str:
    """`task` when given; else from the architectures the checkpoint names, then from its model type."""
    if task is not None:
        return task
    archs = " ".join(getattr(config, "architectures", None) or [])
    if "ForCausalLM" in archs or "LMHeadModel" in archs:
        return "causal_lm"
    if "ForSequenceClassification" in archs or num_labels is not None:
        return "classification"
    return "causal_lm" if is_decoder_only(config) else "classification"


def is_decoder_only(config) -> bool:
    """A model type transformers builds as a causal LM but not as a masked LM (Llama yes, BERT no)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    kind = getattr(config, "model_type", None)
    if getattr(config, "is_encoder_decoder", False):
        return False
    return kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def infer_task(spec: str | None, task: str | None = None) -> str:
    """The task for model `spec` (a preset, a local directory or a Hub id), reading only its config."""
    from .hub import preset_key
    from .models import EMBEDDED_MODEL, _quiet_transformers, resolve_model_source

    if task is not None:
        if task not in TASKS:
            raise DeloraVizError(f"task must be one of {TASKS}, got {task!r}", field="task")
        return task
    key = preset_key(spec)
    if key is not None:
        return "classification" if key == EMBEDDED_MODEL else "causal_lm"
    from transformers import AutoConfig

    source = resolve_model_source(spec)
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
