"""Saved adapters side by side (from `delora-viz inspect`): per-layer bars of ||dW|| against the bound,
layer x adapter heatmaps, and the spectrum of each adapter's most-moved layer.

Input: an inspect frame, one row per (adapter, layer) with the Tracker's columns (delta_fro, rel_delta,
angle_delta_w_deg, bound, bound_loose, bound_ratio, ...) and sv_1 .. sv_k (instruments/inspect.py).
Layers are listed in order of first appearance; a layer one adapter lacks is a gap (grey cell, no bar).
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .frames import has_values, method_color, numeric, require_rows, shade, short_layer
from .layers import plot_singular_values
from .style import NORM, new_axes, styled


def _adapters(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame, str]]:
    """(label, rows, colour) per adapter; adapters sharing a method get lighter shades of its colour."""
    out, seen = [], {}
    for label in pd.unique(df["adapter"]):
        rows = df[df["adapter"] == label]
        method = str(rows["method"].iloc[0])
        k = seen[method] = seen.get(method, -1) + 1
        out.append((str(label), rows, shade(method_color(method), 0.3 * min(k, 2))))
    return out


def _layer_table(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Layer x adapter table of `column` (NaN where an adapter lacks the layer)."""
    value = pd.DataFrame({"layer": df["layer"], "adapter": df["adapter"], "v": numeric(df, column)})
    table = value.pivot_table(index="layer", columns="adapter", values="v", aggfunc="mean", dropna=False, sort=False)
    return table.reindex(index=pd.unique(df["layer"]), columns=pd.unique(df["adapter"]))


@styled
def plot_layer_bars(df: pd.DataFrame, ax=None) -> Figure:
    """||dW||_F of every layer (one bar per adapter), with DeLoRA's bound on it: tight (|) and loose (:).

    The tight bound is (|lambda|/r) sum_i ||a_i/||a_i|| * w|| for the current directions; the loose one
    |lambda| max_j ||W[:, j]||. Look for: how much of its budget each DeLoRA layer uses; which LoRA
    layers moved most.
    """
    require_rows(df, ["adapter", "layer", "method", "delta_fro"], "plot_layer_bars")
    adapters = _adapters(df)
    layers = list(pd.unique(df["layer"]))
    height = min(14.0, 1.6 + 0.28 * len(layers) * max(1, len(adapters)) ** 0.5)
    fig, (ax,) = new_axes(ax, width=8.0, height=height)
    slot = 0.8 / len(adapters)
    y = np.arange(len(layers))
    for i, (label, rows, color) in enumerate(adapters):
        pos = y - 0.4 + slot * (i + 0.5)
        norm = _layer_table(rows, "delta_fro").reindex(layers)[label].to_numpy(dtype=float)
        ax.barh(
            pos, norm, height=slot * 0.9, color=color, label=f"{label} ({rows['method'].iloc[0]})", gid=f"bar:{label}"
        )
        for column, color, lw, name, gid in (  # the tight bound black, the loose one grey
            ("bound", "black", 1.6, "bound", "bound"),
            ("bound_loose", "0.55", 1.2, "loose bound", "bound-loose"),
        ):
            if has_values(rows, column):
                values = _layer_table(rows, column).reindex(layers)[label].to_numpy(dtype=float)
                ax.scatter(
                    values,
                    pos,
                    marker="|",
                    s=(slot * 260) ** 2 / 40,
                    color=color,
                    lw=lw,
                    zorder=3,
                    label=f"{name} · {label}",
                    gid=f"{gid}:{label}",
                )
    ax.set_yticks(y, [short_layer(x, 34) for x in layers], fontsize=7)
    ax.invert_yaxis()  # first layer on top
    ax.set_xlim(left=0)
    ax.set(title="Update size per layer against DeLoRA's bound", xlabel=f"{NORM} (Frobenius norm)", ylabel="layer")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: bars fill the axes
    return fig


@styled
def plot_layer_heatmap(df: pd.DataFrame) -> Figure:
    """Layer x adapter maps: relative size ||dW||/||W||, how far W turned (angle(W + dW, W)), and ||dW||/bound
    where there is one. (angle(dW, W) itself sits near 90 degrees in high dimension: the table has it.)"""
    require_rows(df, ["adapter", "layer", "rel_delta", "angle_w_prime_deg"], "plot_layer_heatmap")
    panels = [("rel_delta", f"{NORM} / $\\|W\\|_F$", None), ("angle_w_prime_deg", "∠(W+ΔW, W) (degrees)", None)]
    if has_values(df, "bound_ratio"):
        panels.append(("bound_ratio", f"{NORM} / bound (1 = at the bound)", 1.0))
    layers, adapters = list(pd.unique(df["layer"])), list(pd.unique(df["adapter"]))
    width = 1.9 + 0.55 * len(adapters) + 1.2
    fig = Figure(
        figsize=(min(18.0, 1.8 + width * len(panels)), min(14.0, 1.8 + 0.26 * len(layers))), layout="constrained"
    )
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#dddddd")
    for ax, (column, label, vmax) in zip(axes, panels):
        data = np.ma.masked_invalid(_layer_table(df, column).to_numpy(dtype=float))
        top = vmax if vmax is not None and data.count() and data.max() <= vmax else None
        im = ax.imshow(data, aspect="auto", interpolation="nearest", cmap=cmap, vmin=0, vmax=top)
        ax.set_xticks(range(len(adapters)), adapters, rotation=30, ha="right", fontsize=8)
        ax.grid(False)
        ax.set_title(label, fontsize=10)
        fig.colorbar(im, ax=ax, shrink=0.8)
    every = max(1, len(layers) // 40)
    axes[0].set_yticks(range(0, len(layers), every), [short_layer(x) for x in layers][::every], fontsize=7)
    axes[0].set_ylabel("layer")
    fig.suptitle("Each layer's update, adapter by adapter (grey: no such layer or no value)", fontsize=11)
    return fig


def plot_adapter_spectra(df: pd.DataFrame) -> Figure:
    """plot_singular_values for the layer with the largest ||dW||_F of each adapter (DoRA has none: skipped)."""
    require_rows(df, ["adapter", "layer", "delta_fro"], "plot_adapter_spectra")
    columns = [c for c in df.columns if c.startswith("sv_")]
    series = {}
    for label, rows, _ in _adapters(df):
        rows = rows[numeric(rows, "sv_1").notna()] if "sv_1" in rows else rows.iloc[:0]
        if rows.empty:
            continue
        top = rows.loc[numeric(rows, "delta_fro").idxmax()]
        values = pd.to_numeric(top[columns], errors="coerce").dropna().to_numpy(dtype=float)
        series[f"{label} ({top['method']}) · {short_layer(top['layer'], 28)}"] = values
    if not series:
        raise ValueError("plot_adapter_spectra: no adapter has singular values (DoRA's update is not low-rank)")
    fig = plot_singular_values(series)
    fig.axes[0].set_title("Singular values of ΔW: the most-moved layer of each adapter")
    return fig


def adapter_figures(df: pd.DataFrame) -> dict[str, Figure]:
    """{"layer_bars", "layer_heatmap", "spectrum"} for an inspect frame (spectrum only where there is one)."""
    figs = {"layer_bars": plot_layer_bars(df), "layer_heatmap": plot_layer_heatmap(df)}
    try:
        figs["spectrum"] = plot_adapter_spectra(df)
    except ValueError:
        pass  # only DoRA adapters: nothing low-rank to show
    return figs
