"""What the tutorials' sliders draw: pure functions from slider values to numbers (a DataFrame) and to a Figure.

Each explorer comes in two halves: ``*_table`` computes the numbers (closed forms from ``core``; the tests
check them against PEFT and dense float64 references), ``plot_*`` draws them. ``show_interactive`` wires
any ``plot_*`` to ipywidgets controls, and first displays the figure at the controls' default values as a
plain image, so a headless run and a reader without a live kernel see it too.

- ``bound_table`` / ``term_sums`` / ``plot_bound_explorer`` / ``plot_bound_small_multiples`` (notebook 01):
  ||dW||_F of a DeLoRA layer against its tight bound (|lambda|/r) sum_i ||a_i/||a_i|| * w|| and the ceiling
  |lambda| max_j ||W[:, j]|| (twice that with the paper init), as the factors turn from random (alignment 0)
  to all aligned (1): every a_i = e_j* (W's largest column), every b_i the same unit vector, where
  ||dW||_F = |lambda| w_j*. lambda sets the scale and the ceiling; the alignment of A and B (how the r unit
  terms add up) sets where ||dW|| sits below it. Fixed axes, so each slider value draws its own picture.
- ``angle_table`` / ``plot_angle_explorer`` / ``plot_angle_small_multiples`` (notebook 02): the strength
  ||dW|| / ||W|| and angle(W + dW, W) of LoRA, DoRA and DeLoRA on one weight when the factors grow,
  B = sigma * B_hat (what an optimizer does to them), on fixed axes; ``random_angle_band``: where
  angle(dW, W) lands for random directions (what counts as noise).
- ``plot_layer_trajectory`` / ``plot_layer_small_multiples`` (notebook 03): one layer of one tracked run over
  the steps, on axes fixed by the whole run set; the same at a few (layer, method) pairs, for a static page.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import Tensor

from .. import names
from ..delora.geometry import (
    DoraUpdate,
    delora_bound,
    delora_bound_loose,
    delora_update,
    fro_norm,
    lora_update,
)
from ..instruments.one_layer import dora_update_stats, update_geometry
from .frames import method_color, numeric, require_rows, short_layer
from .style import NORM, legend, styled

ANGLE_METHODS = ("lora", "dora", "delora")


# ----------------------------------------------------------------------------- 01: the bound
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


# ----------------------------------------------------------------------------- 02: angles vs strength
def angle_factors(weight: Tensor, r: int, seed: int = 0) -> tuple[Tensor, Tensor, float]:
    """Random A (r, n) and unit-scale B_hat (m, r) with ||s B_hat A||_F = ||W||_F for LoRA's s = 2 (alpha = 2r).

    So sigma, the factor scale in B = sigma B_hat, reads as LoRA's ||dW||_F / ||W||_F. Returns (A, B_hat, s)."""
    W = weight.detach().double()
    m, n = W.shape
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(r, n, generator=gen, dtype=torch.float64) / math.sqrt(n)
    B = torch.randn(m, r, generator=gen, dtype=torch.float64)
    s = 2.0
    B = B * (W.norm() / (s * B @ A).norm())
    return A, B, s


def angle_table(
    weight: Tensor, r: int = 8, delora_lambda: float = 5.0, sigmas=None, seed: int = 0, methods=ANGLE_METHODS
) -> pd.DataFrame:
    """One row per (method, sigma) with B = sigma B_hat: rel_delta = ||dW||_F/||W||_F and both angles in degrees.

    lora:   dW = s B A.
    dora:   W' = diag(g)(W + s B A), g_k = ||W_k|| / ||(W + s B A)_k||  (magnitudes still at their start).
    delora: dW = (lambda/r) B Xi A diag(w): rescaling B divides away (below PEFT's 1e-4 clamp on
            ||b_i||, the terms shrink). This holds A and B's directions fixed; turning them moves
            ||dW|| below the ceiling |lambda| max_j w_j too (``bound_table``), so lambda is not the only knob.
    Float64 closed forms from ``instruments.one_layer``; ``bound_rel`` is DeLoRA's |lambda| max_j w_j / ||W||_F.
    """
    unknown = sorted(set(methods) - set(ANGLE_METHODS))
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {list(ANGLE_METHODS)}")
    sigmas = np.logspace(-3, 1, 25) if sigmas is None else np.asarray(sigmas, dtype=float)
    W = weight.detach().double()
    A, B_hat, s = angle_factors(W, r, seed)
    w = W.norm(dim=0)
    lam = torch.tensor([float(delora_lambda)], dtype=torch.float64)
    w_fro_sq = W.pow(2).sum()
    rows = []
    for sigma in sigmas:
        B = float(sigma) * B_hat
        for method in methods:
            if method == "lora":
                geo = update_geometry(W, lora_update(A, B, s), w_fro_sq)
            elif method == "delora":
                geo = update_geometry(W, delora_update(A, B, lam, w), w_fro_sq)
            else:
                geo, _, _ = dora_update_stats(W, DoraUpdate(A, B, s, W.norm(dim=1)))
            rows.append(
                dict(
                    method=method,
                    sigma=float(sigma),
                    rel_delta=geo.rel_delta.item(),
                    angle_delta_w_deg=math.degrees(geo.angle_delta_w.item()),
                    angle_w_prime_deg=math.degrees(geo.angle_w_prime.item()),
                    bound_rel=(lam * w.max()).item() / math.sqrt(w_fro_sq.item()) if method == "delora" else np.nan,
                )
            )
    return pd.DataFrame(rows)


STRENGTH_RANGE = (1e-4, 1e2)  # the explorer's fixed strength axis: ||dW||_F / ||W||_F, log scale


def _angle_bars(size_ax, turn_ax, now: pd.DataFrame, gid: str = "") -> None:
    """Draw one setting's bars: strength ||dW||/||W|| (log, fixed range, DeLoRA's ceiling as a dashed
    segment over its bar) and angle(W + dW, W) (0-90 degrees). ``now``: angle_table rows, indexed by method."""
    labels = [names.label(m) for m in now.index]
    colors = [method_color(m) for m in now.index]
    x = np.arange(len(now))
    for ax, column in ((size_ax, "rel_delta"), (turn_ax, "angle_w_prime_deg")):
        bars = ax.bar(x, now[column], color=colors, alpha=0.85, width=0.6)
        for patch, method, value in zip(bars, now.index, now[column]):
            patch.set_gid(f"{gid}{column}:{method}")
            label = f"{value:.2g}" if column == "rel_delta" else f"{value:.1f}°"
            ax.annotate(label, (patch.get_x() + 0.3, value), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(x, labels)
        ax.grid(axis="x", visible=False)
    if "delora" in now.index and np.isfinite(now.loc["delora", "bound_rel"]):
        i = list(now.index).index("delora")
        size_ax.plot(
            [i - 0.45, i + 0.45], [now.loc["delora", "bound_rel"]] * 2, "--", color="black", lw=1.4,
            label="DeLoRA ceiling |λ| max_j w_j / ‖W‖", gid=f"{gid}ceiling",
        )  # fmt: skip
    size_ax.set(yscale="log", ylim=STRENGTH_RANGE, ylabel=r"strength $\|\Delta W\|_F / \|W\|_F$")
    turn_ax.set(ylim=(0, 90), yticks=range(0, 91, 15), ylabel=r"$\angle(W + \Delta W, W)$ (degrees)")


@styled
def plot_angle_explorer(
    weight: Tensor, sigma: float = 0.1, delora_lambda: float = 5.0, r: int = 8, seed: int = 0, methods=ANGLE_METHODS
) -> Figure:
    """What the factors' size does to each method, at one setting, on FIXED axes (moving a slider moves bars).

    B = sigma B_hat with fixed random A and B_hat (``angle_factors``; sigma reads as LoRA's ||dW|| / ||W||).
    Left: strength ||dW||_F / ||W||_F of LoRA, DoRA, DeLoRA (log axis from 1e-4 to 100), DeLoRA's ceiling
    |lambda| max_j w_j / ||W||_F dashed. Right: how far W has turned, angle(W + dW, W) (0 to 90 degrees).
    Look for: LoRA's bar follows sigma; DoRA's saturates (each row keeps its length and only rotates);
    DeLoRA's ignores sigma and follows lambda, under its ceiling.
    """
    now = angle_table(weight, r, delora_lambda, sigmas=[sigma], seed=seed, methods=methods).set_index("method")
    fig = Figure(figsize=(10.0, 3.9), layout="constrained")
    size_ax, turn_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    _angle_bars(size_ax, turn_ax, now)
    size_ax.set_title("strength of the update")
    turn_ax.set_title("how far W has turned")
    legend(size_ax)
    fig.suptitle(f"factor scale σ = {sigma:.3g} (B = σ B̂),  λ = {delora_lambda:g},  r = {r}")
    return fig


@styled
def plot_angle_small_multiples(
    weight: Tensor, settings=((0.01, 5.0), (0.1, 5.0), (1.0, 5.0), (1.0, 20.0)), r: int = 8, seed: int = 0
) -> Figure:
    """``plot_angle_explorer`` at a few (sigma, lambda) settings side by side, same fixed axes: the static
    page's version of the slider. Top row: strength; bottom row: angle(W + dW, W). Bar gids
    "<k>:rel_delta:<method>" / "<k>:angle_w_prime_deg:<method>" for the k-th setting."""
    fig = Figure(figsize=(3.1 * len(settings), 5.6), layout="constrained")
    axes = fig.subplots(2, len(settings), sharey="row", squeeze=False)
    for k, (sigma, lam) in enumerate(settings):
        now = angle_table(weight, r, lam, sigmas=[sigma], seed=seed).set_index("method")
        _angle_bars(axes[0, k], axes[1, k], now, gid=f"{k}:")
        axes[0, k].set_title(f"σ = {sigma:g}, λ = {lam:g}")
        if k:
            axes[0, k].set_ylabel("")
            axes[1, k].set_ylabel("")
    legend(axes[0, 0])
    fig.suptitle(f"Growing the factors (σ) grows LoRA, not DeLoRA; λ moves DeLoRA's bar and ceiling (r = {r})")
    return fig


def random_angle_band(weight: Tensor, r: int = 8, samples: int = 400, seed: int = 0, coverage: float = 0.99):
    """Where angle(dW, W) lands for random rank-r directions dW = B A (Gaussian factors), in degrees:
    the central ``coverage`` interval over ``samples`` draws, as (low, high). Float64 closed forms:
    <BA, W> = sum(B * (W A^T)), ||BA||^2 = sum((B^T B) * (A A^T))."""
    W = weight.detach().double()
    m, n = W.shape
    gen = torch.Generator().manual_seed(seed)
    angles = []
    for _ in range(samples):
        A = torch.randn(r, n, generator=gen, dtype=torch.float64)  # (r, n)
        B = torch.randn(m, r, generator=gen, dtype=torch.float64)  # (m, r)
        inner = (B * (W @ A.T)).sum()
        norm = ((B.T @ B) * (A @ A.T)).sum().sqrt()
        angles.append(math.degrees(math.acos(float(inner / (norm * W.norm())))))
    tail = (1 - coverage) / 2
    low, high = np.quantile(angles, [tail, 1 - tail])
    return float(low), float(high)


# ----------------------------------------------------------------------------- 03: one layer's trajectory
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


# ----------------------------------------------------------------------------- widgets
def show_interactive(plot, **controls) -> None:
    """Display ``plot(**defaults)`` as a plain image, then the controls; each change redraws it in place.

    ``controls``: keyword -> ipywidgets control (its ``value`` is the default). The image is displayed with
    a display id and updated in place, so a live kernel shows one figure that follows the sliders, while a
    headless run (CI) or a reader without a kernel sees the figure at the defaults. Returns None, so that a
    cell ending with the call does not display the controls a second time.
    """
    import ipywidgets as widgets  # the [notebooks] extra; only needed here
    from IPython.display import display

    def values():
        return {key: control.value for key, control in controls.items()}

    handle = display(plot(**values()), display_id=True)
    box = widgets.HBox(list(controls.values()), layout=widgets.Layout(flex_flow="row wrap"))

    def redraw(_change=None):
        handle.update(plot(**values()))

    for control in controls.values():
        control.observe(redraw, names="value")
    display(box)
