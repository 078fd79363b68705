"""Measure many adapted layers at once: raw parameters -> factors -> partial sums -> metrics.

    group = build_group(params, dtype)                 cast the raw parameters FIRST, then build the
                                                       factors and bounds of L same-shaped layers at once
    sums, rows = partial_sums(group, weights, row_sq)  everything that reads W: sums over W's rows
    values = metrics_from_sums(group, sums)            the MEASURED columns, (L, len(MEASURED))

Why three stages. Casting first: building dW or a bound from bf16 parameters and casting after gives
2-3e-3 relative error in ||dW|| and bound ratios above 1 (bench/RESULTS.md section 6, tests/test_bf16.py).
Batching: one op covers every layer of a shape, so a record costs a few dozen ops instead of ~100 per
layer. Sharding: `partial_sums` is the only stage that touches W, and each entry it returns is a sum
over the rows of W (and of U, B, DoRA's magnitudes, which live with those rows):

    gram_left = U^T U (L, k, k), or with a previous record X^T X (L, 2k, 2k), X = [U - U_prev, U_prev]
                (float64, so X's blocks add up to U exactly and U^T U is the sum of X^T X's four blocks)
    inner = sum(U * (W V)) (L,)      w_sq = ||W||^2 (L,)
    DoRA: ||dW||^2, <dW, W>, ||W||^2, ||m - ||W_k|| ||^2, ||D||^2, <dW_prev, D> (L,) each, from per-row terms

so a row-sharded model (FSDP2, Shard(0)) passes its local rows of W with `rows=` (the slice of the full
factors U, B, magnitudes they match), all-reduces `sums` (SUM; `pack` makes it one buffer) and calls
`metrics_from_sums` with the full (gathered, small) factors. DoRA's per-row state kept for turn_deg (g, c, Q, m in
`Group.dora_rows` and `previous`) is that of the local rows. tests/test_track.py checks two shards by hand.

turn_deg, the angle between dW at this record and dW at the previous record of the same layer, uses the
stacked difference dW - dW_prev = (U - U_prev) V^T + U_prev (V - V_prev)^T, whose Gram products stay at the
scale of the difference, so small turns are resolved far below sqrt(eps):
    a = ||D||^2 - (n - n_prev)^2 = 2 n n_prev (1 - cos),  b = (n + n_prev)^2 - ||D||^2 = 2 n n_prev (1 + cos)
    turn = atan2(sqrt(a b), (b - a) / 2).
DoRA (not low rank: its W term scales with g - 1) builds D = dW - dW_prev row by row at the scale of the
difference too (`_dora_turn_sums`, float64 after the one product with W) and takes
    turn = atan2(sqrt(n_prev^2 ||D||^2 - <dW_prev, D>^2), n_prev^2 + <dW_prev, D>),
so its small turns are resolved like LoRA's (tests/test_track.py: 1e-4 to 30 degrees against float64).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from ..delora.geometry import (
    DoraUpdate,
    LowRankUpdate,
    delora_bound,
    delora_bound_loose,
    delora_update,
    lora_update,
)

DEGREES = 180.0 / math.pi


# Norms and angles from three inner products (every method, low rank or DoRA's per-row sums):
#     p = <dW, W> / ||W||,  q = sqrt(max(||dW||^2 - p^2, 0))
#     angle(dW, W) = atan2(q, p)   (stable for tiny angles, unlike arccos),   angle(W + dW, W) = atan2(q, ||W|| + p)
# q comes from a subtraction, so when dW is nearly parallel to W it is exact only to about sqrt(eps) ||dW||
# (angles to ~1e-8 rad in float64, ~3e-4 rad in float32); elsewhere to full precision.
@dataclass(frozen=True)
class UpdateGeometry:
    """Scalars describing one update dW of one weight W (0-d tensors; angles in radians)."""

    delta_fro: Tensor  # ||dW||_F
    w_fro: Tensor  # ||W||_F
    rel_delta: Tensor  # ||dW||_F / ||W||_F
    angle_delta_w: Tensor  # angle(dW, W); NaN when dW = 0 (no direction yet)
    angle_w_prime: Tensor  # angle(W + dW, W)


def geometry_from_inner_products(delta_sq: Tensor, inner: Tensor, w_sq: Tensor) -> UpdateGeometry:
    """Norms and angles from ||dW||^2, <dW, W> and ||W||^2 (shared by the low-rank and DoRA forms)."""
    w_fro = w_sq.clamp(min=0).sqrt()
    delta_fro = delta_sq.clamp(min=0).sqrt()
    p = inner / w_fro  # component of dW along W
    q = (delta_sq - p * p).clamp(min=0).sqrt()  # component orthogonal to W
    angle_delta_w = torch.where(delta_fro > 0, torch.atan2(q, p), torch.full_like(p, float("nan")))
    return UpdateGeometry(delta_fro, w_fro, delta_fro / w_fro, angle_delta_w, torch.atan2(q, w_fro + p))


def row_blocks(W: Tensor, dtype: torch.dtype, max_elements: int = 1 << 22):
    """Yield (rows, W[rows] in dtype) in blocks of at most ~max_elements, so that measuring a bf16
    model in float32 never copies the whole m x n weight (16 MiB of float32 at a time)."""
    step = max(1, max_elements // max(1, W.shape[1]))
    for start in range(0, W.shape[0], step):
        rows = slice(start, start + step)
        yield rows, W[rows].to(dtype)


@dataclass(frozen=True)
class RawParams:
    """One adapted layer's parameters exactly as stored (any dtype), read afresh at each record."""

    family: str  # names.FAMILY of the layer's method: "lora" (LoRA, rsLoRA), "dora" or "delora" (both inits)
    A: Tensor  # (r, n)
    B: Tensor  # (m, r)
    scaling: float = 1.0  # s of LoRA / DoRA
    delora_lambda: Tensor | None = None  # (1,)
    w_norm: Tensor | None = None  # (n,) frozen column norms of W
    A0: Tensor | None = None  # (r, n) paper init's frozen copy
    B0: Tensor | None = None  # (m, r)
    magnitude: Tensor | None = None  # (m,) DoRA

    def key(self) -> tuple:
        """Layers with equal keys are measured in one batch."""
        return (self.family, tuple(self.A.shape), tuple(self.B.shape), self.A0 is not None, self.A.device)

    def cast(self, dtype: torch.dtype) -> RawParams:
        """Every tensor detached and cast to dtype: the first thing done, before any arithmetic."""
        tensors = ("A", "B", "delora_lambda", "w_norm", "A0", "B0", "magnitude")
        return replace(
            self, **{k: getattr(self, k).detach().to(dtype) for k in tensors if getattr(self, k) is not None}
        )

    def update(self) -> LowRankUpdate | DoraUpdate:
        """The update in the parameters' own dtype (cast() first to measure)."""
        if self.family == "dora":
            return DoraUpdate(self.A, self.B, self.scaling, self.magnitude)
        if self.family == "lora":
            return lora_update(self.A, self.B, self.scaling)
        return delora_update(self.A, self.B, self.delora_lambda, self.w_norm, self.A0, self.B0)


@dataclass
class DoraRows:
    """DoRA's per-row terms of this record (the rows of W held here), kept for the next record's turn_deg."""

    g: Tensor  # (L, m') row scale m / c, float64
    c: Tensor  # (L, m') row norms ||(W + sBA)_k||
    Q: Tensor  # (L, m') <B_k, (W A^T)_k>
    magnitude: Tensor  # (L, m')


@dataclass
class Group:
    """L same-shaped layers of one family, stacked and cast: the factors, scales and bounds of a record."""

    family: str
    update: LowRankUpdate | None = None  # U (L, m, k), V (L, n, k) for "lora" and "delora"
    dora: DoraUpdate | None = None  # A (L, r, n), B (L, m, r), scaling (L, 1), magnitude (L, m)
    delora_lambda: Tensor | None = None  # (L,)
    bound: Tensor | None = None  # (L,)
    bound_loose: Tensor | None = None  # (L,)
    previous: dict | None = None  # what the last record kept for turn_deg (see `keep`)
    magnitude_eps: float = 0.0  # DoRA: eps of the magnitudes' stored dtype (their rounding, see metrics_from_sums)
    # set while measuring, read by `keep` for the next record:
    dora_rows: DoraRows | None = None  # DoRA's per-row terms (partial_sums)
    delta_fro: Tensor | None = None  # (L,) float64 ||dW|| (metrics_from_sums)


@torch.no_grad()
def build_group(params: list[RawParams], dtype: torch.dtype, previous: dict | None = None) -> Group:
    """Stack and cast the raw parameters (cast before any arithmetic), then build factors and bounds."""
    first, L = params[0], len(params)

    def stack(name: str) -> Tensor:
        return torch.stack([getattr(p, name) for p in params]).to(dtype)  # stacking is exact

    A, B = stack("A"), stack("B")  # (L, r, n), (L, m, r)
    if first.family in ("lora", "dora"):
        s = torch.tensor([float(p.scaling) for p in params], dtype=dtype, device=A.device)  # (L,)
        if first.family == "dora":
            mag = stack("magnitude")
            eps = torch.finfo(first.magnitude.dtype).eps
            return Group("dora", dora=DoraUpdate(A, B, s[:, None], mag), previous=previous, magnitude_eps=eps)
        return Group("lora", update=lora_update(A, B, s[:, None, None]), previous=previous)
    lam, w = stack("delora_lambda").reshape(L, 1), stack("w_norm")  # (L, 1), (L, n)
    A0, B0 = (stack("A0"), stack("B0")) if first.A0 is not None else (None, None)
    return Group(
        "delora",
        update=delora_update(A, B, lam, w, A0, B0),
        delora_lambda=lam[:, 0],
        bound=delora_bound(A, lam, w, A0, B0),
        bound_loose=delora_bound_loose(lam, w, paper_init=A0 is not None),
        previous=previous,
    )


# ----------------------------------------------------------------------------- partial sums (reads W)
# Two thresholds on the size of W, measured on CPU (the timings: bench/RESULTS.md, "Thresholds of the engine"):
# below SMALL_GEMM_WEIGHTS, W @ X runs as (X^T W^T)^T, because MKL's sgemm on a thin (n, k) right factor takes a
# slow path at these sizes; from THREADED_GEMM_WEIGHTS on, W @ X gets the caller's threads (below, waking a
# second thread costs more than it saves).
SMALL_GEMM_WEIGHTS = 1 << 19
DORA_ROUNDING = 4  # DoRA updates under DORA_ROUNDING * eps(m) * ||W|| are the magnitudes' rounding
THREADED_GEMM_WEIGHTS = 1 << 20


@contextmanager
def num_threads(n: int | None):
    """torch.set_num_threads(n) inside the block (nothing when n is None or already the count)."""
    previous = torch.get_num_threads()
    if n is None or n == previous:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def weight_products(weights: list[Tensor], X: Tensor, threads: int | None = None) -> Tensor:
    """Y[l] = W_l @ X[l] for each layer, W cast block by block to X's dtype: (L, m, k). Never stacks the Ws.

    threads: CPU threads for the products of large W (the caller may run everything else on one)."""
    L, (m, n), k = len(weights), weights[0].shape, X.shape[-1]
    if m * n <= SMALL_GEMM_WEIGHTS:
        Yt = X.new_empty(L, k, m)
        for x, W, y in zip(X.mT.contiguous().unbind(0), weights, Yt.unbind(0)):  # x (k, n), y (k, m)
            torch.matmul(x, W.mT if W.dtype == X.dtype else W.mT.to(X.dtype), out=y)  # small W: a cast copy is cheap
        return Yt.mT
    Y = X.new_empty(L, m, k)
    with num_threads(threads if m * n >= THREADED_GEMM_WEIGHTS else None):
        for i, W in enumerate(weights):
            if W.dtype == X.dtype:
                torch.matmul(W, X[i], out=Y[i])  # the one unavoidable GEMM of each layer
            else:
                for rows, block in row_blocks(W, X.dtype):
                    Y[i, rows] = block @ X[i]
    return Y


def row_squares(W: Tensor, dtype: torch.dtype) -> Tensor:
    """||W[k, :]||^2 per row (m,), in dtype, block by block (W is frozen: callers cache it)."""
    return torch.cat([torch.linalg.vector_norm(block, dim=1).square() for _, block in row_blocks(W, dtype)])


@torch.no_grad()
def partial_sums(
    group: Group, weights: list[Tensor], row_sq: Tensor, rows=slice(None), gemm_threads: int | None = None
) -> dict[str, Tensor]:
    """Sums over the rows of W held here: weights[l] = W_l[rows], row_sq (L, rows) = their squared norms.
    gemm_threads: CPU threads for the W @ V products of large layers (weight_products)."""
    if group.family == "dora":
        return _dora_sums(group, weights, row_sq, rows, gemm_threads)
    U, V = group.update.U[:, rows], group.update.V  # (L, m', k), (L, n, k)
    left = U
    if group.previous is not None:  # X = [U - U_prev, U_prev] in float64: the difference is exact
        U1 = group.previous["U"][:, rows]  # float64 (keep)
        left = torch.cat([U.to(torch.float64) - U1, U1], dim=-1)  # (L, m', 2k)
    return {
        "inner": (U * weight_products(weights, V, gemm_threads)).sum(dim=(-2, -1)),  # <dW, W>
        "w_sq": row_sq.sum(-1),
        "gram_left": _gram(left),  # (L, k, k), or (L, 2k, 2k) with a previous record
    }


def _gram(X: Tensor) -> Tensor:
    """X^T X in float64 (O((m + n) k^2), small): the paper init's stacked factors hold blocks far larger
    than dW, and their products cancel in sum(G_U * G_V); float32 Grams leave ~3e-5 relative error there."""
    X = X.to(torch.float64)
    return X.mT @ X


def _dora_sums(group: Group, weights, row_sq, rows, gemm_threads) -> dict[str, Tensor]:
    """DoRA per row k: P = ||W_k||^2, Q = <B_k, (W A^T)_k>, T = ||(B A)_k||^2, c^2 = P + 2sQ + s^2 T, g = m / c,
    dW_k = (g - 1) W_k + s g (B A)_k. Everything after the product with W is float64 (cheap: O(m r^2 + n r^2)),
    so g - 1 and the turn's differences are not lost to float32 rounding."""
    f64, d, previous = torch.float64, group.dora, group.previous
    r = d.A.shape[-2]
    right = d.A.mT  # (L, n, r)
    if previous is not None:  # one GEMM gives W A^T and W (A - A_prev)^T, the latter at the difference's scale
        right = torch.cat([right, (d.A.to(f64) - previous["A"]).to(d.A.dtype).mT], dim=-1)  # (L, n, 2r)
    WY = weight_products(weights, right.contiguous(), gemm_threads).to(f64)  # (L, m', r or 2r)
    A, B, s = d.A.to(f64), d.B[:, rows].to(f64), d.scaling.to(f64)  # (L, r, n), (L, m', r), (L, 1)
    mag, P = d.magnitude[:, rows].to(f64), row_sq.to(f64)  # (L, m')
    WA = WY[..., :r]
    Q = (B * WA).sum(-1)  # (L, m')
    T = ((B @ (A @ A.mT)) * B).sum(-1)  # (L, m')
    c = (P + 2 * s * Q + s * s * T).clamp(min=0).sqrt()
    g = mag / c
    group.dora_rows = DoraRows(g, c, Q, mag)  # this record's rows, for the next turn
    sums = {
        "delta_sq": ((g - 1) ** 2 * P + 2 * s * g * (g - 1) * Q + s * s * g * g * T).sum(-1),
        "inner": ((g - 1) * P + s * g * Q).sum(-1),
        "w_sq": P.sum(-1),
        "drift_sq": (mag - P.sqrt()).square().sum(-1),  # magnitudes against W's own row norms (their init)
    }
    if previous is not None:
        sums.update(_dora_turn_sums(previous, rows, A, B, s, P, WY, Q, c, g, mag))
    return sums


def _dora_turn_sums(previous, rows, A, B, s, P, WY, Q, c, g, mag) -> dict[str, Tensor]:
    """||D||^2 and <dW_prev, D> for D = dW - dW_prev built at the scale of the difference (W frozen between
    records), so a turn of 1e-4 degrees is resolved like LoRA's (forming <dW_prev, dW> first loses it):

        D_k = dg_k W_k + s L_k,   L = g B A - g1 B1 A1 = X [A; A - A1],   X = [g (B - B1) + dg B1, g1 B1]
        dg = g - g1 = (m - m1) / c - g1 (c - c1) / c,   c - c1 = (c^2 - c1^2) / (c + c1)
        c^2 - c1^2 = 2 s (Q - Q1) + s^2 (T - T1),   T - T1 = <(B A - B1 A1)_k, (B A + B1 A1)_k>

    Shapes: A (L, r, n), B (L, m', r), per-row terms (L, m'), WY = [W A^T, W (A - A1)^T] (L, m', 2r); float64."""
    A1, B1 = previous["A"], previous["B"][:, rows]
    g1, c1, Q1, mag1 = previous["g"], previous["c"], previous["Q"], previous["magnitude"]
    dA, dB = A - A1, B - B1  # exact: float32 values held in float64
    Y = torch.cat([A, dA], dim=-2)  # (L, 2r, n): L = X Y
    dQ = (dB * WY[..., : A.shape[-2]]).sum(-1) + (B1 * WY[..., A.shape[-2] :]).sum(-1)  # Q - Q1
    sum_left = torch.cat([B, B1], dim=-1)  # [B, B1] [A; A1] = B A + B1 A1
    diff_left = torch.cat([dB, B1], dim=-1)  # [B - B1, B1] [A; A - A1] = B A - B1 A1
    dT = ((diff_left @ (Y @ torch.cat([A, A1], dim=-2).mT)) * sum_left).sum(-1)  # T - T1
    dc = (2 * s * dQ + s * s * dT) / (c + c1)
    dg = (mag - mag1) / c - g1 * dc / c
    X = torch.cat([g.unsqueeze(-1) * dB + dg.unsqueeze(-1) * B1, g1.unsqueeze(-1) * B1], dim=-1)  # (L, m', 2r)
    inner_WL = (X * WY).sum(-1)  # <W_k, L_k>
    L_sq = ((X @ (Y @ Y.mT)) * X).sum(-1)  # ||L_k||^2
    prev_L = ((B1 @ (A1 @ Y.mT)) * X).sum(-1)  # <(B1 A1)_k, L_k>
    return {
        "turn_diff_sq": (dg * dg * P + 2 * s * dg * inner_WL + s * s * L_sq).sum(-1),  # ||D||^2
        # <dW_prev, D>, dW_prev_k = (g1 - 1) W_k + s g1 (B1 A1)_k, <(B1 A1)_k, W_k> = Q1
        "turn_inner": ((g1 - 1) * (dg * P + s * inner_WL) + s * g1 * (dg * Q1 + s * prev_L)).sum(-1),
    }


def pack(sums: dict[str, Tensor]) -> Tensor:
    """All sums of a group as one (L, S) buffer (one all_reduce; float64 when the Grams are); `unpack` inverts it."""
    return torch.cat([v.reshape(v.shape[0], -1) for v in sums.values()], dim=1)


def unpack(flat: Tensor, like: dict[str, Tensor]) -> dict[str, Tensor]:
    out, start = {}, 0
    for name, v in like.items():
        size = v[0].numel()
        out[name] = flat[:, start : start + size].reshape(v.shape).to(v.dtype)
        start += size
    return out


# ----------------------------------------------------------- metrics from the sums (sets group.delta_fro for keep)
@torch.no_grad()
def metrics_from_sums(group: Group, sums: dict[str, Tensor]) -> Tensor:
    """The MEASURED columns of each layer from the (reduced) sums and the full factors: (L, len(MEASURED))."""
    geo, sigma, drift, turn = measure_group(group, sums)
    nan = torch.full_like(geo.delta_fro, float("nan"))
    if group.family == "delora":
        lam, bound, loose, ratio = group.delora_lambda, group.bound, group.bound_loose, geo.delta_fro / group.bound
    else:
        lam = bound = loose = ratio = nan
    columns = (
        geo.delta_fro,
        geo.w_fro,
        geo.rel_delta,
        geo.angle_delta_w * DEGREES,
        geo.angle_w_prime * DEGREES,
        bound,
        loose,
        ratio,
        lam,
        sigma,
        drift,
        turn,
    )
    return torch.stack(columns, dim=1)


def measure_group(group: Group, sums: dict[str, Tensor]) -> tuple[UpdateGeometry, Tensor, Tensor, Tensor]:
    """(geometry, sigma_max, dora_mag_drift, turn_deg) of each layer, (L,) each, in the group's dtype; NaN
    where a column does not apply. Sets group.delta_fro (float64) for `keep`."""
    nan = torch.full_like(sums["w_sq"], float("nan"))
    if group.family == "dora":
        dtype = group.dora.A.dtype
        geo = geometry_from_inner_products(sums["delta_sq"], sums["inner"], sums["w_sq"])  # float64
        drift = (sums["drift_sq"].sqrt() / sums["w_sq"].sqrt()).to(dtype)
        sigma = nan.to(dtype)
        # The magnitudes m are stored rounded (m = ||W_k|| at init, to their dtype's eps), so g - 1 is never
        # exactly 0 and a DoRA update below ~eps ||W|| is that rounding (measured at init: 1.2e-8 ||W|| in
        # float32, at a random angle to W): it has no direction yet, like a zero LoRA update.
        directed = geo.delta_fro > DORA_ROUNDING * group.magnitude_eps * geo.w_fro
        geo = replace(geo, angle_delta_w=torch.where(directed, geo.angle_delta_w, nan.to(geo.angle_delta_w)))
        group.delta_fro = torch.where(directed, geo.delta_fro, 0.0)  # float64; 0: no turn from this record
        turn = torch.where(directed, _turn_from_difference_and_inner(sums, group.previous), nan.to(geo.w_fro))
        turn = turn.to(dtype)
        geo = replace(geo, **{f.name: getattr(geo, f.name).to(dtype) for f in fields(geo)})
    else:
        V, gram_left = group.update.V, sums["gram_left"]
        k = V.shape[-1]
        if group.previous is None:
            gram_u, gram_right = gram_left, _gram(V)
        else:  # Y = [V, V - V_prev]; U = X's two blocks summed, so U^T U = the sum of X^T X's four blocks
            V64 = V.to(torch.float64)
            gram_right = _gram(torch.cat([V64, V64 - group.previous["V"]], dim=-1))  # (L, 2k, 2k)
            row_blocks_summed = gram_left[..., :k, :] + gram_left[..., k:, :]  # (L, k, 2k)
            gram_u = row_blocks_summed[..., :k] + row_blocks_summed[..., k:]
        gram_v = gram_right[..., :k, :k]  # U^T U, V^T V (L, k, k), float64
        delta_sq = (gram_u * gram_v).sum(dim=(-2, -1))  # float64
        geo = geometry_from_inner_products(delta_sq.to(V.dtype), sums["inner"], sums["w_sq"])
        drift = nan
        sigma = _largest_singular_value(gram_u, gram_v).to(V.dtype)
        group.delta_fro = delta_sq.clamp(min=0).sqrt()  # float64, for this turn and the next
        turn = _turn_from_difference(gram_left, gram_right, group.delta_fro, group.previous).to(V.dtype)
    return geo, sigma, drift, turn


def keep(group: Group) -> dict:
    """What the next record needs for turn_deg: the factors (small) and ||dW|| (float64) of this one."""
    if group.family == "dora":  # float64 A, B: the next record's differences A - A_prev, B - B_prev are exact
        f64, rows = torch.float64, group.dora_rows
        return {"A": group.dora.A.to(f64), "B": group.dora.B.to(f64), **vars(rows), "delta_fro": group.delta_fro}
    f64 = torch.float64  # the next record's differences U - U_prev, V - V_prev are exact in float64
    return {"U": group.update.U.to(f64), "V": group.update.V.to(f64), "delta_fro": group.delta_fro}


def _largest_singular_value(gram_u: Tensor, gram_v: Tensor) -> Tensor:
    """sigma_max(U V^T) = sqrt(lambda_max(U^T U V^T V)): the nonzero eigenvalues of (U V^T)^T (U V^T) =
    V (U^T U) V^T are those of (U^T U)(V^T V), a k x k product of two PSD Grams (real, >= 0). One batched
    eigenvalue call on the float64 Grams the norms already need; no QR of the m x k and n x k factors."""
    return torch.linalg.eigvals(gram_u @ gram_v).real.amax(dim=-1).clamp(min=0).sqrt()


def _turn_from_difference(gram_x: Tensor, gram_y: Tensor, n: Tensor, previous: dict | None) -> Tensor:
    """gram_x = X^T X, X = [U - U1, U1]; gram_y = Y^T Y, Y = [V, V - V1]: D = X Y^T = dW - dW_prev."""
    if previous is None:
        return torch.full_like(n, float("nan"))
    d_sq = (gram_x * gram_y).sum(dim=(-2, -1)).clamp(min=0).to(n.dtype)  # ||dW - dW_prev||^2
    n1 = previous["delta_fro"]
    a = (d_sq - (n - n1).square()).clamp(min=0)  # 2 n n1 (1 - cos)
    b = ((n + n1).square() - d_sq).clamp(min=0)  # 2 n n1 (1 + cos)
    turn = torch.atan2((a * b).sqrt(), (b - a) / 2) * DEGREES
    return torch.where((n > 0) & (n1 > 0), turn, torch.full_like(turn, float("nan")))


def _turn_from_difference_and_inner(sums: dict[str, Tensor], previous: dict | None) -> Tensor:
    """The angle between dW_prev and dW = dW_prev + D from ||D||^2 and <dW_prev, D> (float64):
    ||dW_prev|| ||dW|| sin = sqrt(n1^2 ||D||^2 - <dW_prev, D>^2) (the Gram determinant of (dW_prev, dW) equals
    that of (dW_prev, D)), ||dW_prev|| ||dW|| cos = n1^2 + <dW_prev, D>: both at the scale of D."""
    if previous is None:
        return torch.full_like(sums["w_sq"], float("nan"))
    n1_sq, d_sq, ip = previous["delta_fro"].square(), sums["turn_diff_sq"], sums["turn_inner"]
    turn = torch.atan2((n1_sq * d_sq - ip.square()).clamp(min=0).sqrt(), n1_sq + ip) * DEGREES
    n_sq = n1_sq + 2 * ip + d_sq  # ||dW_prev + D||^2
    return torch.where((n1_sq > 0) & (n_sq > 0), turn, torch.full_like(turn, float("nan")))
