"""The appendix's figure and tables (notebook 99): why angles are measured with atan2, not arccos; closed
forms against dense float64 and their timing; parity with PEFT's merged weights; TensorBoard's scalars.

For a small update the angle by which it turns W is about ||dW|| / ||W||. arccos reads it from a cosine
of 1 - theta^2 / 2, and in float32 that cosine rounds to 1 once theta is below ~1e-4 (float32 keeps ~7
digits), so arccos returns 0 or rounding noise. atan2(q, ||W|| + p), with p = <dW, W> / ||W|| the part of
dW along W and q = sqrt(||dW||^2 - p^2) the part across it, takes the small across part directly.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import Tensor

from ..delora.geometry import DoraUpdate, LowRankUpdate, fro_norm
from ..instruments.dense import dense_geometry
from ..instruments.one_layer import dora_update_stats, update_geometry
from .style import legend, styled

SIZES = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


def angle_precision_table(weight: Tensor, sizes=SIZES, r: int = 8, seed: int = 1) -> pd.DataFrame:
    """angle(W + dW, W) in float32 by arccos and by atan2 (closed form), against float64, per relative size.

    dW is one fixed random rank-r direction scaled to ||dW||_F / ||W||_F = size. Columns: size, truth_rad
    (dense float64), arccos_fp32, atan2_fp32 (radians), and their relative errors.
    """
    W = weight.detach().float()
    m, n = W.shape
    gen = torch.Generator().manual_seed(seed)
    direction = LowRankUpdate(torch.randn(m, r, generator=gen), torch.randn(n, r, generator=gen))  # U (m, r), V (n, r)
    rows = []
    for size in sizes:
        scale = size * W.norm() / fro_norm(direction)
        small = LowRankUpdate(direction.U * scale, direction.V)  # ||dW|| / ||W|| = size, float32 factors
        truth = dense_geometry(W.double(), small.dense().double()).angle_w_prime.item()  # the float64 reference
        turned = W + small.dense()  # (m, n) float32
        cosine = ((turned * W).sum() / (turned.norm() * W.norm())).clamp(-1, 1)
        by_arccos = torch.arccos(cosine).item()
        by_atan2 = update_geometry(W, small).angle_w_prime.item()
        rows.append(
            dict(
                size=float(size),
                truth_rad=truth,
                arccos_fp32=by_arccos,
                atan2_fp32=by_atan2,
                arccos_rel_error=abs(by_arccos - truth) / truth,
                atan2_rel_error=abs(by_atan2 - truth) / truth,
            )
        )
    return pd.DataFrame(rows)


@styled
def plot_angle_precision(table: pd.DataFrame) -> Figure:
    """Relative error of angle(W + dW, W) in float32, arccos vs atan2, against the update's relative size
    (both axes log). Errors of exactly 0 are drawn at 1e-9 (gid "arccos" / "atan2"); a shaded strip
    marks errors of 50% and more, where the number says nothing about the angle."""
    fig = Figure(figsize=(7.6, 4.2), layout="constrained")
    ax = fig.add_subplot()
    floor = 1e-9
    for column, name, style in (
        ("arccos_rel_error", "arccos of the cosine (float32)", dict(ls="--", marker="s", color="#ee3377")),
        ("atan2_rel_error", "atan2(across, along) (float32)", dict(ls="-", marker="o", color="#332288")),
    ):
        values = np.maximum(table[column].to_numpy(dtype=float), floor)
        ax.plot(table["size"], values, label=name, gid=column.split("_")[0], ms=6, **style)
    ax.axhspan(0.5, 10, color="0.85", lw=0, zorder=0)
    ax.annotate("wrong by 50% or more", (0.98, 0.93), xycoords="axes fraction", ha="right", fontsize=9, color="0.3")
    ax.set(
        xscale="log",
        yscale="log",
        ylim=(floor / 2, 10),
        xlabel=r"relative size of the update $\|\Delta W\|_F / \|W\|_F$",
        ylabel="relative error of ∠(W + ΔW, W)",
        title="Small updates: arccos loses the angle, atan2 keeps it",
    )
    legend(ax)
    return fig


# ----------------------------------------------------------------------------- the appendix's tables
def closed_form_check(weight: Tensor, A: Tensor, B: Tensor, delora_lambda: float, s: float) -> pd.DataFrame:
    """LoRA, DeLoRA and DoRA updates built from the same A (r, n), B (m, r): each closed-form metric
    (float32, never building dW) against the dense update in float64. Columns: method, metric, closed_form,
    dense_float64, rel_error. DoRA's magnitudes are at their start (the row norms of W)."""
    W = weight.detach().float()
    w = W.norm(dim=0)  # (n,) column norms
    d = delora_lambda / (A.shape[0] * A.norm(dim=1) * B.norm(dim=0))  # (r,) DeLoRA's normalisation
    g = W.norm(dim=1) / (W + s * B @ A).norm(dim=1)  # (m,) DoRA: each row back to its length
    cases = {
        "lora": (update_geometry(W, LowRankUpdate(s * B, A.T)), s * B @ A),
        "delora": (update_geometry(W, LowRankUpdate(B * d, (A * w).T)), (B * d) @ (A * w)),
        "dora": (dora_update_stats(W, DoraUpdate(A, B, s, W.norm(dim=1)))[0], g[:, None] * (W + s * B @ A) - W),
    }
    rows = []
    for method, (geo, dense) in cases.items():
        exact = dense_geometry(W.double(), dense.double())
        for metric in ("delta_fro", "angle_delta_w", "angle_w_prime"):
            got, ref = getattr(geo, metric).item(), getattr(exact, metric).item()
            rows.append(
                dict(method=method, metric=metric, closed_form=got, dense_float64=ref, rel_error=abs(got / ref - 1))
            )
    return pd.DataFrame(rows)


def closed_form_timing(size: int = 4096, k: int = 16, repeats: int = 7, seed: int = 0) -> pd.DataFrame:
    """Seconds (best of ``repeats``, one thread) and extra memory of all metrics from the factors, of the norm
    alone, and of the dense route (build the size x size update, then the metrics), on a random layer with a
    rank-k update; ``rel_error``: the closed form against dense float64 (largest over norm and angle)."""
    gen = torch.Generator().manual_seed(seed)
    W = torch.randn(size, size, generator=gen) / size**0.5
    update = LowRankUpdate(1e-2 * torch.randn(size, k, generator=gen), torch.randn(size, k, generator=gen))
    exact, closed = dense_geometry(W.double(), update.dense().double()), update_geometry(W, update)
    error = max(abs(getattr(closed, c).item() / getattr(exact, c).item() - 1) for c in ("delta_fro", "angle_delta_w"))
    del exact

    def best_of(fn):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same for every route, and steadier on a busy machine
    try:
        seconds = [
            best_of(lambda: update_geometry(W, update)),
            best_of(lambda: fro_norm(update)),
            best_of(lambda: dense_geometry(W, update.dense())),
        ]
    finally:
        torch.set_num_threads(threads)
    mib = [3 * size * k * 4 / 2**20, 2 * k * k * 4 / 2**20, size * size * 4 / 2**20]  # float32 bytes
    table = pd.DataFrame(
        {"seconds": seconds, "extra memory (MiB)": mib},
        index=["closed form, all metrics", "closed form, norm only", "dense"],
    )
    table["x faster than dense"] = seconds[2] / table["seconds"]
    table.attrs["rel_error"] = error
    return table


def peft_parity(peft_model, base_model, tracker_df: pd.DataFrame) -> pd.DataFrame:
    """Each layer's last tracked row against PEFT itself: ``merge_and_unload()`` on a copy, minus the untouched
    base weight, in float64 (dense). Relative differences of delta_fro and angle_delta_w, one row per layer."""
    import copy

    merged = copy.deepcopy(peft_model).merge_and_unload()
    last = tracker_df[tracker_df["step"] == tracker_df["step"].max()].set_index("layer")
    rows = {}
    for layer, row in last.iterrows():
        name = layer.removeprefix("base_model.model.")
        W0 = base_model.get_submodule(name).weight.detach().double()
        reference = dense_geometry(W0, merged.get_submodule(name).weight.detach().double() - W0)
        rows[name] = dict(
            delta_fro=abs(row["delta_fro"] / reference.delta_fro.item() - 1),
            angle_delta_w=abs(row["angle_delta_w_deg"] / math.degrees(reference.angle_delta_w.item()) - 1),
        )
    return pd.DataFrame.from_dict(rows, orient="index")


def tensorboard_scalars(directory) -> dict[str, list[float]]:
    """Every scalar series in the TensorBoard event files under ``directory``: tag -> values in order."""
    from pathlib import Path

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars = {}
    for events in Path(directory).rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars[tag] = [e.value for e in acc.Scalars(tag)]
    return scalars
