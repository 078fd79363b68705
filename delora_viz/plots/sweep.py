"""The learning-rate sweep: how far each method moved, and how well it did, at multiples of its rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .frames import (
    has_values,
    iter_runs,
    numeric,
    require_rows,
)
from .style import legend, new_axes, styled


@styled
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
    fig, axes = new_axes(ax, ncols=len(panels), width=5.6)
    df = sweep_df.assign(_div=sweep_df["diverged"].eq(True) if "diverged" in sweep_df else False)
    for a, (col, ylabel, title) in zip(axes, panels):
        for i, (method, _, rows, color) in enumerate(iter_runs(df.assign(run=df["method"]))):
            rows = rows.sort_values("lr_multiplier")
            ok = rows[~rows["_div"]]
            y = numeric(ok, col)
            a.plot(ok["lr_multiplier"][y.notna()], y.dropna(), "o-", color=color, label=method)
            bad = rows[rows["_div"]]
            if len(bad):
                a.plot(
                    bad["lr_multiplier"],
                    np.full(len(bad), 0.96 - 0.035 * i),
                    "x",
                    color=color,
                    ms=9,
                    mew=2,
                    transform=a.get_xaxis_transform(),
                    gid="diverged",
                    label="_nolegend_",
                    clip_on=False,
                )
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
        legend(a)
    return fig
