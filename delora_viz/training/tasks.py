"""The task a model is for, read from its config: a `...ForCausalLM` checkpoint or a decoder-only
config (Llama, Qwen, Mistral, ...) means causal LM; anything else (BERT, a sequence classifier) means
classification. An explicit task always wins (the CLI's --task, TrainConfig.task). models.infer_task reads
a model's config from its source and asks here."""

from __future__ import annotations


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
