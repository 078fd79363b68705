"""Training curves: how LoRA, DoRA and DeLoRA updates move over the steps, from the tracker's tables.

Layer views are in layers.py, the learning-rate sweep in sweep.py, the shared style in style.py.

Every function takes data (plus ``ax=None``) and returns a ``matplotlib.figure.Figure``; given an
``ax`` it draws there and returns ``ax.figure``. Figures are built with the object API (no pyplot),
so they work headless and never touch global state. Inputs (see ``track.py`` / ``train.py``):

- tracker frame: one row per (run, step, layer): delta_fro, w_fro, rel_delta, angle_*_deg, bound, lambda...
- history frame: one row per (run, step): loss, lr, eval_metric (NaN between evals), eval_name
- sweep frame:   one row per (method, lr_multiplier): final_distance, eval_metric, diverged

``bound`` and ``lambda`` are NaN for methods without them (LoRA, DoRA): NaNs are skipped, never plotted.
A frame without a ``run`` column is grouped by ``method``. Each method keeps one colour everywhere.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from .frames import (
    has_values,
    iter_runs,
    mean_by_step,
    numeric,
    require_rows,
    short_layer,
    worst_layer,
)
from .style import NORM, legend, new_axes, styled


@styled
def plot_update_norm(tracker_df: pd.DataFrame, ax=None, show_worst_layer: bool = True) -> Figure:
    """Size of each update, ||dW||_F, against DeLoRA's guaranteed bound, over training.

    Solid lines: mean over layers of ||dW||_F per run. Dashed lines (label "bound ...", gid
    "bound-mean:<run>"): DeLoRA's bound on ||dW||_F, |lambda| times the frozen column norms of W.
    Thin lines: the layer closest to its bound at the last step (its norm solid, its bound dotted,
    gid "bound-worst:<run>"). Look for: LoRA's norm grows with training and learning rate,
    unchecked; DeLoRA's stays under its dashed line, which moves only when lambda moves.
    """
    require_rows(tracker_df, ["step", "method", "delta_fro"], "plot_update_norm")
    fig, (ax,) = new_axes(ax, width=8.8, height=4.4)
    for run, _, rows, color in iter_runs(tracker_df):
        m = mean_by_step(rows, "delta_fro")
        ax.plot(m.index, m.values, color=color, label=f"{run} (mean over layers)", gid=f"norm:{run}")
        if not has_values(rows, "bound"):
            continue
        b = mean_by_step(rows, "bound")
        ax.plot(b.index, b.values, "--", color=color, label=f"bound · {run} (mean)", gid=f"bound-mean:{run}")
        layer = worst_layer(rows) if show_worst_layer else None
        if layer is not None:
            one = rows[rows["layer"] == layer].sort_values("step")
            short = short_layer(layer, 28)
            ax.plot(
                one["step"],
                one["delta_fro"],
                color=color,
                lw=0.9,
                alpha=0.8,
                label=f"{run}, worst layer: {short}",
                gid=f"norm-worst:{run}",
            )
            ax.plot(
                one["step"],
                one["bound"],
                ":",
                color=color,
                lw=1.1,
                alpha=0.9,
                label=f"bound · {run}, worst layer",
                gid=f"bound-worst:{run}",
            )
    ax.set(title="Update size vs DeLoRA's bound", xlabel="step", ylabel=f"{NORM} (Frobenius norm)")
    ax.set_ylim(bottom=0)
    legend(ax)
    return fig


@styled
def plot_angles(tracker_df: pd.DataFrame, ax=None) -> Figure:
    """Direction of the update: angle(dW, W) and angle(W + dW, W) in degrees, mean over layers.

    Left (or solid): the angle between the update and the pretrained weight; near 90 deg means the
    update is nearly orthogonal to W (typical in high dimension). Right (or dotted): how far the
    adapted weight has turned away from W; it stays small while ||dW|| << ||W||.
    """
    require_rows(tracker_df, ["step", "method", "angle_delta_w_deg", "angle_w_prime_deg"], "plot_angles")
    fig, axes = new_axes(ax, ncols=2, width=5.6)
    a1, a2 = (axes[0], axes[0]) if len(axes) == 1 else axes
    for run, _, rows, color in iter_runs(tracker_df):
        m = mean_by_step(rows, "angle_delta_w_deg")
        a1.plot(m.index, m.values, color=color, label=f"{run}" + (" ∠(ΔW, W)" if a1 is a2 else ""))
        m = mean_by_step(rows, "angle_w_prime_deg")
        a2.plot(
            m.index,
            m.values,
            ":" if a1 is a2 else "-",
            color=color,
            label=f"{run} ∠(W+ΔW, W)" if a1 is a2 else "_nolegend_",
        )
    a1.axhline(90, color="0.6", lw=0.8, ls=":", zorder=0)  # orthogonal to W
    if a1 is a2:
        a1.set(title="Update angles (mean over layers)", xlabel="step", ylabel="angle (degrees)")
    else:
        a1.set(title="∠(ΔW, W): direction of the update", xlabel="step", ylabel="angle (degrees)")
        a2.set(title="∠(W+ΔW, W): how far W has turned", xlabel="step", ylabel="angle (degrees)")
    legend(a1)
    return fig


@styled
def plot_lambda(tracker_df: pd.DataFrame, ax=None) -> Figure:
    """DeLoRA's learned strength lambda over training: mean over layers, band = min..max over layers.

    lambda alone sets the update's scale (||dW||_F <= |lambda| max_j ||W[:, j]||), decoupled from
    its direction. Look for how far it drifts from its initial value, and how fast with the lr.
    """
    require_rows(tracker_df, ["step", "method", "lambda"], "plot_lambda")
    runs = [r for r in iter_runs(tracker_df) if has_values(r[2], "lambda")]
    if not runs:
        raise ValueError("plot_lambda: no run has a finite 'lambda' (it is NaN for LoRA/DoRA); track a DeLoRA run")
    fig, (ax,) = new_axes(ax)
    for run, _, rows, color in runs:
        lam = numeric(rows, "lambda").groupby(rows["step"]).agg(["mean", "min", "max"]).dropna().sort_index()
        ax.fill_between(lam.index, lam["min"], lam["max"], color=color, alpha=0.2, lw=0)
        ax.plot(lam.index, lam["mean"], color=color, label=f"{run} (mean; band: min to max over layers)")
    ax.set(title="DeLoRA's learned strength λ", xlabel="step", ylabel="λ (dimensionless)")
    legend(ax)
    return fig


@styled
def plot_loss(history_df: pd.DataFrame, ax=None) -> Figure:
    """Training loss per run (light: raw, solid: smoothed) and the eval metric at each evaluation.

    The eval metric goes on a second panel, or on a twin y axis when ``ax`` is given.
    Look for: which method learns fastest at the same learning rate, and which one diverges.
    """
    require_rows(history_df, ["step", "method", "loss"], "plot_loss")
    has_eval = has_values(history_df, "eval_metric")
    fig, axes = new_axes(ax, ncols=2 if has_eval and ax is None else 1, width=5.6)
    a1 = axes[0]
    twin = has_eval and ax is not None
    a2 = a1.twinx() if twin else (axes[1] if has_eval else None)
    for run, _, rows, color in iter_runs(history_df):
        loss = mean_by_step(rows, "loss")
        if not loss.empty:
            a1.plot(loss.index, loss.values, color=color, alpha=0.25, lw=0.8, label="_nolegend_")
            smooth = loss.ewm(span=max(2, len(loss) // 10)).mean()
            a1.plot(smooth.index, smooth.values, color=color, label=run)
        if has_eval and has_values(rows, "eval_metric"):
            ev = mean_by_step(rows, "eval_metric")
            a2.plot(
                ev.index,
                ev.values,
                "o" if twin else "o-",
                color=color,
                ms=5,
                lw=1.2,
                label=f"{run} (eval)" if twin else run,
            )
    a1.set(title="Training loss", xlabel="step", ylabel="loss (cross-entropy)")
    if not has_eval:
        legend(a1)
        return fig
    names = history_df["eval_name"].dropna().unique() if "eval_name" in history_df else []
    name = str(names[0]) if len(names) == 1 else "eval metric"
    if name == "perplexity":
        a2.set_yscale("log")
    a2.set_ylabel(f"{name} (dots)" if twin else name)
    if twin:
        a2.grid(False)
        a2.spines["right"].set_visible(True)
        (h1, l1), (h2, l2) = a1.get_legend_handles_labels(), a2.get_legend_handles_labels()
        a2.legend(h1 + h2, l1 + l2, loc="best", ncols=2)  # on the twin: it is drawn on top
    else:
        a2.set(title=f"Eval {name}", xlabel="step")
        legend(a1)
        legend(a2)
    return fig


def save_figures(figs: dict[str, Figure], directory, dpi: int = 150) -> list[Path]:
    """Save each figure as ``<directory>/<name>.png`` (directory created); returns the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figs.items():
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).removesuffix(".png") or "figure"
        path = directory / f"{stem}.png"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        paths.append(path)
    return paths
