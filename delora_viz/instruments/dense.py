"""Dense references: every closed form of `delora/geometry.py` and `instruments/measure.py` computed the
slow, obvious way, from the full m x n matrices. The tests, the bench, the GPU check and the app's Inspect
use these (call them in float64 for a reference; they compute in the dtype they are given).

Shape legend as in geometry.py: W (m, n), A (r, n), B (m, r), w (n,) the column norms of W.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..delora.geometry import NORM_EPS, DoraUpdate
from .measure import UpdateGeometry


def dense_geometry(W: Tensor, dW: Tensor) -> UpdateGeometry:
    """Reference: the same numbers from the full matrices. The orthogonal part is projected out
    explicitly (dW - (<dW,W>/||W||^2) W), an independent route to q that avoids the closed form's
    subtraction."""
    w_fro = _fro(W)
    delta_fro = _fro(dW)
    p = (dW * W).sum() / w_fro
    q = _fro(dW - (p / w_fro) * W)
    angle = torch.atan2(q, p) if delta_fro > 0 else torch.tensor(float("nan"), dtype=W.dtype)
    return UpdateGeometry(delta_fro, w_fro, delta_fro / w_fro, angle, torch.atan2(q, w_fro + p))


def _fro(X: Tensor) -> Tensor:
    """||X||_F from row norms (float32 matrix_norm is off by 8e-4 relative at 4096 x 4096, 6e-3 at 8192)."""
    return torch.linalg.vector_norm(X, dim=1).square().sum().sqrt()


def dense_delora_delta(A, B, delora_lambda, w_norm, A0=None, B0=None) -> Tensor:
    """Reference: B @ diag(lambda/r/(||a_i|| ||b_i||)) @ A @ diag(w), as explicit m x n matrices."""

    def term(A, B):
        r = A.shape[0]
        xi = torch.diag(1.0 / (A.norm(dim=1).clamp(min=NORM_EPS) * B.norm(dim=0).clamp(min=NORM_EPS)))
        return (delora_lambda / r) * (B @ xi @ A) @ torch.diag(w_norm)

    return term(A, B) if A0 is None else term(A, B) - term(A0, B0)


def dense_dora_delta(W: Tensor, dora: DoraUpdate) -> Tensor:
    """Reference: diag(m / ||W + sBA||_rows) (W + sBA) - W."""
    adapted = W + dora.scaling * dora.B @ dora.A
    return (dora.magnitude / adapted.norm(dim=1)).unsqueeze(1) * adapted - W


def dense_singular_values(dW: Tensor) -> Tensor:
    return torch.linalg.svdvals(dW)
