"""The learning-rate sweep: how far each method moved, and how well it did, at multiples of its rate.

- ``plot_lr_sweep(sweep_df)``: one point per run (``training.sweep_frame``): the final distance
  ||W' - W||_F (mean over layers) and the eval metric against the learning-rate multiplier.
- ``plot_sweep_norms(steps_df)``: the curves behind it (``training.sweep_steps_frame``), one panel per
  multiplier: ||dW||_F over the steps for each method, with DeLoRA's ceiling |lambda| max_j ||W[:, j]||
  (PEFT init) drawn where lambda puts it at every step (lambda is trained, so the ceiling moves).

Each method keeps one colour, line style and marker, so no line hides another; legends use the
methods' plain names ("LoRA", "DeLoRA (paper init)").
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .. import names
from .frames import has_values, method_color, numeric, require_rows
from .style import NORM, legend, new_axes, styled

# one line style and marker per method: overlapping curves stay visible (a dash over a solid line)
METHOD_STYLES = {
    "lora": ("-", "o"),
    "dora": ("--", "s"),
    "delora": ("-.", "^"),
    "delora-paper": (":", "v"),
}
MARK_OFFSETS = {"lora": 0, "dora": 2, "delora": 4, "delora-paper": 6}  # markers of curves that meet stay apart
CEILING = "DeLoRA ceiling |λ| max_j ‖W[:, j]‖"


def method_label(method: str) -> str:
    """The method's plain name ("DeLoRA (paper init)"); unknown names are returned as they are."""
    return names.label(method)


def method_style(method: str) -> tuple[str, str]:
    return METHOD_STYLES.get(method, ("-", "o"))


def _multiplier_axis(ax) -> None:
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}×"))
    ax.axvline(1.0, color="0.6", lw=0.8, ls=":", zorder=0)  # each method's recommended rate


def collapse_points(sweep_df: pd.DataFrame, fraction: float = 0.5) -> dict[str, float]:
    """{method: the smallest multiplier above 1x whose eval metric fell below ``fraction`` x the metric at 1x,
    or that diverged}. Methods that never collapse are left out. (Accuracy only: higher is better.)"""
    out = {}
    for method, rows in sweep_df.groupby("method", sort=False):
        rows = rows.sort_values("lr_multiplier")
        at_one = numeric(rows[rows["lr_multiplier"] == 1.0], "eval_metric")
        if at_one.empty or not math.isfinite(at_one.iloc[0]):
            continue
        above = rows[rows["lr_multiplier"] > 1.0]
        metric = numeric(above, "eval_metric")
        bad = above[(metric < fraction * at_one.iloc[0]) | metric.isna() | above.get("diverged", False).eq(True)]
        if len(bad):
            out[method] = float(bad["lr_multiplier"].iloc[0])
    return out


@styled
def plot_lr_sweep(sweep_df: pd.DataFrame, ax=None, annotate: bool = True) -> Figure:
    """Robustness to the learning rate: distance travelled and eval metric vs lr multiplier.

    Left: mean over layers of ||W' - W||_F at the end (log-log). Right: the eval metric, with the
    unadapted model's value when the frame has a ``baseline`` column. Diverged runs are an 'x' at the top
    of the panel (gid "diverged"). With ``ax`` given, only the distance panel is drawn. ``annotate`` marks,
    on the metric panel, the first multiplier where each method's accuracy fell below half its value at
    1x (gid "collapse"). What to notice: LoRA's and DoRA's distances grow with the rate until their
    accuracy collapses; DeLoRA's distance stays within a narrow band, since the ceiling |lambda| max_j w_j
    (which moves only as lambda learns) caps it, whatever the rate.
    """
    require_rows(sweep_df, ["method", "lr_multiplier", "final_distance"], "plot_lr_sweep")
    if (numeric(sweep_df, "lr_multiplier") <= 0).any():
        raise ValueError("plot_lr_sweep: lr_multiplier must be > 0 (plotted on a log axis)")
    panels = [("final_distance", r"$\|W' - W\|_F$ at the end (mean over layers)", "How far each method moved")]
    names = sweep_df["eval_name"].dropna().unique() if "eval_name" in sweep_df else []
    name = str(names[0]) if len(names) == 1 else "eval metric"
    if ax is None and has_values(sweep_df, "eval_metric"):
        panels.append(("eval_metric", name, f"How well it did ({name})"))
    fig, axes = new_axes(ax, ncols=len(panels), width=5.8, height=4.4)
    df = sweep_df.assign(_div=sweep_df["diverged"].eq(True) if "diverged" in sweep_df else False)
    methods = list(pd.unique(df["method"]))
    for a, (col, ylabel, title) in zip(axes, panels):
        for i, method in enumerate(methods):
            rows = df[df["method"] == method].sort_values("lr_multiplier")
            ls, marker = method_style(method)
            color = method_color(method)
            ok = rows[~rows["_div"]]
            y = numeric(ok, col)
            a.plot(
                ok["lr_multiplier"][y.notna()],
                y.dropna(),
                ls=ls,
                marker=marker,
                color=color,
                ms=6,
                label=method_label(method),
                gid=f"sweep-{method}",
            )
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
        _multiplier_axis(a)
        ys = numeric(df[~df["_div"]], col)
        if (col == "final_distance" or ylabel == "perplexity") and (ys > 0).any() and not (ys <= 0).any():
            a.set_yscale("log")
        if col == "eval_metric" and "baseline" in df and numeric(df, "baseline").notna().any():
            a.axhline(
                numeric(df, "baseline").dropna().iloc[0],
                color="0.45",
                lw=1,
                ls="--",
                zorder=0,
                label="before training",
                gid="baseline",
            )
        if df["_div"].any():  # headroom so the 'x' markers sit above the data
            a.plot([], [], "x", color="0.3", mew=2, label="diverged (loss NaN)")
            lo, hi = a.get_ylim()
            a.set_ylim(lo, hi * (hi / lo) ** 0.2 if a.get_yscale() == "log" else hi + 0.2 * (hi - lo))
        if col == "eval_metric" and annotate and name == "accuracy":
            _annotate_collapse(a, df, methods)
        a.set(title=title, xlabel="learning rate (× the method's recommended rate)", ylabel=ylabel)
        legend(a)
    return fig


def _annotate_collapse(ax, df: pd.DataFrame, methods: list[str]) -> None:
    """An arrow at each method's first collapsed multiplier: "LoRA collapses from here"."""
    for k, (method, mult) in enumerate(collapse_points(df).items()):
        row = df[(df["method"] == method) & (df["lr_multiplier"] == mult)]
        y = numeric(row, "eval_metric").iloc[0]
        if not math.isfinite(y):
            continue
        ax.annotate(
            f"{method_label(method)} collapses from {mult:g}×",
            xy=(mult, y),
            xytext=(0.04, 0.40 - 0.09 * k),
            textcoords="axes fraction",
            fontsize=8.5,
            color=method_color(method),
            arrowprops=dict(arrowstyle="->", color=method_color(method), lw=1),
            gid="collapse",
        )


def first_crossing(steps: pd.Series, values: pd.Series, ceiling: pd.Series) -> int | None:
    """The first step at which ``values`` exceeds ``ceiling`` (aligned by position), or None."""
    above = np.asarray(values, float) > np.asarray(ceiling, float)
    return int(np.asarray(steps)[above.argmax()]) if above.any() else None


@styled
def plot_sweep_norms(
    steps_df: pd.DataFrame, multipliers=None, methods=None, ceiling_method: str = "delora", ncols: int = 4
) -> Figure:
    """Small multiples, one panel per learning-rate multiplier: mean ||dW||_F over the layers against the step,
    one line per method, and DeLoRA's ceiling (mean over layers of |lambda| max_j ||W[:, j]||, the PEFT init's
    ``bound_loose``) dashed, step by step. All panels share one log y-axis, so the panels compare.

    steps_df: ``training.sweep_steps_frame`` (method, lr_multiplier, step, delta_fro_mean, bound_loose_mean).
    Annotated: the step where LoRA's norm first crosses DeLoRA's ceiling (gid "crossing"). What to notice:
    at higher rates LoRA crosses the ceiling sooner; DeLoRA stays under its own; the ceiling drifts as lambda
    learns (more at higher rates)."""
    needed = ["method", "lr_multiplier", "step", "delta_fro_mean", "bound_loose_mean"]
    require_rows(steps_df, needed, "plot_sweep_norms")
    available = sorted(pd.unique(steps_df["lr_multiplier"]))
    multipliers = list(available if multipliers is None else multipliers)
    missing = [m for m in multipliers if m not in available]
    if missing or not multipliers:
        raise ValueError(f"plot_sweep_norms: no runs at multipliers {missing or multipliers}; sweep has {available}")
    methods = list(pd.unique(steps_df["method"]) if methods is None else methods)
    ncols = min(ncols, len(multipliers))
    nrows = math.ceil(len(multipliers) / ncols)
    fig = Figure(figsize=(3.6 * ncols + 1.8, 3.4 * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    positive = numeric(steps_df, "delta_fro_mean")
    positive = positive[positive > 0]
    top = max(positive.max(), numeric(steps_df, "bound_loose_mean").max())
    for ax, mult in zip(axes, multipliers):
        at = steps_df[steps_df["lr_multiplier"] == mult]
        ceiling = at[at["method"] == ceiling_method].sort_values("step")
        if len(ceiling):
            ax.plot(
                ceiling["step"],
                numeric(ceiling, "bound_loose_mean"),
                color="0.15",
                lw=2.2,
                ls=(0, (5, 2)),
                label=CEILING,
                gid="ceiling",
            )
        for method in methods:
            rows = at[at["method"] == method].sort_values("step")
            rows = rows[rows["step"] > 0]  # dW = 0 at step 0: no point on a log axis
            if rows.empty:
                continue
            ls, marker = method_style(method)
            ax.plot(
                rows["step"],
                numeric(rows, "delta_fro_mean"),
                ls=ls,
                marker=marker,
                markevery=(MARK_OFFSETS.get(method, 0), 8),
                ms=5,
                color=method_color(method),
                label=method_label(method),
                gid=f"norm-{method}",
            )
        lora = at[(at["method"] == "lora") & (at["step"] > 0)].sort_values("step")
        if len(lora) and len(ceiling):
            ceil = ceiling.set_index("step")["bound_loose_mean"].reindex(lora["step"]).to_numpy()
            step = first_crossing(lora["step"], numeric(lora, "delta_fro_mean"), pd.Series(ceil))
            if step is not None:
                y = float(ceiling.set_index("step")["bound_loose_mean"][step])
                ax.annotate(
                    f"LoRA crosses\nthe ceiling\nat step {step}",
                    xy=(step, y),
                    xytext=(0.42, 0.1),
                    textcoords="axes fraction",
                    fontsize=8,
                    arrowprops=dict(arrowstyle="->", lw=1),
                    gid="crossing",
                )
        ax.set_yscale("log")
        ax.set_ylim(positive.min() / 2 if len(positive) else 1e-3, top * 3)
        ax.set_title(f"learning rate {mult:g}× recommended")
        ax.set_xlabel("step")
    for ax in axes[len(multipliers) :]:
        ax.set_visible(False)
    for ax in axes[::ncols]:
        ax.set_ylabel(NORM + " (mean over layers)")
    handles = {}
    for ax in axes:  # every method and the ceiling once, whichever panel drew them
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(list(handles.values()), list(handles), loc="outside right upper", frameon=False, fontsize=8.5)
    return fig
