"""Notebook 01's slider: ||dW||_F of a DeLoRA layer against its tight bound and its ceiling, as the factors turn.

The tight bound is (|lambda|/r) sum_i ||a_i/||a_i|| * w||, the ceiling |lambda| max_j ||W[:, j]|| (twice that with
the paper init). The factors turn from random (alignment 0) to all aligned (1): every a_i = e_j* (W's largest
column), every b_i the same unit vector, where ||dW||_F = |lambda| w_j*. lambda sets the scale and the ceiling;
the alignment of A and B (how the r unit terms add up) sets where ||dW|| sits below it. ``bound_table`` and
``term_sums`` compute the numbers (closed forms from ``delora``; tests/test_explore.py checks them against PEFT),
``plot_bound_explorer`` / ``plot_bound_small_multiples`` draw them on fixed axes, so each slider value draws its
own picture.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import Tensor

from ..delora.geometry import (
    delora_bound,
    delora_bound_loose,
    delora_update,
    fro_norm,
)
from .frames import method_color
from .style import NORM, legend, styled

ANGLE_METHODS = ("lora", "dora", "delora")


def aligned_factors(weight: Tensor, r: int, alignment: float, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Factors A (r, n), B (m, r) between random (alignment 0) and the adversarial rank-1 case (1).

    a_i = (1 - t) u_i + t e_j*  with u_i a random unit row and j* = argmax_j ||W[:, j]||;
    b_i = (1 - t) v_i + t b     with v_i a random unit column and b one shared random unit vector.
    The same seed gives the same u, v, b for every t, so moving t morphs one configuration into the other.
    """
    if not 0.0 <= alignment <= 1.0:
        raise ValueError(f"alignment must be in [0, 1] (0 random, 1 the adversarial rank-1 case), got {alignment!r}")
    m, n = weight.shape
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(r, n, generator=gen, dtype=torch.float64)
    v = torch.randn(m, r, generator=gen, dtype=torch.float64)
    b = torch.randn(m, 1, generator=gen, dtype=torch.float64)
    e = torch.zeros(n, dtype=torch.float64)
    e[int(weight.double().norm(dim=0).argmax())] = 1.0
    A = (1 - alignment) * u / u.norm(dim=1, keepdim=True) + alignment * e  # (r, n)
    B = (1 - alignment) * v / v.norm(dim=0, keepdim=True) + alignment * b / b.norm()  # (m, r)
    return A, B


def paper_start(weight: Tensor, r: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """The paper init's frozen factors A0 (r, n), B0 (m, r): kaiming-uniform ranges, drawn from ``seed + 1``."""
    m, n = weight.shape
    gen = torch.Generator().manual_seed(seed + 1)
    A0 = torch.empty(r, n, dtype=torch.float64).uniform_(-1 / math.sqrt(n), 1 / math.sqrt(n), generator=gen)
    B0 = torch.empty(m, r, dtype=torch.float64).uniform_(-1 / math.sqrt(r), 1 / math.sqrt(r), generator=gen)
    return A0, B0


def bound_table(
    weight: Tensor, delora_lambda: float, r: int, init: str = "peft", alignments=None, seed: int = 0
) -> pd.DataFrame:
    """One row per alignment t: ||dW||_F, the tight bound, the loose bound and the typical size, in float64.

    init="peft": dW = (lambda/r) B Xi A diag(w). init="paper": the paper's frozen start (A0, B0), random
    kaiming-scale factors drawn from ``seed + 1``, is subtracted: dW = (lambda/r)(B Xi A - B0 Xi0 A0) diag(w),
    tight bound + ||N0||_F, loose bound 2 |lambda| max_j w_j. typical = |lambda| rms(w) / sqrt(r).
    """
    if init not in ("peft", "paper"):
        raise ValueError(f"init must be 'peft' or 'paper', got {init!r}")
    if not (isinstance(r, int) and r >= 1):
        raise ValueError(f"r must be a positive integer, got {r!r}")
    alignments = np.linspace(0.0, 1.0, 21) if alignments is None else np.asarray(alignments, dtype=float)
    W = weight.detach().double()
    w = W.norm(dim=0)  # (n,) column norms
    lam = torch.tensor([float(delora_lambda)], dtype=torch.float64)
    frozen = paper_start(W, r, seed) if init == "paper" else (None, None)
    rows = []
    for t in alignments:
        A, B = aligned_factors(W, r, float(t), seed)
        rows.append(
            dict(
                alignment=float(t),
                delta_fro=fro_norm(delora_update(A, B, lam, w, *frozen)).item(),
                bound=delora_bound(A, lam, w, *frozen).item(),
                bound_loose=delora_bound_loose(lam, w, paper_init=init == "paper").item(),
                typical=abs(float(delora_lambda)) * w.pow(2).mean().sqrt().item() / math.sqrt(r),
            )
        )
    return pd.DataFrame(rows)


def term_sums(weight: Tensor, delora_lambda: float, r: int, alignment: float, seed: int = 0) -> pd.DataFrame:
    """How DeLoRA's r unit rank-one terms add up, one row per k = 1..r, in float64.

    term_i = b_i a_i^T diag(w) / (||b_i|| ||a_i||), factors from ``aligned_factors``: ||term_i|| = ||a_i/||a_i|| * w||.
        partial[k]    = (|lambda| / r) || sum_{i<=k} term_i ||_F        (k = r: ||dW||_F of the PEFT init)
        aligned[k]    = (|lambda| / r) sum_{i<=k} ||term_i||_F           (all terms parallel: the tight bound)
        orthogonal[k] = (|lambda| / r) sqrt(sum_{i<=k} ||term_i||_F^2)  (all terms mutually orthogonal)
    Where ``partial`` sits between the two is set by A and B alone: how aligned their directions are.
    """
    W = weight.detach().double()
    w = W.norm(dim=0)  # (n,)
    A, B = aligned_factors(W, r, alignment, seed)
    lam = torch.tensor([float(delora_lambda)], dtype=torch.float64)
    term_norms = (A / A.norm(dim=1, keepdim=True) * w).norm(dim=1)  # (r,) ||term_i||_F
    scale = abs(float(delora_lambda)) / r
    rows = []
    for k in range(1, r + 1):
        partial = fro_norm(delora_update(A[:k], B[:, :k], lam * k / r, w)).item()  # (lambda/r) sum of k terms
        rows.append(
            dict(
                k=k,
                partial=partial,
                aligned=scale * term_norms[:k].sum().item(),
                orthogonal=scale * term_norms[:k].pow(2).sum().sqrt().item(),
            )
        )
    return pd.DataFrame(rows)


def bound_axis_top(weight: Tensor, lambda_max: float = 8.0) -> float:
    """The explorer's fixed y-axis top: the ceiling |lambda| max_j w_j at the largest lambda of the slider.

    (The paper init's ceiling, twice that, leaves the axis for lambda > lambda_max / 2: an arrow says so.)"""
    return lambda_max * weight.detach().double().norm(dim=0).max().item() * 1.05


def _draw_norm_vs_alignment(ax, weight, delora_lambda, r, init, alignment, seed, top) -> None:
    """||dW||_F, the tight and the loose bound against the alignment of A and B; a dot at ``alignment``."""
    curve = bound_table(weight, delora_lambda, r, init, seed=seed)
    now = bound_table(weight, delora_lambda, r, init, alignments=[alignment], seed=seed).iloc[0]
    color = method_color("delora-paper" if init == "paper" else "delora")
    ax.plot(curve["alignment"], curve["delta_fro"], "-", color=color, label=NORM, gid="delta_fro")
    ax.plot(curve["alignment"], curve["bound"], "--", color=color, label="tight bound (these directions)", gid="bound")
    loose = r"$2|\lambda| \max_j w_j$" if init == "paper" else r"$|\lambda| \max_j w_j$"
    ax.plot(curve["alignment"], curve["bound_loose"], ":", color="black", lw=2.2, label=f"ceiling {loose}", gid="loose")
    ax.plot(
        curve["alignment"], curve["typical"], "-.", color="grey", lw=1, label=r"typical $|\lambda|$ rms(w)/$\sqrt{r}$"
    )
    ax.plot([alignment], [now["delta_fro"]], "o", color=color, ms=8, gid="now")
    near_top = now["delta_fro"] > 0.5 * now["bound_loose"]  # then the label goes below the dot, off the ceiling
    ax.annotate(
        f"{now['delta_fro']:.2f} = {now['delta_fro'] / now['bound_loose']:.0%} of the ceiling",
        (alignment, now["delta_fro"]),
        xytext=(0, -16 if near_top else 12),
        textcoords="offset points",
        fontsize=8,
        ha="right" if alignment > 0.6 else "left",
    )
    if now["bound_loose"] <= top:
        ax.annotate(f"ceiling {now['bound_loose']:.2f}", (0.02, now["bound_loose"]), xytext=(0, 3),
                    textcoords="offset points", fontsize=8)  # fmt: skip
    else:
        ax.annotate(f"ceiling {now['bound_loose']:.2f}, above the axis", (0.02, 0.97), xycoords="axes fraction",
                    fontsize=8, va="top", arrowprops=None)  # fmt: skip
    ax.set(xlim=(0, 1), ylim=(0, top), xlabel="alignment of A and B (0 random, 1 aligned)", ylabel=NORM)
    ax.set_title(f"DeLoRA ({init} init), lambda = {delora_lambda:g}, r = {r}", fontsize=10)


def _draw_terms(ax, weight, delora_lambda, r, alignment, seed, top, r_max) -> None:
    """The partial sums of the r unit terms against k, between 'mutually orthogonal' and 'all aligned'."""
    sums = term_sums(weight, delora_lambda, r, alignment, seed)
    color = method_color("delora")
    ax.plot(sums["k"], sums["aligned"], "--", marker="^", color="black", lw=1, label="if all aligned (tight bound)",
            gid="aligned")  # fmt: skip
    ax.plot(sums["k"], sums["orthogonal"], ":", marker="v", color="grey", label="if mutually orthogonal",
            gid="orthogonal")  # fmt: skip
    ax.plot(sums["k"], sums["partial"], "-", marker="o", color=color, label="these A and B", gid="partial")
    last = sums.iloc[-1]
    ax.set(
        xlim=(0.5, r_max + 0.5),
        ylim=(0, top),
        xlabel="number of unit terms added, k",
        ylabel=r"$\|\frac{\lambda}{r}\sum_{i \leq k} \mathrm{term}_i\|_F$",
    )
    ax.set_title(
        f"the {r} unit terms add up to {last['partial']:.2f} (if all aligned: {last['aligned']:.2f})",
        fontsize=10,
    )


@styled
def plot_bound_explorer(
    weight: Tensor,
    delora_lambda: float = 2.0,
    r: int = 4,
    init: str = "peft",
    alignment: float = 0.0,
    seed: int = 0,
    lambda_max: float = 8.0,
    r_max: int = 16,
) -> Figure:
    """Left: ||dW||_F, the tight bound and the ceiling as the factors turn from random (0) to all aligned (1),
    the current alignment a dot. Right: how the r unit terms add up at that alignment (``term_sums``).

    Both y-axes are FIXED (0 to ``bound_axis_top(weight, lambda_max)``) and the right x-axis runs to ``r_max``,
    so moving a slider changes the picture, not the tick labels: lambda = 8 draws everything 4x higher than
    lambda = 2. The right panel shows the trainable term (lambda/r) B Xi A diag(w) (all of dW for the PEFT init).
    """
    top = bound_axis_top(weight, lambda_max)
    fig = Figure(figsize=(11.0, 4.2), layout="constrained")
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    _draw_norm_vs_alignment(left, weight, delora_lambda, r, init, alignment, seed, top)
    _draw_terms(right, weight, delora_lambda, r, alignment, seed, top, r_max)
    legend(left)
    legend(right)
    return fig


BOUND_MULTIPLES = (
    dict(delora_lambda=2.0, alignment=0.0),
    dict(delora_lambda=8.0, alignment=0.0),
    dict(delora_lambda=2.0, alignment=0.6),
    dict(delora_lambda=2.0, alignment=1.0),
)


@styled
def plot_bound_small_multiples(
    weight: Tensor,
    settings=BOUND_MULTIPLES,
    r: int = 4,
    init: str = "peft",
    seed: int = 0,
    lambda_max: float = 8.0,
) -> Figure:
    """The bound explorer at a few slider settings side by side (a static page cannot move a slider).

    One column per setting (a dict of ``delora_lambda`` / ``alignment`` / ``r``, the rest from the arguments);
    top row ||dW|| against the alignment, bottom row how the terms add up; every panel on the same y-axis."""
    if not settings:
        raise ValueError("plot_bound_small_multiples: give at least one setting (a dict of slider values)")
    top = bound_axis_top(weight, lambda_max)
    r_max = max(int(s.get("r", r)) for s in settings)
    fig = Figure(figsize=(3.6 * len(settings), 6.6), layout="constrained")
    for i, setting in enumerate(settings):
        values = {**dict(delora_lambda=2.0, r=r, alignment=0.0), **setting}
        upper = fig.add_subplot(2, len(settings), i + 1)
        lower = fig.add_subplot(2, len(settings), len(settings) + i + 1)
        _draw_norm_vs_alignment(
            upper, weight, values["delora_lambda"], values["r"], init, values["alignment"], seed, top
        )
        _draw_terms(lower, weight, values["delora_lambda"], values["r"], values["alignment"], seed, top, r_max)
        upper.set_title(f"lambda = {values['delora_lambda']:g}, alignment = {values['alignment']:g}", fontsize=9)
        lower.title.set_fontsize(8)
        if i:
            upper.set_ylabel("")
            lower.set_ylabel("")
    legend(fig.axes[0])
    legend(fig.axes[1])
    fig.suptitle("lambda sets the scale and the ceiling; A and B set where the update sits below it", fontsize=11)
    return fig
