"""Training curves: how LoRA, DoRA and DeLoRA updates move over the steps, from the tracker's tables.

Layer views are in layers.py, the learning-rate sweep in sweep.py, the shared style in style.py.

Every function takes data (plus ``ax=None``) and returns a ``matplotlib.figure.Figure``; given an
``ax`` it draws there and returns ``ax.figure``. Figures are built with the object API (no pyplot),
so they work headless and never touch global state. Inputs (see ``track.py`` / ``train.py``):

- tracker frame: one row per (run, step, layer): delta_fro, w_fro, rel_delta, angle_*_deg, bound, lambda...
- history frame: one row per (run, step): loss, lr, eval_metric (NaN between evals), eval_name
- sweep frame:   one row per (method, lr_multiplier): final_distance, eval_metric, diverged

``bound`` and ``lambda`` are NaN for methods without them (LoRA, DoRA): NaNs are skipped, never plotted.
A frame without a ``run`` column is grouped by ``method``. Each method keeps one colour everywhere, and
one line style and marker (``line_style``, from ``frames.METHOD_STYLES``), so a line lying on another
stays visible. Legends name
methods in plain words (``names.label``: "delora" -> "DeLoRA").
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .. import names
from .frames import (
    METHOD_STYLES,
    NO_TURN,
    has_values,
    iter_runs,
    mean_by_step,
    method_style,
    numeric,
    require_rows,
    short_layer,
    worst_layer,
)
from .style import NORM, legend, new_axes, styled


def line_style(method: str, n_points: int, markers: int = 8) -> dict:
    """Keyword arguments for ``ax.plot``: the method's line style, width and marker (``frames.METHOD_STYLES``,
    shared with the app), the marker about ``markers`` times along ``n_points`` points, at an offset of the
    method's own (so two methods' markers never sit on the same points)."""
    style = method_style(method)
    every = max(1, n_points // markers)
    keys = list(METHOD_STYLES)
    offset = keys.index(method) * max(1, every // len(keys)) if method in keys else 0
    style["markevery"] = (min(offset, max(n_points - 1, 0)), every)
    return style


@styled
def plot_update_norm(tracker_df: pd.DataFrame, ax=None, show_worst_layer: bool = True) -> Figure:
    """Size of each update, ||dW||_F, against DeLoRA's guaranteed bound, over training.

    Solid/dashed lines with markers (one style per method): mean over layers of ||dW||_F per run.
    Thin dashed lines (label "<run> bound", gid "bound-mean:<run>"): DeLoRA's tight bound on ||dW||_F,
    (|lambda|/r) sum_i ||a_i/||a_i|| * w||, which lies under the ceiling |lambda| max_j w_j (w_j the frozen
    column norms of W). Thin lines: the layer closest to its bound at the last step (its norm solid, its
    bound dotted, gid "bound-worst:<run>"). Look for: LoRA's norm grows with training and learning rate,
    unchecked; DeLoRA's stays under its dashed line, which moves when lambda moves (and, for the tight
    bound, when the rows of A turn).
    """
    require_rows(tracker_df, ["step", "method", "delta_fro"], "plot_update_norm")
    fig, (ax,) = new_axes(ax, width=8.8, height=4.4)
    for run, method, rows, color in iter_runs(tracker_df):
        name = names.label(run)
        m = mean_by_step(rows, "delta_fro")
        ax.plot(m.index, m.values, color=color, label=name, gid=f"norm:{run}", **line_style(method, len(m)))
        if not has_values(rows, "bound"):
            continue
        b = mean_by_step(rows, "bound")
        ax.plot(b.index, b.values, "--", color=color, lw=1.2, label=f"{name} bound", gid=f"bound-mean:{run}")
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
                label=f"{name}, closest layer: {short}",
                gid=f"norm-worst:{run}",
            )
            ax.plot(
                one["step"],
                one["bound"],
                ":",
                color=color,
                lw=1.1,
                alpha=0.9,
                label=f"{name} bound, closest layer",
                gid=f"bound-worst:{run}",
            )
    many = tracker_df["layer"].nunique() > 1 if "layer" in tracker_df.columns else False
    ax.set(
        title="Update size vs DeLoRA's bound" + (" (mean over layers)" if many else ""),
        xlabel="step",
        ylabel=f"{NORM} (Frobenius norm)",
    )
    ax.set_ylim(bottom=0)
    legend(ax)
    return fig


@styled
def plot_angles(tracker_df: pd.DataFrame, ax=None) -> Figure:
    """Direction of the update: angle(dW, W) and angle(W + dW, W) in degrees, mean over layers.

    Left (or solid): the angle between the update and the pretrained weight; near 90 deg means the
    update is nearly orthogonal to W, which almost every direction is in high dimension, so sub-degree
    wiggles around 90 are not a signal (``plot_angle_to_w`` shades where random directions land). Right
    (or dotted): how far the adapted weight has turned away from W; it stays small while ||dW|| << ||W||.
    """
    require_rows(tracker_df, ["step", "method", "angle_delta_w_deg", "angle_w_prime_deg"], "plot_angles")
    fig, axes = new_axes(ax, ncols=2, width=5.6)
    a1, a2 = (axes[0], axes[0]) if len(axes) == 1 else axes
    for run, method, rows, color in iter_runs(tracker_df):
        name = names.label(run)
        m = mean_by_step(rows, "angle_delta_w_deg")
        a1.plot(
            m.index, m.values, color=color, label=name + (" ∠(ΔW, W)" if a1 is a2 else ""), **line_style(method, len(m))
        )
        m = mean_by_step(rows, "angle_w_prime_deg")
        style = line_style(method, len(m))
        if a1 is a2:
            style["ls"] = ":"
        a2.plot(m.index, m.values, color=color, label=f"{name} ∠(W+ΔW, W)" if a1 is a2 else "_nolegend_", **style)
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

    lambda, with W's frozen column norms w_j, sets the update's scale and its ceiling:
    ||dW||_F <= |lambda| max_j w_j (2 |lambda| max_j w_j with the paper init), so the ceiling moves as
    lambda learns. lambda does not set ||dW|| alone: A and B set the direction AND where the norm sits
    below the ceiling (how aligned the r normalised rank-one terms are). Look for how far lambda drifts
    from its initial value, and how fast with the learning rate.
    """
    require_rows(tracker_df, ["step", "method", "lambda"], "plot_lambda")
    runs = [r for r in iter_runs(tracker_df) if has_values(r[2], "lambda")]
    if not runs:
        raise ValueError("plot_lambda: no run has a finite 'lambda' (it is NaN for LoRA/DoRA); track a DeLoRA run")
    fig, (ax,) = new_axes(ax)
    for run, method, rows, color in runs:
        lam = numeric(rows, "lambda").groupby(rows["step"]).agg(["mean", "min", "max"]).dropna().sort_index()
        ax.fill_between(lam.index, lam["min"], lam["max"], color=color, alpha=0.2, lw=0)
        label = names.label(run) + (" (band: min to max over layers)" if rows["layer"].nunique() > 1 else "")
        ax.plot(lam.index, lam["mean"], color=color, label=label, **line_style(method, len(lam)))
    ax.set(title="DeLoRA's learned strength λ", xlabel="step", ylabel="λ (dimensionless)")
    legend(ax)
    return fig


NO_SIZE = 1e-6  # ||dW|| / ||W|| below this is float32 rounding, not an update with a direction


def direction_strength_table(tracker_df: pd.DataFrame) -> pd.DataFrame:
    """Direction turned so far and strength, per run and step, means over layers.

    turned_deg: the running sum of turn_deg per layer (the angle between dW at this record and at the
    previous one; NaN at a layer's first records counts 0), then the mean over layers. A turn away from an
    update of no size (previous ||dW|| / ||W|| below ``NO_SIZE`` = 1e-6) counts 0 too: that "direction" is
    float32 rounding (DoRA's start, m / ||W|| rounded, gives ||dW|| / ||W|| ~ 1e-8 and a turn of ~90 degrees).
    rel_delta: ||dW||_F / ||W||_F. ceiling_rel: DeLoRA's ceiling over ||W||_F, bound_loose / w_fro, where bound_loose is
    |lambda| max_j w_j (2 |lambda| max_j w_j with the paper init); NaN for methods without one.
    to_ceiling: ||dW||_F / ceiling. Columns: run, method, step, turned_deg, rel_delta, ceiling_rel, to_ceiling.
    """
    require_rows(tracker_df, ["step", "method", "layer", "delta_fro", "w_fro"], "direction_strength_table")
    if "turn_deg" not in tracker_df.columns:
        raise ValueError(NO_TURN)
    parts = []
    for run, method, rows, _ in iter_runs(tracker_df):
        rows = rows.sort_values("step", kind="stable")
        delta, w_fro = numeric(rows, "delta_fro"), numeric(rows, "w_fro")
        previous = (delta / w_fro).groupby(rows["layer"]).shift(1)  # the same layer's previous record
        turn = numeric(rows, "turn_deg").where(previous >= NO_SIZE, 0.0).fillna(0.0)
        ceiling = numeric(rows, "bound_loose") if "bound_loose" in rows.columns else delta * float("nan")
        per_layer = pd.DataFrame(
            {
                "step": rows["step"],
                "turned_deg": turn.groupby(rows["layer"]).cumsum(),
                "rel_delta": delta / w_fro,
                "ceiling_rel": ceiling / w_fro,
                "to_ceiling": (delta / ceiling).replace([float("inf"), -float("inf")], float("nan")),
            }
        )
        means = per_layer.groupby("step").mean().reset_index()
        parts.append(means.assign(run=run, method=method))
    columns = ["run", "method", "step", "turned_deg", "rel_delta", "ceiling_rel", "to_ceiling"]
    return pd.concat(parts, ignore_index=True)[columns]


@styled
def plot_direction_and_strength(tracker_df: pd.DataFrame, title: str | None = None) -> Figure:
    """The paper's title over training: how far each update's direction has turned, beside its strength.

    Left: direction turned so far, the running sum of turn_deg (angle between dW at consecutive records),
    mean over layers (gid "turned:<run>"). Right: strength ||dW||_F / ||W||_F (gid "strength:<run>"), with
    DeLoRA's ceiling |lambda| max_j w_j / ||W||_F dashed (2 |lambda| max_j w_j with the paper init; gid
    "ceiling:<run>"; it moves as lambda learns).
    Both panels share one style per method. When a bounded run reaches more than half of its last
    strength at step 1, an arrow marks "the jump at step 1" (PEFT's zero-init B). Look for: DeLoRA keeps
    turning at a flat strength under its ceiling (direction and strength learned apart); LoRA's and
    DoRA's strength grows while they turn (both come from the same factors).
    """
    table = direction_strength_table(tracker_df)
    fig = Figure(figsize=(12.0, 4.3), layout="constrained")
    turn_ax, size_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    colors = {run: color for run, _, _, color in iter_runs(tracker_df)}
    for run, rows in table.groupby("run", sort=False):
        method, color, name = str(rows["method"].iloc[0]), colors[run], names.label(run)
        style = line_style(method, len(rows))
        turn_ax.plot(rows["step"], rows["turned_deg"], color=color, label=name, gid=f"turned:{run}", **style)
        size_ax.plot(rows["step"], rows["rel_delta"], color=color, label=name, gid=f"strength:{run}", **style)
        if rows["ceiling_rel"].notna().any():
            size_ax.plot(
                rows["step"], rows["ceiling_rel"], color=color, ls=(0, (5, 3)), lw=1.2,
                label=f"{name} ceiling {'2' if method == 'delora-paper' else ''}|λ| max_j w_j", gid=f"ceiling:{run}",
            )  # fmt: skip
            first = rows[rows["step"] == 1]
            if len(first) and first["rel_delta"].iloc[0] > 0.5 * rows["rel_delta"].iloc[-1]:
                y1 = float(first["rel_delta"].iloc[0])
                size_ax.annotate(
                    f"{name}: the jump at step 1",
                    (1, y1),
                    xytext=(0.12, 0.5),
                    textcoords="axes fraction",
                    arrowprops=dict(arrowstyle="->", color="0.3"),
                    fontsize=9,
                )
    turn_ax.set(
        title="Direction: how far ΔW has turned so far",
        xlabel="step",
        ylabel="Σ ∠(ΔW at step t, ΔW at t−1), degrees",
    )
    size_ax.set(title="Strength: ‖ΔW‖ / ‖W‖", xlabel="step", ylabel=r"$\|\Delta W\|_F / \|W\|_F$")
    for ax in (turn_ax, size_ax):
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
    legend(turn_ax)
    legend(size_ax)
    many = tracker_df["layer"].nunique() > 1
    fig.suptitle(title or ("Direction and strength of the update" + (" (mean over layers)" if many else "")))
    return fig


@styled
def plot_angle_to_w(tracker_df: pd.DataFrame, random_band: tuple[float, float] | None = None, span: float = 45.0):
    """angle(dW, W) over training, mean over layers, on a wide range (90 +- ``span`` degrees).

    ``random_band`` = (low, high) in degrees: where random directions of the same rank land (e.g.
    ``angle_explorer.random_angle_band``), shaded; a difference smaller than the band is noise, not a signal.
    The range is wide on purpose: zoomed to a degree, sub-degree noise looks like a trend. Records of no size
    (||dW|| / ||W|| below ``NO_SIZE``: dW = 0, or DoRA's rounding at its start) have no direction: skipped.
    """
    require_rows(tracker_df, ["step", "method", "angle_delta_w_deg"], "plot_angle_to_w")
    if "rel_delta" in tracker_df.columns:
        tracker_df = tracker_df[numeric(tracker_df, "rel_delta") >= NO_SIZE]
    fig, (ax,) = new_axes(None, width=8.0, height=4.0)
    if random_band is not None:
        low, high = random_band
        ax.axhspan(low, high, color="0.75", alpha=0.6, lw=0, label=f"random directions ({low:.1f}° to {high:.1f}°)")
    for run, method, rows, color in iter_runs(tracker_df):
        m = mean_by_step(rows, "angle_delta_w_deg")
        ax.plot(
            m.index, m.values, color=color, label=names.label(run), gid=f"angle:{run}", **line_style(method, len(m))
        )
    ax.set_ylim(90 - span, 90 + span)
    ax.set_yticks(np.arange(90 - span, 90 + span + 1e-9, 15))
    ax.set(title="∠(ΔW, W): every update is nearly orthogonal to W", xlabel="step", ylabel="angle (degrees)")
    ax.annotate(
        "90° = orthogonal to W: in many dimensions,\nalmost every direction is",
        (0.02, 0.06),
        xycoords="axes fraction",
        fontsize=9,
        color="0.3",
    )
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
