"""The update of each method as thin factors, DeLoRA's bounds, and the closed forms that never build the
out x in matrix.

Every adapter changes a frozen weight W into W' = W + dW. For LoRA and DeLoRA dW is low rank, so it is
kept as two thin factors, dW = U @ V.T (`LowRankUpdate`), and its numbers come from them:

    ||dW||_F^2 = sum((U^T U) * (V^T V))      O((m + n) k^2)     (`fro_norm`; exact to ~sqrt(eps) ||U|| ||V||,
                                                                  so delora_update stacks the paper init)
    singular values: of the (at most) k x k core R_U R_V^T of two thin QRs  (`singular_values`)

DoRA rescales whole output rows, so its update is not low rank (`DoraUpdate` holds its parameters). Its
angles to W, its per-row closed form and every other metric are the instruments' (instruments/measure.py,
one formula each; instruments/one_layer.py for one layer); dense float64 references in instruments/dense.py.

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

    a_i is row i of A, b_i column i of B. Dividing by both norms removes the factors' own scale: each
    normalised rank-one term b_i a_i^T / (||b_i|| ||a_i||) has norm 1, so rescaling A or B changes nothing.
    That bounds ||dW||_F, but lambda alone does not set it: lambda (with W's column norms w) sets the scale
    and the ceiling |lambda| max_j w_j (2 |lambda| max_j w_j for the paper init; the ceiling moves when
    lambda learns), while A and B set the direction AND where the norm sits below the ceiling: the r unit
    terms add up to a norm between ~0 and r depending on how aligned they are, so ||dW||_F lies between ~0
    and the ceiling.
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
                                                                    d0 = delora_scales(A0, B0, lambda)

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
    For the paper init the frozen copy's term has fixed directions but the live lambda (d0 above), so its
    exact norm is added: + ||B0 diag(d0) A0 diag(w)||_F.
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


# ----------------------------------------------------------------------------- closed forms
def fro_norm(update: LowRankUpdate) -> Tensor:
    """||U V^T||_F = sqrt(sum((U^T U) * (V^T V))), never forming the m x n product."""
    gram = (update.U.mT @ update.U) * (update.V.mT @ update.V)  # (k, k)
    return gram.sum(dim=(-2, -1)).clamp(min=0).sqrt()


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


# ----------------------------------------------------------------------------- input checks
def _check_factors(A: Tensor | None, B: Tensor | None) -> None:
    if A is None or B is None:
        raise DeloraVizError("both factors A (r, n) and B (m, r) are needed")
    if A.ndim < 2 or B.ndim != A.ndim or A.shape[-2] != B.shape[-1]:
        raise DeloraVizError(
            f"factor shapes do not fit: A {tuple(A.shape)} must be (r, in_features) and B {tuple(B.shape)} "
            f"must be (out_features, r) with the same r"
        )
