"""Notebook 03's slider: one layer of one tracked run over the steps (||dW||_F with DeLoRA's bound and ceiling,
the two angles, lambda), on axes fixed by the whole run set; the same at a few (layer, method) pairs, for a
static page.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .frames import method_color, numeric, require_rows, short_layer
from .style import NORM, legend, styled

ANGLE_METHODS = ("lora", "dora", "delora")


def _run_labels(tracker_df: pd.DataFrame) -> pd.Series:
    return tracker_df["run"].fillna(tracker_df["method"]) if "run" in tracker_df.columns else tracker_df["method"]


def _span(values: pd.Series, bottom: float | None = None, pad: float = 0.06) -> tuple[float, float] | None:
    """Axis limits holding every finite value of the WHOLE frame, so a slider's picture moves, not its axes."""
    v = values.replace([np.inf, -np.inf], np.nan).dropna()
    if v.empty:
        return None
    lo, hi = (float(v.min()) if bottom is None else bottom), float(v.max())
    width = (hi - lo) or max(abs(hi), 1.0)
    return (lo - (pad * width if bottom is None else 0.0), hi + pad * width)


@styled
def plot_layer_trajectory(tracker_df: pd.DataFrame, layer: str, method: str | None = None) -> Figure:
    """One layer of one run over the steps: ||dW||_F with DeLoRA's bound and ceiling, the two angles, lambda.

    ``method`` picks the run (a frame's ``run`` column, else ``method``); None takes the first. The axes are
    FIXED by the whole frame (every layer, every run), so moving the slider moves the curves, not the ticks.
    Bound: (|lambda|/r) sum_i ||a_i/||a_i|| * w|| (dashed), ceiling: |lambda| max_j ||W[:, j]|| (dotted; twice that
    for the paper init); both follow the CURRENT lambda, which is trained."""
    require_rows(tracker_df, ["step", "layer", "method", "delta_fro"], "plot_layer_trajectory")
    runs = _run_labels(tracker_df)
    method = str(runs.iloc[0]) if method is None else method
    rows = tracker_df[(runs == method) & (tracker_df["layer"] == layer)].sort_values("step")
    if rows.empty:
        raise ValueError(
            f"no rows for layer {layer!r} of {method!r}; layers: {sorted(tracker_df['layer'].unique())[:6]}..., "
            f"runs: {sorted(pd.unique(runs))}"
        )
    color = method_color(str(rows["method"].iloc[0]))
    fig = Figure(figsize=(13.0, 3.8), layout="constrained")
    size, angles, lam = (fig.add_subplot(1, 3, i + 1) for i in range(3))
    size.plot(
        rows["step"], numeric(rows, "delta_fro"), "-o", ms=3, color=color, label="this layer's " + NORM, gid="delta_fro"
    )
    for column, style, label in (("bound", "--", "DeLoRA bound (current λ)"), ("bound_loose", ":", "DeLoRA ceiling")):
        if column in rows and numeric(rows, column).notna().any():
            size.plot(rows["step"], numeric(rows, column), style, color="0.2", lw=1.6, label=label, gid=column)
    tops = [numeric(tracker_df, c) for c in ("delta_fro", "bound", "bound_loose") if c in tracker_df]
    size.set_ylim(_span(pd.concat(tops), bottom=0.0))
    size.set(title=f"{method}: {layer}", xlabel="step", ylabel=NORM)
    size.title.set_fontsize(9)
    legend(size)
    angles.plot(rows["step"], numeric(rows, "angle_delta_w_deg"), "-o", ms=3, color=color, gid="angle_delta_w")
    angles.set_ylim(_span(numeric(tracker_df, "angle_delta_w_deg")))
    angles.set(xlabel="step", ylabel=r"$\angle(\Delta W, W)$ (degrees, solid)", title="angles to W")
    twin = angles.twinx()  # angle(W + dW, W): how far the adapted weight turned; a much smaller scale
    twin.plot(rows["step"], numeric(rows, "angle_w_prime_deg"), ":s", ms=3, color=color, gid="angle_w_prime")
    twin.set_ylim(_span(numeric(tracker_df, "angle_w_prime_deg"), bottom=0.0))
    twin.set_ylabel(r"$\angle(W + \Delta W, W)$ (degrees, dotted)")
    if "lambda" in rows and numeric(rows, "lambda").notna().any():
        lam.plot(rows["step"], numeric(rows, "lambda"), "-o", ms=3, color=color, gid="lambda")
        lam.set_ylim(_span(numeric(tracker_df, "lambda")))
        lam.set(title="λ (DeLoRA's learned strength)", xlabel="step", ylabel="λ")
    else:
        lam.plot(rows["step"], numeric(rows, "rel_delta"), "-o", ms=3, color=color, gid="rel_delta")
        lam.set_ylim(_span(numeric(tracker_df, "rel_delta"), bottom=0.0))
        lam.set(title="relative size (no λ)", xlabel="step", ylabel=r"$\|\Delta W\|_F / \|W\|_F$")
    for ax in (size, angles, lam):
        ax.set_xlim(_span(numeric(tracker_df, "step"), pad=0.02))
    return fig


@styled
def plot_layer_small_multiples(tracker_df: pd.DataFrame, layers, methods=None) -> Figure:
    """The slider of ``plot_layer_trajectory`` at a few values, for a page that cannot move it: one panel per
    (layer, method), ||dW||_F over the steps with DeLoRA's bound (dashed) and ceiling (dotted), one shared
    y-axis (so a bigger curve IS a bigger update). Rows: layers; columns: methods (runs)."""
    require_rows(tracker_df, ["step", "layer", "method", "delta_fro"], "plot_layer_small_multiples")
    runs = _run_labels(tracker_df)
    methods = list(pd.unique(runs) if methods is None else methods)
    layers = list(layers)
    if not layers or not methods:
        raise ValueError("plot_layer_small_multiples: give at least one layer and one method")
    fig = Figure(figsize=(3.7 * len(methods) + 0.6, 2.6 * len(layers) + 0.5), layout="constrained")
    axes = fig.subplots(len(layers), len(methods), sharex=True, sharey=True, squeeze=False)
    tops = [numeric(tracker_df, c) for c in ("delta_fro", "bound", "bound_loose") if c in tracker_df]
    for i, layer in enumerate(layers):
        for j, method in enumerate(methods):
            ax = axes[i, j]
            rows = tracker_df[(runs == method) & (tracker_df["layer"] == layer)].sort_values("step")
            if rows.empty:
                raise ValueError(f"plot_layer_small_multiples: no rows for layer {layer!r} of {method!r}")
            color = method_color(str(rows["method"].iloc[0]))
            ax.plot(
                rows["step"],
                numeric(rows, "delta_fro"),
                "-",
                color=color,
                label=f"{NORM} (its colour)",
                gid="delta_fro",
            )
            for column, style, label in (("bound", "--", "DeLoRA bound"), ("bound_loose", ":", "DeLoRA ceiling")):
                if column in rows and numeric(rows, column).notna().any():
                    ax.plot(rows["step"], numeric(rows, column), style, color="0.2", lw=1.4, label=label, gid=column)
            if i == 0:
                ax.set_title(str(method))
            if j == 0:
                ax.set_ylabel(f"{short_layer(layer, 26)}\n{NORM}", fontsize=8.5)
            if i == len(layers) - 1:
                ax.set_xlabel("step")
    axes[0, 0].set_ylim(_span(pd.concat(tops), bottom=0.0))
    handles = {}
    for ax in axes.ravel():
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(list(handles.values()), list(handles), loc="outside right upper", frameon=False, fontsize=8.5)
    return fig
