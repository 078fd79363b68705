"""Teaching figures: how LoRA, DoRA and DeLoRA updates move, drawn from the tracker's tables.

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

import functools
import re
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from .plots_live import (
    METHOD_COLORS, has_values, iter_runs, layer_step_table, live_colors, live_frame, live_loss_frame,
    mean_by_step, method_color, numeric, require_rows, short_layer, worst_layer,
)

__all__ = [  # the figures, plus the colours and live frames re-exported from plots_live
    "METHOD_COLORS", "method_color", "plot_update_norm", "plot_angles", "plot_lambda", "plot_loss",
    "plot_bound_heatmap", "plot_angle_strength", "plot_lr_sweep", "plot_singular_values", "save_figures",
    "live_frame", "live_loss_frame", "live_colors",
]

_STYLE = {
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
    "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8, "legend.frameon": False,
    "lines.linewidth": 1.8, "image.cmap": "viridis",
}
NORM = r"$\|\Delta W\|_F$"


def _styled(fn):
    """Run a plot function under the package style (a temporary rc_context, no global change)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(_STYLE):
            return fn(*args, **kwargs)
    return wrapper


def _axes(ax, ncols: int = 1, width: float = 6.4, height: float = 4.2):
    """New figure with ``ncols`` axes, or the given ``ax``. Returns (figure, list of axes)."""
    if ax is not None:
        return ax.figure, [ax]
    fig = Figure(figsize=(width * ncols if ncols > 1 else width, height), layout="constrained")
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def _legend(ax, handles=None, labels=None) -> None:
    """Legend inside when short; outside on the right when long (always, for polar)."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if len(handles) > 5 or getattr(ax, "name", "") == "polar":  # a half disc's top is at 0.75
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 0.75 if ax.name == "polar" else 1.0))
    else:
        ax.legend(handles, labels, loc="best")


@_styled
def plot_update_norm(tracker_df: pd.DataFrame, ax=None, show_worst_layer: bool = True) -> Figure:
    """Size of each update, ||dW||_F, against DeLoRA's guaranteed bound, over training.

    Solid lines: mean over layers of ||dW||_F per run. Dashed lines (label "bound ...", gid
    "bound-mean:<run>"): DeLoRA's bound on ||dW||_F, |lambda| times the frozen column norms of W.
    Thin lines: the layer closest to its bound at the last step (its norm solid, its bound dotted,
    gid "bound-worst:<run>"). Look for: LoRA's norm grows with training and learning rate,
    unchecked; DeLoRA's stays under its dashed line, which moves only when lambda moves.
    """
    require_rows(tracker_df, ["step", "method", "delta_fro"], "plot_update_norm")
    fig, (ax,) = _axes(ax, width=8.8, height=4.4)
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
            ax.plot(one["step"], one["delta_fro"], color=color, lw=0.9, alpha=0.8,
                    label=f"{run}, worst layer: {short}", gid=f"norm-worst:{run}")
            ax.plot(one["step"], one["bound"], ":", color=color, lw=1.1, alpha=0.9,
                    label=f"bound · {run}, worst layer", gid=f"bound-worst:{run}")
    ax.set(title="Update size vs DeLoRA's bound", xlabel="step", ylabel=f"{NORM} (Frobenius norm)")
    ax.set_ylim(bottom=0)
    _legend(ax)
    return fig


@_styled
def plot_angles(tracker_df: pd.DataFrame, ax=None) -> Figure:
    """Direction of the update: angle(dW, W) and angle(W + dW, W) in degrees, mean over layers.

    Left (or solid): the angle between the update and the pretrained weight; near 90 deg means the
    update is nearly orthogonal to W (typical in high dimension). Right (or dotted): how far the
    adapted weight has turned away from W; it stays small while ||dW|| << ||W||.
    """
    require_rows(tracker_df, ["step", "method", "angle_delta_w_deg", "angle_w_prime_deg"], "plot_angles")
    fig, axes = _axes(ax, ncols=2, width=5.6)
    a1, a2 = (axes[0], axes[0]) if len(axes) == 1 else axes
    for run, _, rows, color in iter_runs(tracker_df):
        m = mean_by_step(rows, "angle_delta_w_deg")
        a1.plot(m.index, m.values, color=color, label=f"{run}" + (" ∠(ΔW, W)" if a1 is a2 else ""))
        m = mean_by_step(rows, "angle_w_prime_deg")
        a2.plot(m.index, m.values, ":" if a1 is a2 else "-", color=color,
                label=f"{run} ∠(W+ΔW, W)" if a1 is a2 else "_nolegend_")
    a1.axhline(90, color="0.6", lw=0.8, ls=":", zorder=0)  # orthogonal to W
    if a1 is a2:
        a1.set(title="Update angles (mean over layers)", xlabel="step", ylabel="angle (degrees)")
    else:
        a1.set(title="∠(ΔW, W): direction of the update", xlabel="step", ylabel="angle (degrees)")
        a2.set(title="∠(W+ΔW, W): how far W has turned", xlabel="step", ylabel="angle (degrees)")
    _legend(a1)
    return fig


@_styled
def plot_lambda(tracker_df: pd.DataFrame, ax=None) -> Figure:
    """DeLoRA's learned strength lambda over training: mean over layers, band = min..max over layers.

    lambda alone sets the update's scale (||dW||_F <= |lambda| max_j ||W[:, j]||), decoupled from
    its direction. Look for how far it drifts from its initial value, and how fast with the lr.
    """
    require_rows(tracker_df, ["step", "method", "lambda"], "plot_lambda")
    runs = [r for r in iter_runs(tracker_df) if has_values(r[2], "lambda")]
    if not runs:
        raise ValueError("plot_lambda: no run has a finite 'lambda' (it is NaN for LoRA/DoRA); track a DeLoRA run")
    fig, (ax,) = _axes(ax)
    for run, _, rows, color in runs:
        lam = numeric(rows, "lambda").groupby(rows["step"]).agg(["mean", "min", "max"]).dropna().sort_index()
        ax.fill_between(lam.index, lam["min"], lam["max"], color=color, alpha=0.2, lw=0)
        ax.plot(lam.index, lam["mean"], color=color, label=f"{run} (mean; band: min to max over layers)")
    ax.set(title="DeLoRA's learned strength λ", xlabel="step", ylabel="λ (dimensionless)")
    _legend(ax)
    return fig


@_styled
def plot_loss(history_df: pd.DataFrame, ax=None) -> Figure:
    """Training loss per run (light: raw, solid: smoothed) and the eval metric at each evaluation.

    The eval metric goes on a second panel, or on a twin y axis when ``ax`` is given.
    Look for: which method learns fastest at the same learning rate, and which one diverges.
    """
    require_rows(history_df, ["step", "method", "loss"], "plot_loss")
    has_eval = has_values(history_df, "eval_metric")
    fig, axes = _axes(ax, ncols=2 if has_eval and ax is None else 1, width=5.6)
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
            a2.plot(ev.index, ev.values, "o" if twin else "o-", color=color, ms=5, lw=1.2,
                    label=f"{run} (eval)" if twin else run)
    a1.set(title="Training loss", xlabel="step", ylabel="loss (cross-entropy)")
    if not has_eval:
        _legend(a1)
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
        _legend(a1)
        _legend(a2)
    return fig


@_styled
def plot_bound_heatmap(tracker_df: pd.DataFrame, run: str | None = None, ax=None) -> Figure:
    """Layer x step map of how close each update is to its limit.

    DeLoRA runs: ||dW||_F / bound (1 = at the bound, never above). Runs without a bound:
    ||dW||_F / ||W||_F. ``run=None`` picks the first DeLoRA run, else the first run.
    Look for: which layers push against their bound, and when (often right after step 1 for
    PEFT's zero-init B). Grey cells have no value (e.g. dW = 0 with bound 0).
    """
    require_rows(tracker_df, ["step", "method", "layer", "delta_fro"], "plot_bound_heatmap")
    runs = {r: rows for r, _, rows, _ in iter_runs(tracker_df)}
    if run is None:
        run = next((r for r, rows in runs.items() if has_values(rows, "bound")), next(iter(runs)))
    if run not in runs:
        raise ValueError(f"plot_bound_heatmap: no rows with run {run!r}; runs are {list(runs)}")
    table, bounded = layer_step_table(runs[run])
    label = f"{NORM} / bound (1 = at the bound)" if bounded else f"{NORM} / $\\|W\\|_F$ (relative update size)"
    fig, (ax,) = _axes(ax, width=7.2)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#dddddd")
    data = np.ma.masked_invalid(table.to_numpy(dtype=float))
    vmax = 1.0 if bounded and data.count() and data.max() <= 1.0 else None
    im = ax.imshow(data, aspect="auto", interpolation="nearest", cmap=cmap, vmin=0, vmax=vmax)
    steps, layers = list(table.columns), [short_layer(x) for x in table.index]
    ax.xaxis.set_major_locator(MaxNLocator(8, integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: str(steps[int(x)]) if 0 <= x < len(steps) else ""))
    every = max(1, len(layers) // 24)
    ax.set_yticks(range(0, len(layers), every), layers[::every], fontsize=7)
    ax.grid(False)
    ax.set(title=f"{run}: per-layer update size", xlabel="step", ylabel="layer")
    ax.figure.colorbar(im, ax=ax, label=label)
    return fig


@_styled
def plot_angle_strength(tracker_df: pd.DataFrame, ax=None) -> Figure:
    """The paper's decoupling made visible: direction and strength as polar coordinates.

    Polar angle: angle(dW, W) in degrees (mean over layers); radius: ||dW||_F / ||W||_F (mean).
    Each run traces a path from the origin to its end point (dot). Dashed arc: DeLoRA's bound
    on the radius at the last step, mean over layers of bound / ||W||_F. Look for: DeLoRA
    turns freely while its radius is capped by the arc; LoRA's radius is free to run away.
    """
    require_rows(tracker_df, ["step", "method", "angle_delta_w_deg", "rel_delta"], "plot_angle_strength")
    if ax is not None and getattr(ax, "name", "") != "polar":
        raise ValueError("plot_angle_strength needs a polar axes: fig.add_subplot(projection='polar')")
    if ax is None:  # equal aspect: the half disc is the middle half of a square box; let the box overhang
        fig = Figure(figsize=(8.0, 3.9))
        ax = fig.add_axes((0.5 / 8.0, -0.6 / 3.9, 5.0 / 8.0, 5.0 / 3.9), projection="polar")
    fig = ax.figure
    for run, _, rows, color in iter_runs(tracker_df):
        path = pd.concat([mean_by_step(rows, "angle_delta_w_deg"), mean_by_step(rows, "rel_delta")],
                         axis=1, join="inner").dropna()
        if path.empty:
            continue
        theta = np.deg2rad(path.iloc[:, 0].to_numpy())
        ax.plot(theta, path.iloc[:, 1], color=color, label=run, gid=f"path:{run}")
        ax.plot(theta[-1:], path.iloc[-1:, 1], "o", color=color, ms=7, label="_nolegend_")
        if has_values(rows, "bound") and "w_fro" in rows.columns:
            rel = (numeric(rows, "bound") / numeric(rows, "w_fro")).replace([np.inf, -np.inf], np.nan)
            last = rel[rows["step"] == rows.loc[rel.dropna().index, "step"].max()].mean()
            arc = np.linspace(0, np.pi, 181)
            ax.plot(arc, np.full_like(arc, last), "--", color=color, lw=1.2, label=f"bound · {run}", gid=f"bound:{run}")
    ax.set_thetamin(0)
    ax.set_thetamax(180)
    ax.set_ylim(bottom=0)
    ax.set_title("Direction vs strength of the update (mean over layers)", y=0.82)  # top of the half disc
    ax.text(0.5, 0.17, "angle: ∠(ΔW, W) in degrees;  radius: $\\|\\Delta W\\|_F / \\|W\\|_F$",
            transform=ax.transAxes, ha="center", va="top")
    _legend(ax)
    return fig


@_styled
def plot_lr_sweep(sweep_df: pd.DataFrame, ax=None) -> Figure:
    """Robustness to the learning rate: distance travelled and eval metric vs lr multiplier.

    Left: mean over layers of ||W' - W||_F at the end (log-log). Right: the eval metric.
    Diverged runs are an 'x' at the top of the panel (gid "diverged"). With ``ax`` given, only
    the distance panel is drawn. Look for: LoRA's distance grows with the lr (and diverges);
    DeLoRA's stays nearly flat, because lambda, not the lr, sets how far it may go.
    """
    require_rows(sweep_df, ["method", "lr_multiplier", "final_distance"], "plot_lr_sweep")
    if (numeric(sweep_df, "lr_multiplier") <= 0).any():
        raise ValueError("plot_lr_sweep: lr_multiplier must be > 0 (plotted on a log axis)")
    panels = [("final_distance", r"$\|W' - W\|_F$ (Frobenius norm, mean over layers)", "Distance from W")]
    if ax is None and has_values(sweep_df, "eval_metric"):
        names = sweep_df["eval_name"].dropna().unique() if "eval_name" in sweep_df else []
        name = str(names[0]) if len(names) == 1 else "eval metric"
        panels.append(("eval_metric", name, f"Eval {name}"))
    fig, axes = _axes(ax, ncols=len(panels), width=5.6)
    df = sweep_df.assign(_div=sweep_df["diverged"].eq(True) if "diverged" in sweep_df else False)
    for a, (col, ylabel, title) in zip(axes, panels):
        for i, (method, _, rows, color) in enumerate(iter_runs(df.assign(run=df["method"]))):
            rows = rows.sort_values("lr_multiplier")
            ok = rows[~rows["_div"]]
            y = numeric(ok, col)
            a.plot(ok["lr_multiplier"][y.notna()], y.dropna(), "o-", color=color, label=method)
            bad = rows[rows["_div"]]
            if len(bad):
                a.plot(bad["lr_multiplier"], np.full(len(bad), 0.96 - 0.035 * i), "x", color=color, ms=9,
                       mew=2, transform=a.get_xaxis_transform(), gid="diverged", label="_nolegend_", clip_on=False)
        a.set_xscale("log")
        a.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}×"))
        a.axvline(1.0, color="0.6", lw=0.8, ls=":", zorder=0)  # the recommended lr
        ys = numeric(df[~df["_div"]], col)
        if (col == "final_distance" or ylabel == "perplexity") and (ys > 0).any() and not (ys <= 0).any():
            a.set_yscale("log")
        if df["_div"].any():  # headroom so the 'x' markers sit above the data
            a.plot([], [], "x", color="0.3", mew=2, label="diverged")
            lo, hi = a.get_ylim()
            a.set_ylim(lo, hi * (hi / lo) ** 0.2 if a.get_yscale() == "log" else hi + 0.2 * (hi - lo))
        a.set(title=title, xlabel="learning-rate multiplier (× recommended lr)", ylabel=ylabel)
        _legend(a)
    return fig


@_styled
def plot_singular_values(singular_values, ax=None, label: str | None = None) -> Figure:
    """Singular values of dW for one layer, largest first: the update's effective rank.

    ``singular_values``: an array (or tensor), or a dict label -> array to compare methods.
    Look for: a rank-r LoRA/DeLoRA update has at most r non-zero values (the paper init, 2r);
    how fast they fall off says how many directions the update really uses.
    """
    series = singular_values if isinstance(singular_values, dict) else {label or "ΔW": singular_values}
    if not series:
        raise ValueError("plot_singular_values: no singular values given (empty dict)")
    fig, (ax,) = _axes(ax)
    all_positive = True
    for name, values in series.items():
        values = values.detach().cpu().numpy() if hasattr(values, "detach") else values
        s = np.sort(np.asarray(values, dtype=float).ravel())[::-1]
        s = s[np.isfinite(s)]
        if s.size == 0:
            raise ValueError(f"plot_singular_values: no finite singular values for {name!r}")
        all_positive &= bool((s > 0).any())
        ax.plot(np.arange(1, s.size + 1), s, "o-", ms=4, color=method_color(name), label=str(name))
    if all_positive:
        ax.set_yscale("log", nonpositive="mask")  # zeros are simply not drawn
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(title="Singular values of ΔW", xlabel="index i (largest first)", ylabel="$\\sigma_i$ (same units as W)")
    _legend(ax)
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
