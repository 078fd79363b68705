"""Notebook 02's slider: the strength ||dW|| / ||W|| and angle(W + dW, W) of LoRA, DoRA and DeLoRA on one weight
when the factors grow, B = sigma * B_hat (what an optimizer does to them), on fixed axes.

``angle_table`` computes the numbers (the instruments' closed forms; tests/test_explore.py checks them against
PEFT), ``plot_angle_explorer`` / ``plot_angle_small_multiples`` draw them; ``random_angle_band``: where
angle(dW, W) lands for random directions (what counts as noise).
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
    delora_update,
    lora_update,
)
from ..instruments.one_layer import dora_update_stats, update_geometry
from .frames import method_color
from .style import legend, styled

ANGLE_METHODS = ("lora", "dora", "delora")


ANGLE_METHODS = ("lora", "dora", "delora")


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
