"""Notebook 01's lesson figures: a DeLoRALinear trained on the toy layer of ``lessons`` (W must learn to act
like W + D), recorded at every step with its bound and its ceiling, so the figures show what lambda does
(frozen vs learned) and how the two inits start (PEFT's jump vs the paper's growth from 0).
"""

from __future__ import annotations

import math

import pandas as pd
import torch
from matplotlib.figure import Figure

from ..delora import DeLoRALinear
from .frames import method_color, require_rows
from .lessons import one_thread, toy_batches, toy_task
from .style import NORM, legend, styled


def toy_delora_runs(
    settings,
    steps: int = 200,
    r: int = 4,
    delora_lambda: float = 1.0,
    target_size: float = 0.25,
    seed: int = 0,
) -> pd.DataFrame:
    """Train a ``DeLoRALinear`` on the toy layer once per setting (dict: init, lr, freeze_lambda, label).

    One row per (run, step), step 0 the start: delta_fro = ||dW||_F, bound (tight, current directions),
    ceiling = ``bound_loose()`` (|lambda| max_j w_j, twice that for the paper init), lambda, loss, and
    typical = |lambda| rms(w) / sqrt(r). float64, AdamW without weight decay, the same batches for every run."""
    W, D = toy_task(target_size=target_size, seed=seed)
    rows = []
    with one_thread():
        for setting in settings:
            _train_toy_delora(W, D, setting, steps, r, delora_lambda, seed, rows)
    frame = pd.DataFrame(rows)
    frame.attrs.update(w_max=W.norm(dim=0).max().item(), target_fro=D.norm().item(), r=r)
    return frame


def _train_toy_delora(W, D, setting, steps, r, delora_lambda, seed, rows) -> None:
    init, lr = setting.get("init", "peft"), float(setting["lr"])
    freeze = bool(setting.get("freeze_lambda", False))
    label = setting.get("label", f"{init} init, lr {lr:g}" + (", lambda frozen" if freeze else ""))
    base = torch.nn.Linear(W.shape[1], W.shape[0], bias=False).double()
    with torch.no_grad():
        base.weight.copy_(W)
    with torch.random.fork_rng(devices=[]):  # the same A (and B for the paper init) in every run; no global change
        torch.manual_seed(seed + 10)
        layer = DeLoRALinear(base, r=r, delora_lambda=delora_lambda, init=init).double()
    layer.delora_lambda.requires_grad_(not freeze)
    opt = torch.optim.AdamW([p for p in layer.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    w = layer.delora_w_norm

    def record(step, loss):
        with torch.no_grad():
            lam = layer.delora_lambda.item()
            rows.append(
                dict(
                    run=label, init=init, lr=lr, freeze_lambda=freeze, step=step, loss=loss, **{"lambda": lam},
                    delta_fro=layer.delta_weight().norm().item(), bound=layer.bound().item(),
                    ceiling=layer.bound_loose().item(), typical=abs(lam) * w.pow(2).mean().sqrt().item() / math.sqrt(r),
                )
            )  # fmt: skip

    batches = toy_batches(W.shape[1], steps + 1, seed=seed + 1)
    x = next(batches)
    record(0, ((x @ D.T) ** 2).mean().item())
    for step in range(1, steps + 1):
        loss = ((layer(x) - x @ (W + D).T) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        x = next(batches)
        record(step, loss.item())


@styled
def plot_lambda_frozen_vs_learned(frame: pd.DataFrame) -> Figure:
    """Left: ||dW||_F and its ceiling |lambda| max_j w_j (dotted) over the steps, one colour per run.
    Right: ||dW||_F / ceiling. With lambda frozen the ceiling is flat and ||dW|| still moves beneath it;
    with lambda learned the ceiling itself moves."""
    require_rows(frame, ["run", "step", "delta_fro", "ceiling", "freeze_lambda"], "plot_lambda_frozen_vs_learned")
    fig = Figure(figsize=(11.0, 4.0), layout="constrained")
    size, ratio = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    # (colour, marker, line style, name): where the two runs coincide, the dashes and the alternating markers
    # (offset by half a period) keep both visible
    looks = {True: ("#0072b2", "o", "-", "lambda frozen"), False: (method_color("delora"), "D", "--", "lambda learned")}
    every = max(2, int(frame["step"].max()) // 10)
    for frozen, rows in frame.groupby("freeze_lambda", sort=False):
        color, marker, style, name = looks[bool(frozen)]
        marks = (0 if frozen else every // 2, every)
        rows = rows.sort_values("step")
        size.plot(rows["step"], rows["delta_fro"], style, marker=marker, markevery=marks, ms=5, color=color,
                  label=rf"{NORM}, {name}", gid=f"delta_fro:{name}")  # fmt: skip
        size.plot(rows["step"], rows["ceiling"], ":", color=color, lw=2.0,
                  label=rf"ceiling $|\lambda| \max_j w_j$, {name}", gid=f"ceiling:{name}")  # fmt: skip
        ratio.plot(rows["step"], rows["delta_fro"] / rows["ceiling"], style, marker=marker, markevery=marks, ms=5,
                   color=color, label=name, gid=f"ratio:{name}")  # fmt: skip
        last = rows.iloc[-1]
        size.annotate(f"{last['ceiling']:.2f}", (last["step"], last["ceiling"]), color=color, fontsize=8,
                      xytext=(3, 0), textcoords="offset points", va="center")  # fmt: skip
    size.set(xlabel="training step", ylabel=NORM, title="the update and its ceiling", ylim=(0, None))
    ratio.set(xlabel="training step", ylabel=rf"{NORM} / ceiling", ylim=(0, 1.05),
              title="how far below its ceiling the update sits")  # fmt: skip
    ratio.axhline(1.0, color="black", lw=0.8, ls=":")
    legend(size)
    legend(ratio)
    fig.suptitle(
        r"$\lambda$ frozen: the ceiling is flat, yet $\|\Delta W\|$ moves (A and B align); "
        r"$\lambda$ learned: the ceiling itself moves",
        fontsize=10,
    )
    return fig


@styled
def plot_first_steps(frame: pd.DataFrame, steps: int | None = None) -> Figure:
    """||dW||_F over the first steps (log y) for each run of ``toy_delora_runs``: PEFT's init solid, the paper's
    dashed, one marker per learning rate; the typical size |lambda| rms(w) / sqrt(r) dotted; step 1 marked."""
    require_rows(frame, ["run", "init", "lr", "step", "delta_fro", "typical"], "plot_first_steps")
    rows_all = frame if steps is None else frame[frame["step"] <= steps]
    fig = Figure(figsize=(7.6, 4.4), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    lrs = sorted(rows_all["lr"].unique())
    markers = dict(zip(lrs, ["o", "s", "^", "v", "P"]))
    period = max(len(lrs), int(rows_all["step"].max()) // 10)
    for (init, lr), rows in sorted(rows_all.groupby(["init", "lr"]), key=lambda item: item[0][0] != "peft"):
        rows = rows[rows["step"] >= 1].sort_values("step")  # dW = 0 at step 0: off a log axis
        name = "PEFT init" if init == "peft" else "paper init"
        marks = (lrs.index(lr) % period, period)  # alternating markers: PEFT's three lines coincide by design
        ax.plot(rows["step"], rows["delta_fro"], "-" if init == "peft" else "--", marker=markers[lr], ms=6,
                markevery=marks,
                color=method_color("delora" if init == "peft" else "delora-paper"),
                label=f"{name}, lr {lr:g}", gid=f"delta_fro:{init}:{lr:g}")  # fmt: skip
    typical = rows_all[rows_all["step"] == 1]["typical"].iloc[0]
    ax.axhline(typical, color="black", lw=1.2, ls=":", zorder=3, label=r"typical size $|\lambda|\,$rms$(w)/\sqrt{r}$")
    peft_one = rows_all[(rows_all["init"] == "peft") & (rows_all["step"] == 1)]["delta_fro"]
    if len(peft_one):
        ax.annotate(
            "the jump at step 1:\nPEFT's B = 0 gets a direction,\nthe normalisation gives it full size",
            (1, peft_one.min()), xytext=(0.45, 0.12), textcoords="axes fraction", fontsize=9,
            arrowprops=dict(arrowstyle="->", color="0.3"),
        )  # fmt: skip
    ax.set(yscale="log", xlabel="training step", ylabel=NORM,
           title="PEFT's init jumps at step 1 for any learning rate; the paper's init grows with it")  # fmt: skip
    ax.title.set_fontsize(10)
    legend(ax)
    return fig
