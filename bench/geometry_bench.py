"""Closed-form geometry vs the dense reference, for LoRA, DoRA and DeLoRA on square m x m layers.

    closed: one_layer.update_geometry(W, factors)  |  one_layer.dora_update_stats(W, DoraUpdate)
    dense:  dense.dense_geometry(W, U @ V.T)   |  dense.dense_geometry(W, dense_dora_delta(W, ...))

Both sides start from the same parameters (A, B, lambda, magnitude) and produce the same numbers
(||dW||, ||W||, the two angles), in float32 as the Tracker does, whatever dtype W is stored in.
err_closed / err_dense: the largest relative error of each against a float64 reference.
"""

from __future__ import annotations

import math

import torch
from benchlib import Timer, interleave, median, paired_ratio, peak_extra_bytes, ratio_ci, spread

from delora_viz.delora import geometry as G
from delora_viz.instruments import dense as D
from delora_viz.instruments import measure as M
from delora_viz.instruments import one_layer as E

METHODS = ("lora", "dora", "delora")


def _factors(m: int, r: int, device, dtype, seed: int = 0):
    """A frozen W and adapter parameters that look trained (nonzero B, magnitudes off W's row norms)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    W = (torch.randn(m, m, generator=gen) / math.sqrt(m)).to(device=device, dtype=dtype)  # (m, n)
    A = (torch.randn(r, m, generator=gen) / math.sqrt(m)).to(device)  # (r, n) float32
    B = (torch.randn(m, r, generator=gen) * 0.02).to(device)  # (m, r)
    lam = torch.tensor([5.0], device=device)
    w_norm = W.float().norm(dim=0)  # (n,)
    mag = W.float().norm(dim=1) * (1 + 0.01 * torch.randn(m, generator=gen).to(device))  # (m,)
    return W, A, B, lam, w_norm, mag


def _paths(method: str, W, A, B, lam, w_norm, mag, scaling: float):
    """(closed, dense, reference) callables returning an UpdateGeometry each; the reference is the
    closed form in float64 (tests/test_geometry.py checks it against the dense form in float64)."""
    f32, f64 = torch.float32, torch.float64
    if method == "lora":
        closed = lambda: E.update_geometry(W, G.lora_update(A, B, scaling))  # noqa: E731
        dense = lambda: D.dense_geometry(W.to(f32), G.lora_update(A, B, scaling).dense())  # noqa: E731
        ref = lambda: E.update_geometry(W.to(f64), G.lora_update(A.to(f64), B.to(f64), scaling))  # noqa: E731
    elif method == "delora":
        closed = lambda: E.update_geometry(W, G.delora_update(A, B, lam, w_norm))  # noqa: E731
        dense = lambda: D.dense_geometry(W.to(f32), G.delora_update(A, B, lam, w_norm).dense())  # noqa: E731
        ref = lambda: E.update_geometry(W.to(f64), G.delora_update(*(t.to(f64) for t in (A, B, lam, w_norm))))  # noqa: E731
    elif method == "dora":
        dora = G.DoraUpdate(A, B, scaling, mag)
        closed = lambda: E.dora_update_stats(W, dora)[0]  # noqa: E731
        dense = lambda: D.dense_geometry(W.to(f32), D.dense_dora_delta(W.to(f32), dora))  # noqa: E731
        ref = lambda: E.dora_update_stats(W.to(f64), G.DoraUpdate(A.to(f64), B.to(f64), scaling, mag.to(f64)))[0]  # noqa: E731
    else:
        raise ValueError(method)
    return closed, dense, ref


def _error(a: M.UpdateGeometry, b: M.UpdateGeometry) -> float:
    """Largest relative difference over ||dW||, ||W|| and the two angles (absolute for angles < 1e-3)."""
    worst = 0.0
    for name in ("delta_fro", "w_fro", "angle_delta_w", "angle_w_prime"):
        x, y = float(getattr(a, name)), float(getattr(b, name))
        worst = max(worst, abs(x - y) / max(abs(y), 1e-3))
    return worst


@torch.no_grad()
def run(sizes, ranks, repeats: int, warmup: int, device: str = "cpu", dtype=torch.float32, methods=METHODS, log=print):
    """One row per (method, size, rank): medians, speed-up, peak extra memory of each path."""
    timer = Timer(device)
    rows = []
    for m in sizes:
        for r in ranks:
            W, A, B, lam, w_norm, mag = _factors(m, r, device, dtype)
            for method in methods:
                closed, dense, ref = _paths(method, W, A, B, lam, w_norm, mag, scaling=2.0)
                exact = ref()
                err_closed, err_dense = _error(closed(), exact), _error(dense(), exact)
                times = interleave({"closed": closed, "dense": dense}, repeats, warmup, timer)
                mem_closed = peak_extra_bytes(closed, device)
                mem_dense = peak_extra_bytes(dense, device)
                row = dict(
                    method=method,
                    size=m,
                    rank=r,
                    repeats=repeats,
                    closed_ms=median(times["closed"]) * 1e3,
                    dense_ms=median(times["dense"]) * 1e3,
                    speedup=paired_ratio(times["dense"], times["closed"]),  # median over rounds of dense_i / closed_i
                    speedup_ci95=ratio_ci(times["dense"], times["closed"]),
                    speedup_of_medians=median(times["dense"]) / median(times["closed"]),
                    closed_spread=spread(times["closed"]),
                    dense_spread=spread(times["dense"]),
                    closed_peak_bytes=mem_closed,
                    dense_peak_bytes=mem_dense,
                    matrix_bytes=m * m * 4,  # one out x in float32 tensor
                    closed_allocates_matrix=mem_closed >= m * m * 4,
                    err_closed=err_closed,
                    err_dense=err_dense,
                )
                rows.append(row)
                log(
                    f"  geometry {method:6s} {m:5d} r={r:<3d} closed "
                    f"{row['closed_ms']:8.2f} ms  dense {row['dense_ms']:8.2f} ms  "
                    f"x{row['speedup']:6.1f}  mem {mem_closed / 2**20:7.2f} vs "
                    f"{mem_dense / 2**20:7.1f} MiB  err {err_closed:.0e} vs {err_dense:.0e}"
                )
            del W, A, B, lam, w_norm, mag
            if torch.device(device).type == "cuda":
                torch.cuda.empty_cache()
    return rows


@torch.no_grad()
def breakdown(
    m: int, r: int, repeats: int, warmup: int, device: str = "cpu", dtype=torch.float32, log=print
) -> list[dict]:
    """Where the time of DeLoRA's closed form and of the dense path goes (the speed-up target case),
    plus what caching ||W||_F^2 (W is frozen) would save. Every part timed interleaved with the others."""
    W, A, B, lam, w_norm, _ = _factors(m, r, device, dtype)
    f32 = torch.float32
    u = G.delora_update(A, B, lam, w_norm)
    dW = u.dense()
    w_sq = M.row_squares(W, f32).sum()

    def cached():  # update_geometry with ||W||_F^2 computed once (W is frozen)
        return E.update_geometry(W, G.delora_update(A, B, lam, w_norm), w_sq)

    def inner():  # <dW, W> = sum(U * (W V)), the engine's one product with W
        return (u.U * M.weight_products([W], u.V.unsqueeze(0))[0]).sum()

    parts = {
        "closed: update_geometry (all)": lambda: E.update_geometry(W, G.delora_update(A, B, lam, w_norm)),
        "closed: W @ V (GEMM, m n k)": lambda: W.to(f32) @ u.V,
        "closed: <dW, W> (weight_products)": inner,
        "closed: ||W||^2 (row_squares, a pass over W)": lambda: M.row_squares(W, f32).sum(),
        "closed: ||dW|| from Grams": lambda: G.fro_norm(u),
        "closed with ||W||^2 cached (proposal)": cached,
        "dense: all (U @ V.T + dense_geometry)": lambda: D.dense_geometry(
            W.to(f32), G.delora_update(A, B, lam, w_norm).dense()
        ),
        "dense: U @ V.T (materialise dW)": lambda: u.dense(),
        "dense: dense_geometry(W, dW)": lambda: D.dense_geometry(W.to(f32), dW),
        "dense: a fresh m x n tensor (alloc + fill)": lambda: torch.empty(m, m, device=device).fill_(1.0),
    }
    times = interleave(parts, repeats, warmup, Timer(device))
    rows = [dict(part=name, size=m, rank=r, ms=median(t) * 1e3) for name, t in times.items()]
    for row in rows:
        log(f"  breakdown {m} r={r}: {row['part']:44s} {row['ms']:8.2f} ms")
    return rows
