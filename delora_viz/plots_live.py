"""Long-format frames for live plots (Gradio's ``gr.LinePlot(x="step", y="value", color="series")``).

Pure pandas, cheap enough to rebuild after every training step: a ``gr.LinePlot`` redraws in a
few ms where a matplotlib figure costs ~100 ms. Each frame has the columns ``step``, ``value``,
``series``, holds means over layers, and keeps at most ``max_points`` evenly spaced rows per
series (always the last one). An empty input gives an empty frame, so the app can call these
before the first step; a metric with no data (``lambda`` of a LoRA-only run) does too.

    frame = live_frame(tracker_df, "delta_fro")
    gr.LinePlot(frame, x="step", y="value", color="series", color_map=live_colors(frame, tracker_df))
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .plots import _has, _mean_by_step, _shade, iter_runs, method_color

LIVE_METRICS = ("delta_fro", "angle_delta_w_deg", "lambda", "rel_delta")
COLUMNS = ("step", "value", "series")


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"step": pd.Series(dtype="int64"), "value": pd.Series(dtype=float),
                         "series": pd.Series(dtype=str)})


def _series(values: pd.Series, name: str, max_points: int) -> pd.DataFrame:
    """One series as long rows, downsampled evenly to <= max_points, keeping the last point."""
    values = values.dropna()
    if len(values) > max_points:
        keep = np.unique(np.linspace(len(values) - 1, 0, max_points).round().astype(int))
        values = values.iloc[keep]
    return pd.DataFrame({"step": values.index.to_numpy(), "value": values.to_numpy(dtype=float), "series": name})


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else _empty()


def _check(max_points: int) -> None:
    if int(max_points) < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")


def live_frame(tracker_df: pd.DataFrame, metric: str, max_points: int = 300) -> pd.DataFrame:
    """Mean over layers of one tracker metric per run, as (step, value, series) rows.

    ``metric``: "delta_fro" (series "<run> ||dW||", plus "<run> bound" for runs with a bound),
    "angle_delta_w_deg" (degrees), "lambda" (only runs that have one) or "rel_delta"
    (||dW||_F / ||W||_F); for these three, series = run label.
    """
    if metric not in LIVE_METRICS:
        raise ValueError(f"live_frame: unknown metric {metric!r}; choose one of {LIVE_METRICS}")
    _check(max_points)
    if tracker_df is None or len(tracker_df) == 0:
        return _empty()
    missing = [c for c in ("step", "method", metric) if c not in tracker_df.columns]
    if missing:
        raise ValueError(f"live_frame: tracker frame is missing column(s) {missing}")
    parts = []
    for run, _, rows, _ in iter_runs(tracker_df):
        if metric == "delta_fro":
            parts.append(_series(_mean_by_step(rows, metric), f"{run} ||dW||", max_points))
            if _has(rows, "bound"):
                parts.append(_series(_mean_by_step(rows, "bound"), f"{run} bound", max_points))
        elif _has(rows, metric):
            parts.append(_series(_mean_by_step(rows, metric), run, max_points))
    return _concat(parts)


def live_loss_frame(history_df: pd.DataFrame, max_points: int = 300) -> pd.DataFrame:
    """Training loss per run as (step, value, series = run) rows, downsampled like ``live_frame``."""
    _check(max_points)
    if history_df is None or len(history_df) == 0:
        return _empty()
    missing = [c for c in ("step", "method", "loss") if c not in history_df.columns]
    if missing:
        raise ValueError(f"live_loss_frame: history frame is missing column(s) {missing}")
    return _concat([_series(_mean_by_step(rows, "loss"), run, max_points) for run, _, rows, _ in iter_runs(history_df)])


def live_colors(frame: pd.DataFrame, source_df: pd.DataFrame | None = None) -> dict[str, str]:
    """``color_map`` for gr.LinePlot: each series of ``frame`` in its run's colour, bounds lighter.

    Pass the tracker/history frame as ``source_df`` to colour runs by their ``method`` column
    (as the matplotlib figures do); without it the method is guessed from the run label.
    """
    runs = {run: color for run, _, _, color in iter_runs(source_df)} if source_df is not None and len(source_df) else {}
    colors = {}
    for s in pd.unique(frame["series"]):
        run = s.removesuffix(" bound").removesuffix(" ||dW||")
        color = runs.get(run) or method_color(run)
        colors[s] = _shade(color, 0.45) if s.endswith(" bound") else color
    return colors
