"""Several runs of the one loop: methods side by side (`compare`) and learning-rate sweeps (`lr_sweep`).

Each run owns its random numbers (loop.iter_train swaps its own RNG state in around each step), so a run
inside a comparison draws exactly what it draws alone: `compare([a, b])[a]` equals `train(a)` step for
step (same data order, same seed, same dropout).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from ..errors import DeloraVizError
from .config import TrainConfig
from .loop import Prepared, RunResult, Stop, iter_train, prepare
from .methods import get_method


def _child(config: TrainConfig, run: str, **changes) -> TrainConfig:
    """One run of a comparison or sweep: its own name and its own folder under output_dir."""
    out = str(Path(config.output_dir) / run.replace(" ", "_")) if config.output_dir else None
    return replace(config, run_name=run, output_dir=out, **changes)


def iter_compare(
    methods, config: TrainConfig, prepared: Prepared | None = None, stop: Stop = None, lrs: dict | None = None
):
    """Train `methods` side by side on the same data order and seed, one step each in turn.

    lrs: optional {method: learning rate}; otherwise each method's default (times config.lr_multiplier).
    Yields every run's StepEvents interleaved, and each run's RunResult when it ends."""
    if not methods:
        raise DeloraVizError("choose at least one method to compare, e.g. ['lora', 'dora', 'delora']", field="methods")
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
        raise DeloraVizError(
            f"learning-rate multipliers must be positive numbers, got {multipliers!r}", field="multipliers"
        )
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
    """One row per run. eval_metric is the final evaluation (NaN for a diverged run: its model is not evaluated)."""
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


def sweep_steps_frame(results: list[RunResult]):
    """The sweep's curves, one row per run and step, averaged over the adapted layers: how far each run
    moved (delta_fro_mean/_max), DeLoRA's ceiling |lambda| max_j ||W[:, j]|| (bound_loose_mean; twice that for
    the paper init) and tight bound (bound_mean), the largest bound_ratio, lambda, and the training loss."""
    import pandas as pd

    frames = []
    for r in results:
        rows = r.tracker_frame()
        per_step = rows.groupby("step").agg(
            delta_fro_mean=("delta_fro", "mean"),
            delta_fro_max=("delta_fro", "max"),
            bound_mean=("bound", "mean"),
            bound_loose_mean=("bound_loose", "mean"),
            bound_ratio_max=("bound_ratio", "max"),
            lambda_mean=("lambda", "mean"),
        )
        loss = r.history_frame().set_index("step")["loss"]
        per_step["loss"] = loss.reindex(per_step.index)
        frames.append(per_step.reset_index().assign(method=r.method, lr_multiplier=r.config.lr_multiplier))
    columns = ["method", "lr_multiplier", "step"]
    out = pd.concat(frames, ignore_index=True)
    return out[columns + [c for c in out.columns if c not in columns]]


def lr_sweep_frames(methods, multipliers, config: TrainConfig, prepared: Prepared | None = None, stop: Stop = None):
    """{"lr_sweep": sweep_frame (one row per run) with a "baseline" column (the eval metric before training,
    dW = 0), "lr_sweep_steps": sweep_steps_frame (one row per run and step)}."""
    prepared = prepared or prepare(config)
    results = [e for e in iter_lr_sweep(methods, multipliers, config, prepared, stop) if isinstance(e, RunResult)]
    baseline = math.nan if prepared.baseline is None else prepared.baseline
    return {"lr_sweep": sweep_frame(results).assign(baseline=baseline), "lr_sweep_steps": sweep_steps_frame(results)}
