"""The one training loop that the app, the notebooks and the CLI share.

    for event in iter_train(TrainConfig(method="delora", steps=60)):   # StepEvent ... then RunResult
        print(event)

`iter_compare` runs several methods on the same data order and seed, one step each in turn, so live
views advance together; `lr_sweep` repeats that across learning-rate multipliers (the paper's Fig. 2).
A run whose loss turns NaN/inf stops there, marked diverged, and the others go on.
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

from ..core.history import rotate_aside
from ..core.track import Tracker, summarize
from .config import TrainConfig
from .data import TextData, load_data
from .methods import build_adapted_model, get_method, save_adapter
from .models import LoadedModel, load_model

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
    torch.manual_seed(config.seed)  # a fresh task head is drawn at load: the same seed, the same head everywhere
    data = load_data(
        config.data,
        config.task or _task_for(config.model),
        eval_fraction=config.eval_fraction,
        max_examples=config.max_examples,
        seed=config.seed,
    )
    loaded = load_model(config.model, data.task, num_labels=data.num_labels, device=config.device, dtype=config.dtype)
    return Prepared(loaded, data)


def _task_for(model_spec: str | None) -> str:
    return "causal_lm" if model_spec == "smollm2" else "classification"


def iter_train(
    config: TrainConfig, prepared: Prepared | None = None, stop: Stop = None
) -> Iterator[StepEvent | RunResult]:
    """Train one method; yield a StepEvent per step, then one RunResult."""
    prepared = prepared or prepare(config)
    loaded, data = prepared.loaded, prepared.data
    run = config.run_name or config.method
    torch.manual_seed(config.seed)
    targets = config.target_modules or loaded.default_target_modules
    model = build_adapted_model(
        copy.deepcopy(loaded.model),
        config.method,
        targets,
        r=config.r,
        delora_lambda=config.delora_lambda,
        lora_alpha=config.lora_alpha,
        module_dropout=config.module_dropout,
        head_modules=loaded.head_modules,
        task_type=TASK_TYPES[data.task],
    )
    lr = config.effective_lr()
    optimizer = torch.optim.AdamW(
        _param_groups(model, loaded.head_modules, lr, config.head_lr), weight_decay=config.weight_decay
    )
    out_dir = Path(config.output_dir) if config.output_dir else None
    if out_dir:  # a previous run's history: keep it aside, never overwrite
        rotate_aside(out_dir / HISTORY_NAME)
    tracker = Tracker(model, every=config.track_every, path=out_dir / HISTORY_NAME if out_dir else None)
    batches = _batches(data, config, loaded)
    eval_name = "accuracy" if data.task == "classification" else "perplexity"
    history: list[dict] = []
    rows = [dict(r, run=run) for r in tracker.step(0)]
    evaluate = lambda: _evaluate(model, data, config, loaded)  # noqa: E731
    if config.eval_every and prepared.baseline is None:  # every method starts from the same model: evaluate once
        prepared.baseline = evaluate()
    history.append(
        _record(run, config.method, 0, math.nan, lr, prepared.baseline if config.eval_every else None, eval_name)
    )
    status, diverged_at, adapter_dir, started = "finished", None, None, time.perf_counter()
    model.train()
    for step in range(1, config.steps + 1):
        if stop is not None and stop():
            status = "stopped"
            break
        loss = _loss(model, next(batches), loaded)
        if not torch.isfinite(loss):
            status, diverged_at = "diverged", step
            history.append(_record(run, config.method, step, math.nan, lr, None, eval_name))
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss = loss.item()
        new_rows = [dict(r, run=run) for r in tracker.step(step)]
        rows.extend(new_rows)
        is_eval = config.eval_every and (step % config.eval_every == 0 or step == config.steps)
        metric = evaluate() if is_eval else None
        history.append(_record(run, config.method, step, loss, lr, metric, eval_name))
        if out_dir and config.save_every and step % config.save_every == 0:
            adapter_dir = _save(model, config, loaded, out_dir)
        yield StepEvent(
            run, config.method, step, config.steps, loss, lr, new_rows, metric, eval_name, time.perf_counter() - started
        )
    model.eval()
    if out_dir and status != "diverged":  # a diverged run keeps its last good save
        adapter_dir = _save(model, config, loaded, out_dir)
    last_step = max(r["step"] for r in rows)
    final = summarize([r for r in rows if r["step"] == last_step], prefix="")
    evals = [h["eval_metric"] for h in history if h["eval_metric"] is not None and not math.isnan(h["eval_metric"])]
    final.update(
        run=run,
        method=config.method,
        status=status,
        steps=history[-1]["step"],
        lr=lr,
        eval_name=eval_name,
        eval_metric=evals[-1] if evals else math.nan,
        seconds=time.perf_counter() - started,
    )
    if out_dir:
        (out_dir / "summary.json").write_text(json.dumps(final, indent=2, default=str))
    yield RunResult(run, config.method, config, history, rows, model, final, status, diverged_at, adapter_dir)


def train(config: TrainConfig, prepared: Prepared | None = None, stop: Stop = None) -> RunResult:
    """Run iter_train to the end and return its RunResult."""
    return deque(iter_train(config, prepared, stop), maxlen=1)[0]  # the last event: the RunResult


def iter_compare(
    methods, config: TrainConfig, prepared: Prepared | None = None, stop: Stop = None, lrs: dict | None = None
):
    """Train `methods` side by side on the same data order and seed, one step each in turn.

    lrs: optional {method: learning rate}; otherwise each method's default (times config.lr_multiplier).
    Yields every run's StepEvents interleaved, and each run's RunResult when it ends."""
    if not methods:
        raise ValueError("choose at least one method to compare, e.g. ['lora', 'dora', 'delora']")
    for m in methods:
        get_method(m)
    prepared = prepared or prepare(config)
    lrs = lrs or {}
    runs = [iter_train(_child(config, m, method=m, lr=lrs.get(m, config.lr)), prepared, stop) for m in methods]
    while runs:
        for run in list(runs):
            event = next(run)
            yield event
            if isinstance(event, RunResult):
                runs.remove(run)


def compare(
    methods, config: TrainConfig, prepared: Prepared | None = None, stop: Stop = None, lrs: dict | None = None
) -> dict[str, RunResult]:
    return {e.run: e for e in iter_compare(methods, config, prepared, stop, lrs) if isinstance(e, RunResult)}


def iter_lr_sweep(methods, multipliers, config: TrainConfig, prepared: Prepared | None = None, stop: Stop = None):
    """For each multiplier, train every method at multiplier x its default rate. Yields events and RunResults
    whose run names read "method x10"; sweep_frame(results) turns the results into the sweep table."""
    if not multipliers or any(not (isinstance(m, (int, float)) and m > 0 and math.isfinite(m)) for m in multipliers):
        raise ValueError(f"learning-rate multipliers must be positive numbers, got {multipliers!r}")
    prepared = prepared or prepare(config)
    for mult in multipliers:
        for method in methods:
            run_config = _child(config, f"{method} x{mult:g}", method=method, lr=None, lr_multiplier=float(mult))
            yield from iter_train(run_config, prepared, stop)
            if stop is not None and stop():
                return


def lr_sweep(methods, multipliers, config: TrainConfig, prepared: Prepared | None = None, stop: Stop = None):
    """The sweep table (pandas): method, lr_multiplier, lr, final_distance, eval_metric, eval_name, diverged."""
    return sweep_frame(
        [e for e in iter_lr_sweep(methods, multipliers, config, prepared, stop) if isinstance(e, RunResult)]
    )


def sweep_frame(results: list[RunResult]):
    import pandas as pd

    return pd.DataFrame(
        [
            dict(
                method=r.method,
                lr_multiplier=r.config.lr_multiplier,
                lr=r.final["lr"],
                final_distance=r.final.get("delta_fro_mean", math.nan),
                eval_metric=r.final["eval_metric"],
                eval_name=r.final["eval_name"],
                diverged=r.status == "diverged",
            )
            for r in results
        ]
    )


# ----------------------------------------------------------------------------- pieces of the loop
def _child(config: TrainConfig, run: str, **changes) -> TrainConfig:
    """One run of a comparison or sweep: its own name and its own folder under output_dir."""
    out = str(Path(config.output_dir) / run.replace(" ", "_")) if config.output_dir else None
    return replace(config, run_name=run, output_dir=out, **changes)


def _param_groups(model, head_modules, lr, head_lr):
    """Adapter parameters at the method's rate; the task head (trained by every method) at head_lr."""
    adapter, head = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (head if any(f".{h}." in f".{name}." for h in head_modules) else adapter).append(p)
    return [g for g in ({"params": adapter, "lr": lr}, {"params": head, "lr": head_lr}) if g["params"]]


def _batches(data: TextData, config: TrainConfig, loaded: LoadedModel):
    """Endless shuffled batches, the same order for every method with the same seed."""
    generator = torch.Generator().manual_seed(config.seed)
    n = len(data.train_texts)
    while True:
        order = torch.randperm(n, generator=generator).tolist()
        for start in range(0, n - config.batch_size + 1 if n >= config.batch_size else 1, config.batch_size):
            idx = order[start : start + config.batch_size]
            yield _encode(data.train_texts, data.train_labels, idx, config, loaded)


def _encode(texts, labels, idx, config, loaded):
    enc = loaded.tokenizer(
        [texts[i] for i in idx], truncation=True, max_length=config.max_length, padding=True, return_tensors="pt"
    )
    batch = {k: v.to(loaded.device) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    if labels is not None:
        batch["labels"] = torch.tensor([labels[i] for i in idx], device=loaded.device)
    else:  # causal LM: predict every real token; padding is ignored
        batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    return batch


def _loss(model, batch, loaded):
    with torch.autocast(loaded.device.type, dtype=loaded.dtype, enabled=loaded.dtype != torch.float32):
        return model(**batch).loss.float()


@torch.no_grad()
def _evaluate(model, data: TextData, config: TrainConfig, loaded: LoadedModel) -> float:
    """Accuracy (classification) or perplexity (causal LM) on the first eval_examples held-out texts."""
    was_training = model.training
    model.eval()
    n = min(len(data.eval_texts), config.eval_examples)
    correct, total_loss, total_tokens = 0, 0.0, 0
    for start in range(0, n, config.batch_size):
        idx = list(range(start, min(n, start + config.batch_size)))
        batch = _encode(data.eval_texts, data.eval_labels, idx, config, loaded)
        out = model(**batch)
        if data.task == "classification":
            correct += (out.logits.argmax(-1) == batch["labels"]).sum().item()
        else:
            tokens = (batch["labels"][:, 1:] != -100).sum().item()
            total_loss, total_tokens = total_loss + out.loss.item() * tokens, total_tokens + tokens
    model.train(was_training)
    if data.task == "classification":
        return correct / n
    return math.exp(min(total_loss / max(total_tokens, 1), 50.0))


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
        base_model_name_or_path=loaded.source,
        task_type=TASK_TYPES[loaded.task],
        head_modules=loaded.head_modules,
    )
