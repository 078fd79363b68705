"""The one training loop that the app, the notebooks and the CLI share.

    for event in iter_train(TrainConfig(method="delora", max_steps=60)):   # StepEvent ... then RunResult
        print(event)

The pieces of a step (batches, epochs, accumulation, warm-up, precision, the run's RNG) are in
steps.py; `compare` / `lr_sweep` (several runs interleaved, each on its own RNG stream) in comparisons.py,
on top of this module. A run whose loss turns NaN/inf stops there, marked diverged.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..instruments.history import rotate_aside
from ..instruments.track import Tracker, summarize
from . import steps
from .config import TrainConfig
from .data import TextData, load_data
from .hub import public_model_id
from .methods import build_adapted_model, save_adapter
from .models import LoadedModel, infer_task, load_model, resolve_model
from .steps import RunRNG, grad_scaler, lr_factor, optimizer_steps, param_groups, step_indices, trainable_to_float32

TASK_TYPES = {"classification": "SEQ_CLS", "causal_lm": "CAUSAL_LM"}
HISTORY_NAME = "delora_history.jsonl"  # the same name TrackerCallback writes


@dataclass
class StepEvent:
    run: str
    method: str
    step: int
    total_steps: int
    loss: float
    lr: float
    rows: list[dict]  # tracker rows recorded at this step (may be empty)
    eval_metric: float | None  # accuracy or perplexity, on eval steps
    eval_name: str
    elapsed: float  # seconds since this run started

    @property
    def steps_per_s(self) -> float:
        return self.step / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class RunResult:
    run: str
    method: str
    config: TrainConfig
    history: list[dict]  # per step: run, method, step, loss, lr, eval_metric, eval_name
    rows: list[dict]  # every tracker row, with "run"
    model: torch.nn.Module = field(repr=False)
    final: dict  # final metrics: eval metric, distance, bound ratio, steps, time, status
    status: str  # "finished" | "stopped" | "diverged"
    diverged_at: int | None = None
    adapter_dir: Path | None = None

    def history_frame(self):
        import pandas as pd

        return pd.DataFrame(self.history)

    def tracker_frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows)


Stop = Callable[[], bool] | None  # e.g. threading.Event().is_set


@dataclass
class Prepared:
    """A loaded base model and data, shared by the runs of a comparison (each run deep-copies the model)."""

    loaded: LoadedModel
    data: TextData
    baseline: float | None = None  # eval metric of the unadapted model (dW = 0 for every method)


def prepare(config: TrainConfig) -> Prepared:
    """Load the config's model and data once (a comparison's runs share them). The model's source is
    resolved once, into one value the task inference and the loader both read."""
    torch.manual_seed(config.seed)  # a fresh task head is drawn at load: the same seed, the same head everywhere
    source = resolve_model(config.model)
    data = load_data(
        config.data,
        infer_task(source, config.task),
        eval_fraction=config.eval_fraction,
        max_examples=config.max_examples,
        seed=config.seed,
    )
    loaded = load_model(source, data.task, num_labels=data.num_labels, device=config.device, dtype=config.dtype)
    return Prepared(loaded, data)


def iter_train(
    config: TrainConfig, prepared: Prepared | None = None, stop: Stop = None
) -> Iterator[StepEvent | RunResult]:
    """Train one method; yield a StepEvent per optimizer step, then one RunResult.

    Steps, epochs, gradient accumulation, warm-up and precision: see training/steps.py. Evaluation: at
    step 0 and every eval_every steps when eval_every > 0, and always at the run's last step (also when
    stopped), so final["eval_metric"] is the model at final["eval_step"]. A diverged run's model is not
    evaluated: eval_metric is NaN at its divergence step; last_eval_metric/last_eval_step keep the last one.
    The run draws its random numbers from its own stream (steps.RunRNG), whatever runs beside it.
    """
    prepared = prepared or prepare(config)
    loaded, data = prepared.loaded, prepared.data
    run = config.run_name or config.method
    rng = RunRNG(config.seed)
    with rng:  # adapter init from the run's own stream
        model = build_adapted_model(
            copy.deepcopy(loaded.model),
            config.method,
            config.target_modules or loaded.default_target_modules,
            r=config.r,
            delora_lambda=config.delora_lambda,
            lora_alpha=config.lora_alpha,
            module_dropout=config.module_dropout,
            head_modules=loaded.head_modules,
            task_type=TASK_TYPES[data.task],
        )
    trainable_to_float32(model)  # adapters and head in float32 over a bf16/fp16 base
    lr = config.effective_lr()
    optimizer = torch.optim.AdamW(
        param_groups(model, loaded.head_modules, lr, config.head_lr), weight_decay=config.weight_decay
    )
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    scaler = grad_scaler(loaded)
    out_dir = Path(config.output_dir) if config.output_dir else None
    if out_dir:  # a previous run's history: keep it aside, never overwrite
        rotate_aside(out_dir / HISTORY_NAME)
    tracker = Tracker(model, track_every=config.track_every, path=out_dir / HISTORY_NAME if out_dir else None)
    total_steps = optimizer_steps(config, len(data.train_texts))
    if total_steps != config.max_steps:  # set by epochs: the result's config says how many steps that was
        config = replace(config, max_steps=total_steps)
    schedule = step_indices(len(data.train_texts), config.batch_size, config.gradient_accumulation_steps, config.seed)
    eval_name = "accuracy" if data.task == "classification" else "perplexity"
    rows = [dict(r, run=run) for r in tracker.start()]  # step 0: dW = 0
    evaluate = lambda: steps.evaluate(model, data, config, loaded)  # noqa: E731
    if config.eval_every and prepared.baseline is None:  # every method starts from the same model: evaluate once
        prepared.baseline = evaluate()
    history = [
        _record(run, config.method, 0, math.nan, lr, prepared.baseline if config.eval_every else None, eval_name)
    ]
    status, diverged_at, adapter_dir, started = "finished", None, None, time.perf_counter()
    model.train()
    for step in range(1, total_steps + 1):
        if stop is not None and stop():
            status = "stopped"
            break
        step_lr = lr * lr_factor(step, config.warmup_steps)
        with rng:
            loss = steps.optimizer_step(model, optimizer, scaler, next(schedule), data, config, loaded, step, base_lrs)
        if math.isnan(loss) or math.isinf(loss):
            status, diverged_at = "diverged", step
            history.append(_record(run, config.method, step, math.nan, step_lr, None, eval_name))
            break
        new_rows = [dict(r, run=run) for r in tracker.step(step)]
        rows.extend(new_rows)
        is_eval = step == total_steps or (config.eval_every and step % config.eval_every == 0)
        metric = evaluate() if is_eval else None
        history.append(_record(run, config.method, step, loss, step_lr, metric, eval_name))
        if out_dir and config.save_every and step % config.save_every == 0:
            adapter_dir = _save(model, config, loaded, out_dir)
        elapsed = time.perf_counter() - started
        yield StepEvent(run, config.method, step, total_steps, loss, step_lr, new_rows, metric, eval_name, elapsed)
    if status == "stopped" and math.isnan(history[-1]["eval_metric"]):  # evaluate the model the run stops with
        history[-1]["eval_metric"] = evaluate()
    model.eval()
    if out_dir and status != "diverged":  # a diverged run keeps its last good save
        adapter_dir = _save(model, config, loaded, out_dir)
    last_step = max(r["step"] for r in rows)
    final = summarize([r for r in rows if r["step"] == last_step], prefix="")
    evals = [h for h in history if not math.isnan(h["eval_metric"])]
    final.update(
        run=run,
        method=config.method,
        status=status,
        steps=history[-1]["step"],
        lr=lr,
        eval_name=eval_name,
        eval_metric=history[-1]["eval_metric"],  # NaN only for a diverged run
        eval_step=history[-1]["step"],
        last_eval_metric=evals[-1]["eval_metric"] if evals else math.nan,
        last_eval_step=evals[-1]["step"] if evals else None,
        seconds=time.perf_counter() - started,
    )
    if out_dir:
        (out_dir / "summary.json").write_text(json.dumps(final, indent=2, default=str))
    yield RunResult(run, config.method, config, history, rows, model, final, status, diverged_at, adapter_dir)


def train(config: TrainConfig, prepared: Prepared | None = None, stop: Stop = None) -> RunResult:
    """Run iter_train to the end and return its RunResult."""
    return deque(iter_train(config, prepared, stop), maxlen=1)[0]  # the last event: the RunResult


# ----------------------------------------------------------------------------- pieces of the loop
def _record(run, method, step, loss, lr, metric, eval_name) -> dict:
    return dict(
        run=run,
        method=method,
        step=step,
        loss=loss,
        lr=lr,
        eval_metric=math.nan if metric is None else metric,
        eval_name=eval_name,
    )


def _save(model, config: TrainConfig, loaded: LoadedModel, out_dir: Path) -> Path:
    return save_adapter(
        model,
        config.method,
        out_dir,
        base_model_name_or_path=public_model_id(config.model),
        task_type=TASK_TYPES[loaded.task],
        head_modules=loaded.head_modules,
    )
