"""Layer views: every layer x step against its bound, direction against strength, the spectrum."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from .frames import (
    has_values,
    iter_runs,
    layer_step_table,
    mean_by_step,
    method_color,
    method_style,
    numeric,
    require_rows,
    short_layer,
    turn_frame,
)
from .style import NORM, legend, new_axes, styled


@styled
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
    fig, (ax,) = new_axes(ax, width=7.2)
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
    what = "‖ΔW‖ / DeLoRA's bound" if bounded else "‖ΔW‖ / ‖W‖ (no bound for this method)"
    ax.set(title=f"{run}: {what}, per layer", xlabel="step", ylabel="layer")
    ax.figure.colorbar(im, ax=ax, label=label)
    return fig


@styled
def plot_turn_strength(tracker_df: pd.DataFrame, ax=None) -> Figure:
    """DeLoRA's idea made visible: its direction keeps turning while its strength is capped.

    x: how far the update's direction has turned so far, the running sum of turn_deg (the angle
    between dW at one record and the previous one, per layer), mean over layers. y: strength,
    ||dW||_F / bound for runs with a bound (1 = at the bound: the dashed line), else ||dW||_F / ||W||_F
    (the legend says which). The title says whether it is one layer or the mean over layers. Look for:
    DeLoRA walks right under 1 (it keeps turning; lambda and W's column norms hold its size under the
    ceiling, A and B where it sits below it); LoRA's strength climbs as it turns.
    ValueError for histories without turn_deg.
    """
    frame = turn_frame(tracker_df)
    fig, (ax,) = new_axes(ax, width=7.6, height=4.4)
    for run, rows in frame.groupby("run", sort=False):
        rows = rows.dropna(subset=["strength"])
        if rows.empty:
            continue
        bounded = bool(rows["bounded"].iloc[0])
        color = method_color(str(rows["method"].iloc[0]))
        label = f"{run}: ‖ΔW‖ / bound" if bounded else f"{run}: ‖ΔW‖ / ‖W‖ (no bound)"
        style = method_style(str(rows["method"].iloc[0]))
        marker, ms = style.pop("marker"), style.pop("ms")
        ax.plot(rows["turned_deg"], rows["strength"], color=color, label=label, gid=f"turn:{run}", **style)
        ax.plot(
            rows["turned_deg"].iloc[-1:], rows["strength"].iloc[-1:], marker, color=color, ms=ms + 2, label="_nolegend_"
        )
    if frame["bounded"].any():
        ax.axhline(1.0, color="0.35", lw=1.2, ls="--", zorder=0, label="bound (‖ΔW‖ / bound = 1)", gid="bound-line")
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    layers = tracker_df["layer"].nunique() if "layer" in tracker_df.columns else 0
    where = f"layer {short_layer(str(tracker_df['layer'].iloc[0]))}" if layers == 1 else "mean over layers"
    ax.set(
        title=f"How far ΔW's direction turned against its strength\n({where})",
        xlabel="direction turned so far: Σ ∠(ΔW_t, ΔW_t−1), degrees",
        ylabel="strength of ΔW (ratio)",
    )
    handles, labels = ax.get_legend_handles_labels()
    if handles:  # below the axes: the lines run through every corner of the plot
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2)
    return fig


@styled
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
        path = pd.concat(
            [mean_by_step(rows, "angle_delta_w_deg"), mean_by_step(rows, "rel_delta")], axis=1, join="inner"
        ).dropna()
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
    ax.text(
        0.5,
        0.17,
        "angle: ∠(ΔW, W) in degrees;  radius: $\\|\\Delta W\\|_F / \\|W\\|_F$",
        transform=ax.transAxes,
        ha="center",
        va="top",
    )
    legend(ax)
    return fig


@styled
def plot_singular_values(singular_values, ax=None, label: str | None = None) -> Figure:
    """Singular values of dW for one layer, largest first: the update's effective rank.

    ``singular_values``: an array (or tensor), or a dict label -> array to compare methods.
    Look for: a rank-r LoRA/DeLoRA update has at most r non-zero values (the paper init, 2r);
    how fast they fall off says how many directions the update really uses.
    """
    series = singular_values if isinstance(singular_values, dict) else {label or "ΔW": singular_values}
    if not series:
        raise ValueError("plot_singular_values: no singular values given (empty dict)")
    fig, (ax,) = new_axes(ax)
    all_positive = True
    for name, values in series.items():
        values = values.detach().cpu().numpy() if hasattr(values, "detach") else values
        s = np.sort(np.asarray(values, dtype=float).ravel())[::-1]
        s = s[np.isfinite(s)]
        if s.size == 0:
            raise ValueError(f"plot_singular_values: no finite singular values for {name!r}")
        all_positive &= bool((s > 0).any())
        ax.plot(np.arange(1, s.size + 1), s, color=method_color(name), label=str(name), **method_style(name))
    if all_positive:
        ax.set_yscale("log", nonpositive="mask")  # zeros are simply not drawn
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(title="Singular values of ΔW", xlabel="index i (largest first)", ylabel="$\\sigma_i$ (same units as W)")
    legend(ax)
    return fig
