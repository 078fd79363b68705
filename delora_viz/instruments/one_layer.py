"""The metrics engine (measure.py) called on one layer: what the sliders, notebook 02 and a user's own
script use. Each formula is written once, in measure.py; these wrap one update as a batch of one.

    geo = update_geometry(W, delora_update(A, B, lam, w))          # LoRA, rsLoRA, DeLoRA: dW = U V^T
    geo, g, row_norms = dora_update_stats(W, DoraUpdate(A, B, s, m))  # DoRA, per output row

The results come in the update's dtype; the engine forms its Grams and DoRA's per-row terms in float64.
Shapes as in delora/geometry.py: W (m, n), U (m, k), V (n, k), A (r, n), B (m, r), magnitude (m,).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..delora.geometry import DoraUpdate, LowRankUpdate, _check_factors
from ..errors import DeloraVizError
from .measure import Group, UpdateGeometry, measure_group, partial_sums, row_squares


@torch.no_grad()
def update_geometry(W: Tensor, update: LowRankUpdate, w_fro_sq: Tensor | None = None) -> UpdateGeometry:
    """Norms and angles (radians) of a low-rank update dW = U V^T against W, in the update's dtype.

    w_fro_sq: ||W||_F^2 if the caller has it (W is frozen, so a slider computes it once)."""
    if W.shape != update.shape:
        raise DeloraVizError(
            f"W has shape {tuple(W.shape)} but the update is {update.shape} (out_features, in_features)"
        )
    dtype = update.U.dtype
    group = Group("lora", update=LowRankUpdate(update.U.unsqueeze(0), update.V.unsqueeze(0)))  # L = 1
    # ||W||^2 from its row norms, unless given (a low-rank record reads nothing else from them)
    row_sq = row_squares(W, dtype) if w_fro_sq is None else W.new_zeros(W.shape[0], dtype=dtype)
    sums = partial_sums(group, [W], row_sq.unsqueeze(0))
    if w_fro_sq is not None:
        sums["w_sq"] = torch.as_tensor(w_fro_sq, dtype=dtype, device=row_sq.device).reshape(1)
    geo, *_ = measure_group(group, sums)
    return _first(geo)


@torch.no_grad()
def dora_update_stats(W: Tensor, dora: DoraUpdate) -> tuple[UpdateGeometry, Tensor, Tensor]:
    """DoRA's geometry from per-row sums, never forming W' (m x n): (geometry, row scale g (m,), ||W_k|| (m,)).

    P_k = ||W_k||^2,  Q_k = <B_k, (W A^T)_k>,  T_k = <(B A A^T)_k, B_k>,  c_k^2 = P + 2sQ + s^2 T,  g = m / c
    ||dW||^2 = sum[(g-1)^2 P + 2 s g (g-1) Q + s^2 g^2 T];  <dW, W> = sum[(g-1) P + s g Q]   (measure.py)
    """
    A, B = dora.A, dora.B
    _check_factors(A, B)
    if W.shape != (B.shape[0], A.shape[1]) or dora.magnitude.shape != (W.shape[0],):
        raise DeloraVizError(
            f"DoRA shapes do not fit: W {tuple(W.shape)}, A {tuple(A.shape)}, B {tuple(B.shape)}, "
            f"magnitude {tuple(dora.magnitude.shape)}; need W (m, n), A (r, n), B (m, r), magnitude (m,)"
        )
    dtype = A.dtype
    s = torch.as_tensor(dora.scaling, dtype=dtype, device=A.device).reshape(1, 1)
    group = Group("dora", dora=DoraUpdate(A.unsqueeze(0), B.unsqueeze(0), s, dora.magnitude.to(dtype).unsqueeze(0)))
    row_sq = row_squares(W, dtype).unsqueeze(0)  # (1, m)
    geo, *_ = measure_group(group, partial_sums(group, [W], row_sq))
    return _first(geo), group.dora_rows.g[0].to(dtype), row_sq[0].sqrt()


def _first(geo: UpdateGeometry) -> UpdateGeometry:
    """The one layer of a batch of one: 0-d tensors."""
    return UpdateGeometry(*(value[0] for value in vars(geo).values()))
