"""Choosing DeLoRA's lambda for a layer's width: the rule of thumb as a slider (notebook 04).

After PEFT's first optimizer step (B = 0 at init), DeLoRA's r unit rank-one terms point in nearly
unrelated directions, so their weighted sum has norm about sqrt(r) of one term's:

    ||dW||_F ~ |lambda| rms(w) / sqrt(r),   and with ||W||_F = rms(w) sqrt(n):
    ||dW||_F / ||W||_F ~ |lambda| / sqrt(r n)                      (n = the layer's input width)

``lambda_rule`` is that formula; ``plot_lambda_rule`` draws it against lambda for a few widths at one
rank, with FIXED axes (moving the lambda or r slider moves the marker and the curves, not the ticks);
``plot_lambda_rule_multiples`` draws it at several ranks side by side for a static page.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from .style import styled

WIDTHS = {"MiniLM (384)": 384, "SmolLM2 (576)": 576, "2048 wide": 2048, "4096 wide (7B models)": 4096}
LAMBDA_MAX = 30.0  # x-axis: PEFT's default lambda is 15
REL_MAX = 0.6  # y-axis: ||dW|| / ||W|| beyond ~0.5 rewrites the layer rather than adapting it
_STYLES = [("-", "o"), ("--", "s"), ("-.", "^"), (":", "v")]


def lambda_rule(delora_lambda, r: int, n: int):
    """Predicted ||dW||_F / ||W||_F after PEFT's first step: |lambda| / sqrt(r n) (works on arrays)."""
    if r < 1 or n < 1:
        raise ValueError(f"lambda_rule: r and n must be positive integers, got r={r}, n={n}")
    return np.abs(delora_lambda) / math.sqrt(r * n)


def lambda_for(target: float, r: int, n: int) -> float:
    """The lambda whose predicted ||dW|| / ||W|| is ``target``: target sqrt(r n)."""
    if not target > 0:
        raise ValueError(f"lambda_for: the target ||dW|| / ||W|| must be > 0, got {target}")
    return target * math.sqrt(r * n)


def _draw(ax, delora_lambda: float, r: int, widths: dict, measured, target: float | None, legend: bool) -> None:
    lams = np.linspace(0.0, LAMBDA_MAX, 121)
    for (label, n), (ls, marker) in zip(widths.items(), _STYLES * 2):
        line = ax.plot(lams, lambda_rule(lams, r, n), ls=ls, lw=1.8, label=f"{label}", gid=f"rule-{n}")[0]
        y = float(lambda_rule(delora_lambda, r, n))
        ax.plot([delora_lambda], [min(y, REL_MAX)], marker=marker, ms=7, color=line.get_color(), gid=f"at-{n}")
    if target is not None:
        ax.axhline(target, color="0.5", lw=1, ls=(0, (2, 2)), zorder=0, label=f"target {target:.0%} of ‖W‖")
    ax.axvline(delora_lambda, color="0.3", lw=0.9, zorder=0)
    for lam, rank, n, value in measured or []:
        if rank == r:
            ax.plot(
                [lam],
                [value],
                "*",
                ms=13,
                color="crimson",
                mec="k",
                mew=0.6,
                label=f"measured (n = {n})",
                gid="measured",
            )
    ax.set_xlim(0, LAMBDA_MAX)
    ax.set_ylim(0, REL_MAX)
    ax.set_xlabel("λ")
    ax.set_title(f"r = {r}")
    if legend:
        ax.legend(loc="upper left", fontsize=8, frameon=False)


@styled
def plot_lambda_rule(
    delora_lambda: float = 15.0, r: int = 8, widths: dict | None = None, measured=None, target: float | None = 0.1
) -> Figure:
    """Predicted ||dW||_F / ||W||_F after one step, |lambda| / sqrt(r n), against lambda for several widths n.

    A marker per width at the chosen ``delora_lambda`` (its values in the title); ``measured``: optional
    [(lambda, r, n, measured ratio)] drawn as stars on the panel of their rank; ``target``: a dashed level.
    Fixed axes (lambda 0-30, ratio 0-0.6). What to notice: the same lambda moves a narrow layer much more
    than a wide one; doubling r lowers every curve by sqrt(2)."""
    widths = dict(widths or WIDTHS)
    fig = Figure(figsize=(7.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    _draw(ax, delora_lambda, r, widths, measured, target, legend=True)
    ax.set_ylabel(r"predicted $\|\Delta W\|_F / \|W\|_F$ after one step")
    values = ", ".join(f"n={n}: {float(lambda_rule(delora_lambda, r, n)):.2f}" for n in widths.values())
    ax.set_title(f"λ = {delora_lambda:g}, r = {r}:  {values}", fontsize=9.5)
    return fig


@styled
def plot_lambda_rule_multiples(
    delora_lambda: float = 15.0, ranks=(4, 8, 16, 32), widths: dict | None = None, measured=None, target=0.1
) -> Figure:
    """``plot_lambda_rule`` at several ranks, side by side on the same fixed axes (a static page's slider)."""
    widths = dict(widths or WIDTHS)
    ranks = list(ranks)
    if not ranks:
        raise ValueError("plot_lambda_rule_multiples: give at least one rank")
    fig = Figure(figsize=(3.3 * len(ranks) + 0.5, 3.6), layout="constrained")
    axes = fig.subplots(1, len(ranks), sharey=True, squeeze=False)[0]
    for k, (ax, r) in enumerate(zip(axes, ranks)):
        _draw(ax, delora_lambda, r, widths, measured, target, legend=k == 0)
    axes[0].set_ylabel(r"predicted $\|\Delta W\|_F / \|W\|_F$")
    fig.suptitle(
        f"the same λ = {delora_lambda:g} at four ranks: each doubling of r lowers the curves by √2", fontsize=10
    )
    return fig
