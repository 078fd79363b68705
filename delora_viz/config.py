"""TrainConfig: every knob of a training run, validated on construction."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .layer import validate_delora_args
from .methods import DEFAULT_LAMBDA, DEFAULT_RANK, get_method


@dataclass
class TrainConfig:
    method: str = "delora"  # lora | dora | delora | delora-paper
    model: str | None = None  # None: the embedded MiniLM; "smollm2"; a Hugging Face id or local directory
    data: str | None = None  # None: the embedded default for the task; HF dataset name; csv/json/jsonl/txt path
    task: str | None = None  # "classification" | "causal_lm"; None: from the model
    steps: int = 40  # optimizer steps
    batch_size: int = 8
    max_length: int = 64  # tokens per example (cutoff_len); a news topic shows in the first 64
    lr: float | None = None  # None: the method's default rate
    lr_multiplier: float = 1.0  # scales lr (the learning-rate sweep)
    head_lr: float = 5e-3  # the task head, trained alike by every method
    weight_decay: float = 0.0
    r: int = DEFAULT_RANK
    delora_lambda: float = DEFAULT_LAMBDA
    lora_alpha: float | None = None  # None: 2r
    module_dropout: float = 0.0
    target_modules: list[str] | None = None  # None: the model's query/value projections
    eval_every: int = 20  # steps between evaluations (0: none); the last step is always evaluated
    eval_examples: int = 96  # held-out examples per evaluation
    eval_fraction: float = 0.2  # share of the data held out
    max_examples: int | None = None  # cap on the dataset size
    track_every: int = 1  # record the update's geometry every N steps
    save_every: int = 0  # save the adapter every N steps (0: only at the end); needs output_dir
    seed: int = 0
    device: str = "auto"  # auto: cuda > mps > cpu
    dtype: str = "auto"  # auto: bf16 on GPUs that support it, else fp32
    output_dir: str | None = None  # adapter files, delora_history.jsonl, summary.json (compare: one folder per run)
    run_name: str | None = None  # default: the method name

    def __post_init__(self):
        get_method(self.method)
        for name in ("steps", "batch_size", "max_length", "eval_examples", "track_every"):
            _positive_int(name, getattr(self, name))
        for name in ("eval_every", "save_every", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8 tokens, got {self.max_length}")
        if self.max_examples is not None:
            _positive_int("max_examples", self.max_examples)
        for name in ("lr", "head_lr", "lr_multiplier"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value <= 1e4):
                raise ValueError(f"{name} must be a number in (0, 1e4], got {value!r}")
        if not 0 < self.eval_fraction <= 0.9:
            raise ValueError(f"eval_fraction must be in (0, 0.9], got {self.eval_fraction!r}")
        validate_delora_args(self.r, self.delora_lambda, "peft", self.module_dropout)
        if self.save_every and not self.output_dir:
            raise ValueError("save_every needs output_dir: where should the adapters go?")
        if isinstance(self.target_modules, str):
            self.target_modules = [t.strip() for t in self.target_modules.split(",") if t.strip()]

    def effective_lr(self) -> float:
        base = self.lr if self.lr is not None else get_method(self.method).default_lr
        return base * self.lr_multiplier


def _positive_int(name, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
