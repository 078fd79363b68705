"""TrainConfig: every knob of a training run, its default and its help, validated on construction.

This is the one home of the defaults: the CLI's flags (cli/train.py) and the app's widgets (app/settings.py)
are built from these fields, so a default is written once, here.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields

from ..delora.layer import validate_delora_args
from ..errors import DeloraVizError, check_int
from .methods import DEFAULT_LAMBDA, DEFAULT_RANK, get_method

TASKS = ("classification", "causal_lm")


def knob(default, help: str):
    """A field with its help text (read by the CLI's --help and the app's tooltips)."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    method: str = knob("delora", "lora | rslora | dora | delora | delora-paper")
    model: str | None = knob(None, "Hugging Face id or local directory; None: the embedded MiniLM; 'smollm2'")
    data: str | None = knob(None, "HF dataset name or csv/json/jsonl/txt path; None: the task's embedded data")
    task: str | None = knob(None, "classification | causal_lm; None: inferred from the model")
    max_steps: int = knob(40, "optimizer steps (unused when epochs is set)")
    epochs: float | None = knob(
        None, "epochs over the training split; sets the steps to ceil(epochs * steps per epoch), over max_steps"
    )
    batch_size: int = knob(8, "examples per forward/backward pass (micro-batch)")
    gradient_accumulation_steps: int = knob(1, "micro-batches per optimizer step (PEFT's example script: 16)")
    warmup_steps: int = knob(0, "optimizer steps of linear learning-rate warm-up, then constant")
    max_length: int = knob(64, "tokens per example (a news topic shows in the first 64)")
    lr: float | None = knob(None, "learning rate of the adapter; None: the method's measured default")
    lr_multiplier: float = knob(1.0, "scales lr (the learning-rate sweep)")
    head_lr: float = knob(5e-3, "learning rate of the task head, the same for every method")
    weight_decay: float = knob(0.0, "AdamW weight decay")
    r: int = knob(DEFAULT_RANK, "rank of the update")
    delora_lambda: float = knob(
        DEFAULT_LAMBDA, "DeLoRA's lambda: ||dW||_F ~ lambda rms(w)/sqrt(r) <= |lambda| max_j ||W[:, j]|| (PEFT: 15)"
    )
    lora_alpha: float | None = knob(None, "LoRA's alpha; None: 2r")
    module_dropout: float = knob(0.0, "dropout on the adapter's input")
    target_modules: list[str] | None = knob(None, "modules to adapt; None: the model's query/value projections")
    eval_every: int = knob(
        20, "optimizer steps between evaluations (0: only at the end; the last step is always evaluated)"
    )
    eval_examples: int = knob(96, "held-out examples per evaluation")
    eval_fraction: float = knob(0.2, "share of the data held out when the dataset has no test split")
    max_examples: int | None = knob(None, "cap on the dataset size")
    track_every: int = knob(
        1, "record the update's geometry every N steps (as Tracker's and TrackerCallback's track_every)"
    )
    save_every: int = knob(0, "save the adapter every N steps (0: only at the end); needs output_dir")
    seed: int = knob(0, "seed of the data order, the head and the adapters")
    device: str = knob("auto", "auto (cuda > mps > cpu), cuda, cuda:1, mps or cpu")
    dtype: str = knob(
        "auto", "auto (bf16 on GPUs that support it, else float32), float32, bfloat16, float16 (GPU; loss scaling)"
    )
    output_dir: str | None = knob(None, "adapter, delora_history.jsonl, summary.json (compare: one folder per run)")
    run_name: str | None = knob(None, "label of the run; default: the method name")

    def __post_init__(self):
        get_method(self.method)
        for name in (
            "max_steps",
            "batch_size",
            "gradient_accumulation_steps",
            "max_length",
            "eval_examples",
            "track_every",
        ):
            check_int(name, getattr(self, name))
        for name in ("eval_every", "save_every", "seed", "warmup_steps"):
            check_int(name, getattr(self, name), minimum=0)
        if self.max_length < 8:
            raise DeloraVizError(f"max_length must be at least 8 tokens, got {self.max_length}", field="max_length")
        if self.max_examples is not None:
            check_int("max_examples", self.max_examples)
        for name in ("lr", "head_lr", "lr_multiplier"):
            value = getattr(self, name)
            finite = isinstance(value, (int, float)) and math.isfinite(value)
            if value is not None and not (finite and 0 < value <= 1e4):
                raise DeloraVizError(f"{name} must be a number in (0, 1e4], got {value!r}", field=name)
        if self.epochs is not None and not (isinstance(self.epochs, (int, float)) and 0 < self.epochs <= 1e4):
            raise DeloraVizError(f"epochs must be a number in (0, 1e4], got {self.epochs!r}", field="epochs")
        if not 0 < self.eval_fraction <= 0.9:
            raise DeloraVizError(
                f"eval_fraction must be in (0, 0.9], got {self.eval_fraction!r}", field="eval_fraction"
            )
        validate_delora_args(self.r, self.delora_lambda, "peft", self.module_dropout)
        if self.save_every and not self.output_dir:
            raise DeloraVizError("save_every needs output_dir: where should the adapters go?", field="save_every")
        if isinstance(self.target_modules, str):
            self.target_modules = [t.strip() for t in self.target_modules.split(",") if t.strip()]

    def effective_lr(self) -> float:
        base = self.lr if self.lr is not None else get_method(self.method).default_lr
        return base * self.lr_multiplier


def config_defaults() -> dict:
    """{field: default} of TrainConfig: what the CLI and the app start from."""
    return {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


def config_help(name: str) -> str:
    return next(f.metadata.get("help", "") for f in fields(TrainConfig) if f.name == name)
