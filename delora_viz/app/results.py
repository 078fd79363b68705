"""What the app hands out after a comparison (no Gradio in here): the metrics table, the downloads
(tracker CSV, figures, PEFT adapters) and the per-layer inspection of a trained model."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import pandas as pd
import torch

from ..delora.geometry import DoraUpdate, singular_values
from ..instruments.adapters import find_adapters
from ..instruments.dense import dense_dora_delta
from ..plots import (
    plot_angles,
    plot_bound_heatmap,
    plot_lambda,
    plot_loss,
    plot_singular_values,
    plot_turn_strength,
    plot_update_norm,
    save_figures,
)
from ..plots.frames import NO_TURN
from ..plots.runs import plot_eval
from ..training.hub import preset_key, public_model_id
from ..training.loop import TASK_TYPES, Prepared, RunResult
from ..training.methods import METHODS, save_adapter

TABLE_COLUMNS = (
    "run",
    "method",
    "status",
    "steps",
    "lr",
    "eval",
    "delta_fro_mean",
    "rel_delta_mean",
    "angle_delta_w_deg_mean",
    "bound_ratio_max",
    "lambda_mean",
    "seconds",
)
# the table's headers, short enough for 1440 px, with units (means and max over layers; the frame keeps the
# tracker's names until display)
HEADERS = {
    "run": "run",
    "method": "method",
    "status": "status",
    "steps": "steps",
    "lr": "lr",
    "eval": "final eval",
    "delta_fro_mean": "‖ΔW‖_F mean",
    "rel_delta_mean": "‖ΔW‖/‖W‖ mean",
    "angle_delta_w_deg_mean": "∠(ΔW,W) ° mean",
    "bound_ratio_max": "‖ΔW‖/bound max (≤ 1)",
    "lambda_mean": "λ mean",
    "seconds": "time s",
}
SHOW_RANKS = 4  # singular values shown: 4 r (LoRA/DeLoRA have <= r non-zero, the paper init 2r)
LAYER_COLUMNS = (
    "run",
    "step",
    "delta_fro",
    "w_fro",
    "rel_delta",
    "angle_delta_w_deg",
    "bound",
    "bound_ratio",
    "lambda",
    "sigma_max",
    "dora_mag_drift",
)


def _blank_nan(df: pd.DataFrame) -> pd.DataFrame:
    """NaN -> None, so the table shows a blank cell (and the JSON stays valid)."""
    return df.astype(object).where(df.notna(), None)


def rounded(df: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """Float columns to `digits` significant digits, for display."""
    out = df.copy()
    for col in out.select_dtypes("float").columns:
        out[col] = out[col].map(lambda v: float(f"{v:.{digits}g}"))
    return out


def results_table(results: list[RunResult]) -> pd.DataFrame:
    """One row per run: final eval metric, update size, bound use, lambda, status, time."""
    rows = []
    for r in results:
        f = r.final
        row = {k: f.get(k, math.nan) for k in TABLE_COLUMNS}
        row.update(
            method=METHODS[r.method].label if r.method in METHODS else r.method,
            status=r.status,
            eval=f"{f['eval_metric']:.4g} {f['eval_name']}" if not math.isnan(f["eval_metric"]) else None,
        )
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    numeric = [c for c in TABLE_COLUMNS if c not in ("run", "method", "status", "eval", "steps")]
    df[numeric] = df[numeric].apply(pd.to_numeric, errors="coerce").apply(lambda c: c.map(lambda v: float(f"{v:.4g}")))
    return _blank_nan(df)


def display_table(table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The results table with readable headers (an empty one before the first run, not "1 2 3"). The method
    column is left out: a comparison names each run by its method, and 1440 px holds the rest unbroken."""
    table = pd.DataFrame(columns=list(TABLE_COLUMNS)) if table is None else table
    return table.drop(columns=["method"]).rename(columns=HEADERS)


def runs_tracker_frame(results: list[RunResult]) -> pd.DataFrame:
    frames = [r.tracker_frame() for r in results if r.rows]
    df = pd.concat(frames, ignore_index=True)
    return df[["run"] + [c for c in df.columns if c != "run"]]


def history_frame(results: list[RunResult]) -> pd.DataFrame:
    return pd.concat([r.history_frame() for r in results], ignore_index=True)


def figures(results: list[RunResult]) -> dict:
    """The teaching figures of a comparison (matplotlib), by file name."""
    tracker, history = runs_tracker_frame(results), history_frame(results)
    figs = {
        "update_norm": plot_update_norm(tracker),
        "angles": plot_angles(tracker),
        "loss": plot_loss(history),
        "bound_heatmap": plot_bound_heatmap(tracker),
    }
    if "turn_deg" in tracker.columns:
        figs["turn_vs_strength"] = plot_turn_strength(tracker)
    if pd.to_numeric(tracker["lambda"], errors="coerce").notna().any():
        figs["lambda"] = plot_lambda(tracker)
    if pd.to_numeric(history.get("eval_metric"), errors="coerce").notna().any():
        figs["accuracy" if (history["eval_name"] == "accuracy").all() else "eval"] = plot_eval(history)
    return figs


def _zip(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(folder))
    return target


def _base_model_id(result: RunResult, prepared: Prepared) -> str:
    """What the adapter names as its base: a preset's public Hub id, else the id the model was loaded
    from (a Hub id when served: never the server folder it was downloaded to)."""
    if preset_key(result.config.model) is not None:
        return public_model_id(result.config.model)
    return str(prepared.loaded.source)


def write_downloads(results: list[RunResult], prepared: Prepared, directory: Path) -> list[str]:
    """tracker CSV (all runs, a `run` column), per-step log CSV, figures (PNG zip), adapters (zip of PEFT dirs)."""
    directory = Path(directory)
    tracker = directory / "delora-viz_tracker.csv"
    runs_tracker_frame(results).to_csv(tracker, index=False)
    log = directory / "delora-viz_loss-and-eval.csv"
    history_frame(results).to_csv(log, index=False)
    save_figures(figures(results), directory / "figures", dpi=120)
    for r in results:
        save_adapter(
            r.model,
            r.method,
            directory / "adapters" / r.run.replace(" ", "_"),
            base_model_name_or_path=_base_model_id(r, prepared),
            task_type=TASK_TYPES[prepared.loaded.task],
            head_modules=prepared.loaded.head_modules,
        )
    zips = [
        _zip(directory / "figures", directory / "delora-viz_figures.zip"),
        _zip(directory / "adapters", directory / "delora-viz_adapters.zip"),
    ]
    return [str(p) for p in (tracker, log, *zips)]


# ----------------------------------------------------------------------------- inspect one layer
def layer_names(results: list[RunResult]) -> list[str]:
    names: list[str] = []
    for r in results:
        names.extend(row["layer"] for row in r.rows if row["layer"] not in names)
    return list(dict.fromkeys(names))


@torch.no_grad()
def layer_singular_values(result: RunResult, layer: str) -> torch.Tensor:
    """Singular values of the trained dW of one layer. DoRA's update is not low rank: dense, one layer."""
    if result.model is None:
        raise ValueError(f"run {result.run!r} kept its numbers but not its model (it ran out of memory): train again")
    views = {v.name: v for v in find_adapters(result.model)}
    if layer not in views:
        raise ValueError(f"run {result.run!r} has no adapted layer {layer!r}")
    view = views[layer]
    update = view.update()
    if isinstance(update, DoraUpdate):
        W = view.weight().detach().float()
        dense = dense_dora_delta(
            W, DoraUpdate(update.A.float(), update.B.float(), update.scaling, update.magnitude.float())
        )
        return torch.linalg.svdvals(dense).cpu()
    return singular_values(update.to(torch.float32)).cpu()


def inspect_layer(results: dict[str, RunResult], run: str, layer: str):
    """(singular values figure, bound heatmap of `run`, turn-vs-strength figure or None, numbers table, note).

    The singular values, the turn view and the numbers show `layer` in every run, so methods compare;
    `note` says why the turn view is missing (a history without turn_deg), else ""."""
    if not results:
        raise ValueError("nothing to inspect yet: run a comparison first (Compare tab)")
    if run not in results:
        raise ValueError(f"choose a run: one of {', '.join(results)}")
    ordered = [results[run]] + [r for name, r in results.items() if name != run]
    svals = {r.run: layer_singular_values(r, layer) for r in ordered}
    tracker = runs_tracker_frame(ordered)
    one = tracker[tracker["layer"] == layer]
    heat = plot_bound_heatmap(runs_tracker_frame([results[run]]), run=run)
    turn, note = (plot_turn_strength(one), "") if "turn_deg" in one.columns else (None, f" · {NO_TURN}")
    shown = SHOW_RANKS * max(r.config.r for r in ordered)  # DoRA's dense dW has min(m, n) values: show the head
    sv_fig = plot_singular_values({run: values[:shown] for run, values in svals.items()})
    sv_fig.axes[0].set_title(f"Singular values of ΔW (first {shown})\n{layer}")
    last = one.loc[one.groupby("run", sort=False)["step"].idxmax(), list(LAYER_COLUMNS)]
    numbers = last.assign(sigma_max=[float(svals[r][0]) if len(svals[r]) else math.nan for r in last["run"]])
    numbers = numbers.apply(lambda c: c.map(lambda v: float(f"{v:.4g}") if isinstance(v, float) else v))
    return sv_fig, heat, turn, _blank_nan(numbers.reset_index(drop=True)), note
