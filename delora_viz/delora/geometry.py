"""The geometry of a low-rank weight update, computed without building the out x in matrix.

Every adapter we measure changes a frozen weight W into W' = W + dW. For LoRA and DeLoRA the update
is low rank, so we keep it as two thin factors, dW = U @ V.T, and compute every number from them:

    ||dW||_F^2      = sum((U^T U) * (V^T V))           O((m + n) k^2)
    <dW, W>_F       = sum(U * (W V))                   O(m n k) time, O((m + n) k) memory
    p = <dW, W> / ||W||,  q = sqrt(max(||dW||^2 - p^2, 0))
    angle(dW, W)    = atan2(q, p)                      (stable for tiny angles, unlike arccos)
    angle(W+dW, W)  = atan2(q, ||W|| + p)

Accuracy: ||dW|| from the Gram sums is exact to ~sqrt(eps) ||U|| ||V|| in absolute terms, which only
shows when large terms cancel to a tiny dW (delora_update stacks the paper init to avoid exactly that).
q comes from a subtraction, so when dW is nearly parallel to W it is exact only to about
sqrt(eps) ||dW|| (angles to ~1e-8 rad in fp64, ~3e-4 rad in fp32); elsewhere to full precision.

DoRA rescales whole output rows, so its update is not low rank; it has a per-row closed form instead
(`dora_update_stats`). Dense float64 references of every closed form live apart, in
`delora_viz/instruments/dense.py`: the tests, the bench and the app's Inspect check against them.

Shape legend:
    m  out_features        n  in_features        r  rank        k  columns of U and V (r, or 2r)
    W  (m, n)  frozen weight, nn.Linear layout     A (r, n)     B (m, r)
    U  (m, k)  V (n, k)  so that dW = U @ V.T       w (n,)  column norms ||W[:, j]||
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import DeloraVizError

# PEFT clamps the row norms of A and column norms of B at this value before dividing by them.
NORM_EPS = 1e-4


# ----------------------------------------------------------------------------- update factors
@dataclass(frozen=True)
class LowRankUpdate:
    """dW = U @ V.T, never materialised unless `.dense()` is called."""

    U: Tensor  # (m, k)
    V: Tensor  # (n, k)

    def __post_init__(self):
        if self.U.ndim < 2 or self.U.ndim != self.V.ndim or self.U.shape[-1] != self.V.shape[-1]:
            raise DeloraVizError(
                f"a low-rank update needs U (m, k) and V (n, k) with the same k; got U {tuple(self.U.shape)} "
                f"and V {tuple(self.V.shape)}"
            )

    @property
    def shape(self) -> tuple[int, int]:
        return self.U.shape[-2], self.V.shape[-2]

    def dense(self) -> Tensor:
        return self.U @ self.V.mT  # (m, n)

    def apply(self, x: Tensor) -> Tensor:
        """x @ dW.T for x (..., n) -> (..., m), through the rank-k bottleneck."""
        return (x @ self.V) @ self.U.mT

    def to(self, dtype: torch.dtype) -> LowRankUpdate:
        return LowRankUpdate(self.U.to(dtype), self.V.to(dtype))


def lora_update(A: Tensor, B: Tensor, scaling: float) -> LowRankUpdate:
    """LoRA: dW = s B A, i.e. U = s B (m, r), V = A^T (n, r). Batched: A (L, r, n), B (L, m, r), s (L, 1, 1)."""
    _check_factors(A, B)
    return LowRankUpdate(scaling * B, A.mT)


def delora_scales(A: Tensor, B: Tensor, delora_lambda: Tensor) -> Tensor:
    """d_i = lambda / (r * max(||a_i||, eps) * max(||b_i||, eps)), the DeLoRA inner scaling, shape (r,).

    a_i is row i of A, b_i column i of B. Dividing by both norms removes the factors' own scale, so the
    update's strength comes from lambda alone: the normalisation that bounds ||dW||_F.
    """
    r = A.shape[-2]
    a_norm = A.norm(dim=-1).clamp(min=NORM_EPS)  # (r,)
    b_norm = B.norm(dim=-2).clamp(min=NORM_EPS)  # (r,)
    return delora_lambda / r / (a_norm * b_norm)  # (r,); batched: lambda (L, 1) -> (L, r)


def delora_update(
    A: Tensor,
    B: Tensor,
    delora_lambda: Tensor,
    w_norm: Tensor,
    A0: Tensor | None = None,
    B0: Tensor | None = None,
) -> LowRankUpdate:
    """DeLoRA's update, the one place the formula is written (layer forward, merge and geometry use it).

        dW = B diag(d) A diag(w)  [ - B0 diag(d0) A0 diag(w) ]     d = delora_scales(A, B, lambda)

    i.e. (lambda / r) B Xi A diag(w) with Xi_ii = 1 / (||b_i|| ||a_i||), w the frozen column norms of W.
    The bracketed term is the paper's initialisation (Eq. 5-9): a frozen copy of the initial factors,
    subtracted so that dW = 0 at step 0 while A and B both start random. With P = B diag(d),
    Q = diag(w) A^T (and P0, Q0 likewise) the factors are stacked as

        dW = P Q^T - P0 Q0^T = (P - P0) Q^T + P0 (Q - Q0)^T          (k = 2r)

    rather than [P, -P0] [Q, Q0]^T: near the start both terms are large and nearly equal, and this form
    keeps every Gram product at the scale of dW itself, so ||dW|| is exact even when dW is tiny.

    Batched: every tensor may carry leading layer dimensions (A (L, r, n), lambda (L, 1), w_norm (L, n)).
    """
    _check_factors(A, B)
    if w_norm.shape[-1:] != A.shape[-1:] or w_norm.ndim != A.ndim - 1:
        raise DeloraVizError(
            f"w_norm must have shape ({A.shape[-1]},) (one norm per input column), got {tuple(w_norm.shape)}"
        )
    w = w_norm.unsqueeze(-2)  # (1, n)
    P = B * delora_scales(A, B, delora_lambda).unsqueeze(-2)  # (m, r) = B diag(d)
    Q = (A * w).mT  # (n, r) = diag(w) A^T
    if A0 is None:
        return LowRankUpdate(P, Q)
    _check_factors(A0, B0)
    P0 = B0 * delora_scales(A0, B0, delora_lambda).unsqueeze(-2)  # (m, r)
    Q0 = (A0 * w).mT  # (n, r)
    return LowRankUpdate(torch.cat([P - P0, P0], dim=-1), torch.cat([Q, Q - Q0], dim=-1))  # k = 2r


# ----------------------------------------------------------------------------- bounds
def delora_bound(
    A: Tensor, delora_lambda: Tensor, w_norm: Tensor, A0: Tensor | None = None, B0: Tensor | None = None
) -> Tensor:
    """The tight per-step bound on ||dW||_F for the current directions of A.

        ||dW||_F <= (|lambda| / r) sum_i || a_i / max(||a_i||, eps) * w ||     (triangle inequality over
                                                                                 the r unit-norm rank-1 terms)
    For the paper init the frozen term is fixed, so its exact norm is added: + ||B0 diag(d0) A0 diag(w)||_F.
    Equality holds for r = 1 (and ||b_1|| >= eps).
    """
    r = A.shape[-2]
    a_hat = A / A.norm(dim=-1, keepdim=True).clamp(min=NORM_EPS)  # (r, n)
    bound = delora_lambda.abs().squeeze(-1) / r * (a_hat * w_norm.unsqueeze(-2)).norm(dim=-1).sum(-1)
    if A0 is not None:
        bound = bound + fro_norm(delora_update(A0, B0, delora_lambda, w_norm))
    return bound


def delora_bound_loose(delora_lambda: Tensor, w_norm: Tensor, paper_init: bool = False) -> Tensor:
    """|lambda| max_j ||W[:, j]||, the bound that holds whatever A and B are (twice that for the paper init)."""
    return (2.0 if paper_init else 1.0) * delora_lambda.abs().squeeze(-1) * w_norm.amax(dim=-1)


# ----------------------------------------------------------------------------- closed-form metrics
def fro_norm(update: LowRankUpdate) -> Tensor:
    """||U V^T||_F = sqrt(sum((U^T U) * (V^T V))), never forming the m x n product."""
    gram = (update.U.mT @ update.U) * (update.V.mT @ update.V)  # (k, k)
    return gram.sum(dim=(-2, -1)).clamp(min=0).sqrt()


def row_blocks(W: Tensor, dtype: torch.dtype, max_elements: int = 1 << 22):
    """Yield (rows, W[rows] in dtype) in blocks of at most ~max_elements, so that measuring a bf16
    model in float32 never copies the whole m x n weight (16 MiB of float32 at a time)."""
    step = max(1, max_elements // max(1, W.shape[1]))
    for start in range(0, W.shape[0], step):
        rows = slice(start, start + step)
        yield rows, W[rows].to(dtype)


def inner_with(W: Tensor, update: LowRankUpdate) -> Tensor:
    """<U V^T, W>_F = sum(U * (W V)): thin matmuls over row blocks, O((m + n) k) extra memory."""
    _check_weight(W, update)
    return sum((update.U[rows] * (block @ update.V)).sum() for rows, block in row_blocks(W, update.U.dtype))


def weight_fro_sq(W: Tensor, dtype: torch.dtype) -> Tensor:
    """||W||_F^2 in `dtype`, block by block: row norms, then their squares summed (one float32 vector_norm
    over millions of entries is off by ~1e-4 relative at 4096 x 4096; row norms by ~1e-8, same speed)."""
    return sum(torch.linalg.vector_norm(block, dim=1).square().sum() for _, block in row_blocks(W, dtype))


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


def update_geometry(W: Tensor, update: LowRankUpdate, w_fro_sq: Tensor | None = None) -> UpdateGeometry:
    """All norms and angles of a low-rank update against W, in the dtype of the inputs.

    w_fro_sq: ||W||_F^2 if the caller has it (W is frozen, so a tracker computes it once)."""
    delta_fro = fro_norm(update)
    if w_fro_sq is None:
        w_fro_sq = weight_fro_sq(W, update.U.dtype)
    return geometry_from_inner_products(delta_fro * delta_fro, inner_with(W, update), w_fro_sq)


def singular_values(update: LowRankUpdate) -> Tensor:
    """Singular values of U V^T (descending, at most k) from the k x k core R_U R_V^T of two thin QRs."""
    _, R_u = torch.linalg.qr(update.U, mode="r")  # (min(m, k), k); mode "r": Q is not formed
    _, R_v = torch.linalg.qr(update.V, mode="r")  # (min(n, k), k)
    return torch.linalg.svdvals(R_u @ R_v.mT)  # batched factors give (L, k)


# ----------------------------------------------------------------------------- DoRA, per row
@dataclass(frozen=True)
class DoraUpdate:
    """PEFT's DoRA: W' = diag(g) (W + s B A), g = magnitude / ||(W + s B A)[k, :]|| per output row."""

    A: Tensor  # (r, n)
    B: Tensor  # (m, r)
    scaling: float
    magnitude: Tensor  # (m,)


def dora_update_stats(W: Tensor, dora: DoraUpdate) -> tuple[UpdateGeometry, Tensor, Tensor]:
    """DoRA's geometry from per-row sums, never forming W' (m x n).

    Returns (geometry, row scale g (m,), row norms ||W_k|| (m,)).

        P_k = ||W_k||^2,  Q_k = <B_k, (W A^T)_k>,  T_k = <(B A A^T)_k, B_k>,  c_k^2 = P + 2sQ + s^2 T
        g = m / c;  ||dW||^2 = sum[(g-1)^2 P + 2 s g (g-1) Q + s^2 g^2 T];  <dW, W> = sum[(g-1) P + s g Q]
    """
    A, B, s = dora.A, dora.B, dora.scaling
    _check_factors(A, B)
    if W.shape != (B.shape[0], A.shape[1]) or dora.magnitude.shape != (W.shape[0],):
        raise DeloraVizError(
            f"DoRA shapes do not fit: W {tuple(W.shape)}, A {tuple(A.shape)}, B {tuple(B.shape)}, "
            f"magnitude {tuple(dora.magnitude.shape)}; need W (m, n), A (r, n), B (m, r), magnitude (m,)"
        )
    P, Q = torch.empty_like(B[:, 0]), torch.empty_like(B[:, 0])  # (m,) each
    for rows, block in row_blocks(W, A.dtype):
        P[rows] = torch.linalg.vector_norm(block, dim=1) ** 2  # ||W_k||^2
        Q[rows] = (B[rows] * (block @ A.T)).sum(dim=1)  # <B_k, (W A^T)_k>
    T = ((B @ (A @ A.T)) * B).sum(dim=1)  # (m,)
    c = (P + 2 * s * Q + s * s * T).clamp(min=0).sqrt()  # (m,) row norms of W + sBA
    g = dora.magnitude / c  # (m,)
    delta_sq = ((g - 1) ** 2 * P + 2 * s * g * (g - 1) * Q + s * s * g * g * T).sum()
    inner = ((g - 1) * P + s * g * Q).sum()
    return geometry_from_inner_products(delta_sq, inner, P.sum()), g, P.sqrt()


# ----------------------------------------------------------------------------- input checks
def _check_factors(A: Tensor | None, B: Tensor | None) -> None:
    if A is None or B is None:
        raise DeloraVizError("both factors A (r, n) and B (m, r) are needed")
    if A.ndim < 2 or B.ndim != A.ndim or A.shape[-2] != B.shape[-1]:
        raise DeloraVizError(
            f"factor shapes do not fit: A {tuple(A.shape)} must be (r, in_features) and B {tuple(B.shape)} "
            f"must be (out_features, r) with the same r"
        )


def _check_weight(W: Tensor, update: LowRankUpdate) -> None:
    if W.shape != update.shape:
        raise DeloraVizError(
            f"W has shape {tuple(W.shape)} but the update is {update.shape} (out_features, in_features)"
        )
