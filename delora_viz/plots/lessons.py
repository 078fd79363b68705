"""Notebook 00's lesson figures (notebook 01's are in ``toy_delora``): small, seeded experiments on one toy
layer, and the figures that say what to notice in them. Every ``plot_*`` returns a Figure (no pyplot state); every
``*_runs`` / ``*_table`` returns the numbers it draws, so tests check them against an independent computation.

The toy layer: a frozen W (m x n, nn.Linear layout, entries N(0, 1/n)) that must learn to act like
W + D, where D is a fixed rank-2 change of size ||D||_F = ``target_size`` * ||W||_F. Inputs x ~ N(0, I), so the
mean squared error is ||W' - (W + D)||_F^2 / m: a quadratic any method can (try to) fit in a few hundred steps.

The four methods, written out once here on that one weight (B (m, r), A (r, n), u (m,), s = alpha / r):
    LoRA    W' = W + s B A                                           (strength and direction coupled, unbounded)
    DoRA    W' = diag(g / c) (W + s B A), c_k = ||(W + s B A)[k, :]|| (detached, as PEFT does), g learned
    ETHER   W' = H W, H = I - 2 u u^T / ||u||^2                     (a reflection: ||H - I||_F = 2, fixed)
    DeLoRA  W' = W + (lambda / r) B Xi A diag(w)                     (``delora_update``: bounded, lambda learned)
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from ..delora import delora_update, lora_update
from .frames import method_color, require_rows
from .style import legend, styled

FAMILY = ("lora", "dora", "ether", "delora")
FAMILY_NAMES = {"lora": "LoRA", "dora": "DoRA", "ether": "ETHER", "delora": "DeLoRA"}
ETHER_COLOR = "#117733"  # green: not one of the app's methods, so not in frames.METHOD_COLORS
MARKERS = {"lora": "o", "dora": "s", "ether": "^", "delora": "D"}
STYLES = {"lora": "-", "dora": "--", "ether": "-.", "delora": "-"}
# DoRA's markers hollow and larger: where DoRA and LoRA coincide (small rates), LoRA's dots show inside DoRA's squares
MARKER_STYLE = {"dora": dict(markerfacecolor="none", ms=8, mew=1.5)}


def family_color(method: str) -> str:
    return ETHER_COLOR if method == "ether" else method_color(method)


# ----------------------------------------------------------------------------- the toy layer
def toy_task(m: int = 64, n: int = 64, target_size: float = 0.25, seed: int = 0) -> tuple[Tensor, Tensor]:
    """(W, D): a frozen weight W (m, n) with entries N(0, 1/n), and the change D (m, n) it must learn.

    D = P Q^T is rank 2 with ||D||_F = target_size * ||W||_F; float64, seeded."""
    gen = torch.Generator().manual_seed(seed)
    W = torch.randn(m, n, generator=gen, dtype=torch.float64) / math.sqrt(n)
    P = torch.randn(m, 2, generator=gen, dtype=torch.float64)
    Q = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    D = P @ Q.T
    return W, D * (target_size * W.norm() / D.norm())


def toy_batches(n: int, steps: int, batch: int = 64, seed: int = 1):
    """The same inputs x ~ N(0, I) (batch, n) for every method and every rate: a fair comparison."""
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        yield torch.randn(batch, n, generator=gen, dtype=torch.float64)


@contextlib.contextmanager
def one_thread():
    """Run on one CPU thread, then restore: 64 x 64 products are slower split over threads (measured 5-30x
    on a busy 2-core machine), and the runs stay reproducible."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _kaiming(rows: int, cols: int, gen: torch.Generator) -> Tensor:
    """nn.Linear's default (kaiming-uniform, a = sqrt(5)): U(-1/sqrt(cols), 1/sqrt(cols)), as PEFT starts A."""
    bound = 1 / math.sqrt(cols)
    return torch.empty(rows, cols, dtype=torch.float64).uniform_(-bound, bound, generator=gen)


def _family_member(method: str, W: Tensor, r: int, delora_lambda: float, gen: torch.Generator):
    """(trainable parameters, function params -> W'). Inits as PEFT (LoRA/DoRA/DeLoRA: B = 0) and ETHER (random u)."""
    m, n = W.shape
    s = 2.0  # LoRA's alpha / r with alpha = 2r
    if method == "ether":
        u = torch.randn(m, 1, generator=gen, dtype=torch.float64).requires_grad_()

        def weight(u=u):
            u_hat = u / u.norm()  # (m, 1) unit: H = I - 2 u u^T
            return W - 2 * u_hat @ (u_hat.T @ W)  # H W, without building H

        return [u], weight
    A = _kaiming(r, n, gen).requires_grad_()  # (r, n)
    B = torch.zeros(m, r, dtype=torch.float64, requires_grad=True)  # (m, r)
    if method == "lora":
        return [A, B], lambda: W + lora_update(A, B, s).dense()
    if method == "dora":
        g = W.norm(dim=1).clone().requires_grad_()  # (m,) magnitudes, start at W's row norms

        def weight():
            V = W + lora_update(A, B, s).dense()  # (m, n) the direction, before normalising
            return (g / V.norm(dim=1).detach()).unsqueeze(1) * V  # each output row rescaled to g_k

        return [A, B, g], weight
    if method == "delora":
        lam = torch.tensor([float(delora_lambda)], dtype=torch.float64, requires_grad=True)
        w = W.norm(dim=0)  # (n,) frozen column norms
        return [A, B, lam], lambda: W + delora_update(A, B, lam, w).dense()
    raise ValueError(f"method must be one of {FAMILY}, got {method!r}")


def family_runs(
    lrs=(1e-2, 1e-1, 1.0),
    steps: int = 200,
    methods=FAMILY,
    r: int = 4,
    delora_lambda: float = 2.0,
    target_size: float = 0.25,
    seed: int = 0,
) -> pd.DataFrame:
    """Each method of the family fits the toy layer with Adam at each learning rate.

    One row per (method, lr, step), step 0 the start: delta_fro = ||W' - W||_F, loss (the batch's mean squared
    error before that step's update; at step 0 the first batch's), ceiling = |lambda| max_j w_j (DeLoRA only,
    with the lambda of that step), reflection = ||H - I||_F (ETHER only, always 2), lambda (DeLoRA only).
    A run whose update goes non-finite stops there (diverged = True on its last row)."""
    W, D = toy_task(target_size=target_size, seed=seed)
    w_max = W.norm(dim=0).max().item()
    rows = []
    with one_thread():
        _train_family(W, D, w_max, lrs, steps, methods, r, delora_lambda, seed, rows)
    frame = pd.DataFrame(rows)
    frame.attrs.update(w_fro=W.norm().item(), w_max=w_max, target_fro=D.norm().item(), r=r)
    return frame


def _train_family(W, D, w_max, lrs, steps, methods, r, delora_lambda, seed, rows) -> None:
    for method in methods:
        for lr in lrs:
            gen = torch.Generator().manual_seed(seed + 10)  # the same A (and u) at every rate
            params, weight = _family_member(method, W, r, delora_lambda, gen)
            rows.extend(_train_one(method, lr, params, weight, W, D, w_max, steps, seed))


def _family_row(method, lr, params, weight, W, w_max, step, loss) -> dict:
    with torch.no_grad():
        row = dict(method=method, lr=lr, step=step, delta_fro=(weight() - W).norm().item(), loss=loss)
        if method == "delora":
            row["lambda"] = params[2].item()
            row["ceiling"] = abs(row["lambda"]) * w_max
        if method == "ether":
            u_hat = params[0] / params[0].norm()
            row["reflection"] = (2 * u_hat @ u_hat.T).norm().item()  # ||H - I||_F
    return row


def _train_one(method, lr, params, weight, W, D, w_max, steps, seed) -> list[dict]:
    """Adam on the mean squared error against x (W + D)^T; stops at the first non-finite parameter."""
    opt = torch.optim.Adam(params, lr=lr)
    batches = toy_batches(W.shape[1], steps + 1, seed=seed + 1)
    x = next(batches)
    rows = [dict(_family_row(method, lr, params, weight, W, w_max, 0, (x @ D.T).pow(2).mean().item()), diverged=False)]
    for step in range(1, steps + 1):
        loss = (x @ weight().T - x @ (W + D).T).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        x = next(batches)
        row = _family_row(method, lr, params, weight, W, w_max, step, loss.item())
        row["diverged"] = not all(torch.isfinite(p).all() for p in params) or not math.isfinite(row["delta_fro"])
        rows.append(row)
        if row["diverged"]:
            break
    return rows


def family_sweep(frame: pd.DataFrame, base_lr: float | None = None, last: int = 20) -> pd.DataFrame:
    """The toy runs of ``family_runs`` as a learning-rate sweep, in ``training.sweep_frame``'s columns.

    lr_multiplier = lr / base_lr (default: the smallest rate); final_distance = ||W' - W||_F at the last step;
    eval_metric = 1 - (mean loss over the last ``last`` steps) / (loss at step 0): the share of the error removed
    (1 all of it, 0 none; a run that ends worse than W itself also reads 0)."""
    require_rows(frame, ["method", "lr", "step", "delta_fro", "loss"], "family_sweep")
    base_lr = float(frame["lr"].min()) if base_lr is None else float(base_lr)
    rows = []
    for (method, lr), run in frame.groupby(["method", "lr"], sort=False):
        run = run.sort_values("step")
        start, end = run["loss"].iloc[0], run[run["step"] >= 1]["loss"].tail(last).mean()
        rows.append(
            dict(
                method=method,
                lr_multiplier=lr / base_lr,
                lr=lr,
                final_distance=run["delta_fro"].iloc[-1],
                eval_metric=max(1.0 - end / start, 0.0),  # 0: nothing learned, or worse than W itself
                eval_name="share of the error removed (toy layer)",
                diverged=bool(run["diverged"].any()),
            )
        )
    return pd.DataFrame(rows)


@styled
def plot_update_family(frame: pd.DataFrame) -> Figure:
    """One panel per learning rate, the same log y-axis: ||W' - W||_F over the steps for each method, DeLoRA's
    ceiling |lambda| max_j w_j dashed, the target's size ||D||_F dotted."""
    require_rows(frame, ["method", "lr", "step", "delta_fro"], "plot_update_family")
    lrs = sorted(frame["lr"].unique())
    fig = Figure(figsize=(4.3 * len(lrs), 4.4), layout="constrained")
    axes = [fig.add_subplot(1, len(lrs), i + 1) for i in range(len(lrs))]
    finite = frame["delta_fro"][np.isfinite(frame["delta_fro"]) & (frame["delta_fro"] > 0)]
    top = max(finite.max(), frame.get("ceiling", pd.Series([0.0])).max()) * 2
    bottom = finite.min() / 2
    every = max(1, int(frame["step"].max()) // 10)
    for ax, lr in zip(axes, lrs):
        for method, rows in frame[frame["lr"] == lr].groupby("method", sort=False):
            rows = rows[rows["delta_fro"] > 0]
            ax.plot(
                rows["step"],
                rows["delta_fro"],
                STYLES[method],
                marker=MARKERS[method],
                markevery=every,
                color=family_color(method),
                label=FAMILY_NAMES[method],
                gid=f"delta_fro:{method}",
                **{"ms": 5, **MARKER_STYLE.get(method, {})},
            )
            if method == "delora":
                ax.plot(
                    rows["step"], rows["ceiling"], ":", color=family_color(method), lw=2.2,
                    label="DeLoRA ceiling", gid="ceiling",
                )  # fmt: skip
            if rows["diverged"].any():
                last = rows.iloc[-1]
                ax.annotate("diverged", (last["step"], min(last["delta_fro"], top)), color=family_color(method))
        target = frame.attrs.get("target_fro")
        if target:
            ax.axhline(target, color="0.4", lw=1, ls=(0, (1, 3)), label="size of the change to learn")
        ax.set(yscale="log", ylim=(bottom, top), xlabel="training step", title=f"learning rate {lr:g}")
    axes[0].set_ylabel(r"size of the update $\|W' - W\|_F$")
    handles, labels = axes[-1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False)
    fig.suptitle(
        "LoRA and DoRA go as far as the learning rate takes them; ETHER's reflection is never small; "
        "DeLoRA stays under its ceiling",
        fontsize=10,
    )
    return fig


# ----------------------------------------------------------------------------- LoRA's picture
@styled
def plot_lora_shapes(m: int = 48, n: int = 64, r: int = 4, alpha: float = 8.0) -> Figure:
    """dW (m x n) = (alpha / r) B (m x r) A (r x n), the rectangles drawn to scale, with the parameter counts."""
    if not (0 < r <= min(m, n)):
        raise ValueError(f"r must be between 1 and min(m, n) = {min(m, n)}, got {r}")
    fig = Figure(figsize=(10.0, 3.6), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    gap = 0.25 * n
    boxes = [  # (name, x, width, height, label)
        ("dW", 0.0, n, m, rf"$\Delta W$: {m} x {n}" + "\n" + f"(rank <= {r})"),
        ("B", n + gap, r, m, f"B\n{m} x {r}"),
        ("A", n + 2 * gap + r, n, r, f"A: {r} x {n}"),
    ]
    colors = {"dW": "0.85", "B": method_color("lora"), "A": method_color("lora")}
    for name, x, width, height, label in boxes:
        y = m - height  # top-aligned, like matrices on paper
        ax.add_patch(Rectangle((x, y), width, height, facecolor=colors[name], edgecolor="black", gid=name, alpha=0.9))
        inside = name == "dW"
        ax.annotate(
            label,
            (x + width / 2, y + height / 2 if inside else y - 1.5),
            ha="center",
            va="center" if inside else "top",
            fontsize=10,
        )
    ax.annotate("=", (n + gap / 2, m / 2), ha="center", va="center", fontsize=18)
    ax.annotate(f"alpha / r\n= {alpha:g} / {r}\n= {alpha / r:g}, times", (n + gap * 0.5, m / 2 - 5), ha="center",
                va="top", fontsize=8)  # fmt: skip
    ax.annotate("x", (n + 1.5 * gap + r, m - r / 2), ha="center", va="center", fontsize=14)
    ax.set(xlim=(-2, 2 * n + 2 * gap + r + 2), ylim=(-14, m + 4), aspect="equal")
    ax.axis("off")
    ax.set_title(
        f"LoRA trains r (m + n) = {r * (m + n)} numbers instead of m n = {m * n} "
        f"({r * (m + n) / (m * n):.0%}); nothing limits the size of the product",
        fontsize=10,
    )
    return fig


# ----------------------------------------------------------------------------- the learning-rate hook
@styled
def plot_lr_collapse(sweep: pd.DataFrame) -> Figure:
    """The learning-rate sweep as the hook: the final eval metric against the lr multiplier, one line per method
    (columns of ``training.sweep_frame``); a diverged run is an 'x' near the bottom, one height per method."""
    require_rows(sweep, ["method", "lr_multiplier", "eval_metric"], "plot_lr_collapse")
    names = sweep["eval_name"].dropna().unique() if "eval_name" in sweep else []
    metric = str(names[0]) if len(names) == 1 else "eval metric"
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    markers = {"lora": "o", "dora": "s", "delora": "D", "delora-paper": "v"}
    for i, (method, rows) in enumerate(sweep.groupby("method", sort=False)):
        rows = rows.sort_values("lr_multiplier")
        diverged = rows["diverged"].eq(True) if "diverged" in rows else pd.Series(False, index=rows.index)
        name = FAMILY_NAMES.get(method, "DeLoRA (paper init)" if method == "delora-paper" else method)
        ok = rows[~diverged]
        ax.plot(
            ok["lr_multiplier"], ok["eval_metric"], STYLES.get(method, ":"), marker=markers.get(method, "o"),
            color=family_color(method), label=name, gid=f"eval:{method}", **MARKER_STYLE.get(method, {}),
        )  # fmt: skip
        if diverged.any():
            ax.plot(
                rows[diverged]["lr_multiplier"], np.full(int(diverged.sum()), 0.03 + 0.05 * i), "x", ms=9, mew=2,
                color=family_color(method), transform=ax.get_xaxis_transform(), clip_on=False,
                gid=f"diverged:{method}", label=f"{name}: diverged",
            )  # fmt: skip
    ax.axvline(1.0, color="0.6", lw=0.8, ls=":")
    ax.annotate("each method's usual rate", (1.0, 0.5), xycoords=("data", "axes fraction"), fontsize=8, va="center",
                ha="right", rotation=90, color="0.4")  # fmt: skip
    ax.set(xscale="log", xlabel="learning rate, as a multiple of each method's usual rate", ylabel=metric)
    ax.set_title("Raise the learning rate: which method still learns?")
    legend(ax)
    return fig
