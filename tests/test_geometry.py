"""Closed forms against dense matrices, and the DeLoRA bounds."""

import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from delora_viz.delora import geometry as g
from delora_viz.instruments import dense as D
from delora_viz.instruments import one_layer as E
from delora_viz.instruments.measure import UpdateGeometry


def _rand(*shape, dtype=torch.float64, scale=1.0):
    return torch.randn(*shape, dtype=dtype) * scale


def reference(W, dW) -> UpdateGeometry:
    """Dense float64 reference that shares nothing with the closed form: norms of the full matrices and
    angles as arccos of float64 inner products, cos(X, Y) = <X, Y> / (||X|| ||Y||). arccos is exact to
    ~1e-8 rad in float64 (sqrt(eps) near 0 and pi), far below what the tests compare."""
    W, dW = W.double(), dW.double()

    def angle(X, Y):
        cos = (X * Y).sum() / (torch.linalg.norm(X) * torch.linalg.norm(Y))
        return torch.arccos(cos.clamp(-1, 1))

    delta_fro, w_fro = torch.linalg.norm(dW), torch.linalg.norm(W)
    angle_delta_w = angle(dW, W) if delta_fro > 0 else torch.tensor(float("nan"), dtype=W.dtype)
    return UpdateGeometry(delta_fro, w_fro, delta_fro / w_fro, angle_delta_w, angle(W + dW, W))


def _assert_geometry_close(closed, dense, rtol, angle_atol=1e-6, norm_atol=0.0):
    """Norms to rtol. Angles also to angle_atol radians: the closed form gets the part of dW orthogonal
    to W by a subtraction, so when dW is (nearly) parallel to W it is exact only to ~sqrt(eps) ||dW||."""
    for field in ("delta_fro", "w_fro", "rel_delta"):  # atol: the dense reference rounds too, at ~eps ||W||
        torch.testing.assert_close(
            getattr(closed, field), getattr(dense, field), rtol=rtol, atol=norm_atol + 1e-13 * (1 + dense.w_fro.item())
        )
    zero = norm_atol + 1e-13 * (1 + dense.w_fro.item())  # a norm this small is zero to within rounding
    w, d = dense.w_fro.item(), dense.delta_fro.item()
    cos = math.cos(dense.angle_delta_w.item()) if d > zero else 0.0
    w_prime = math.sqrt(max(w * w + d * d + 2 * w * d * cos, 0.0))  # ||W + dW||
    if w_prime > zero:  # W + dW = 0 (dW = -W, hypothesis finds it in 1 x 1 layers) has no direction to compare
        torch.testing.assert_close(closed.angle_w_prime, dense.angle_w_prime, rtol=rtol, atol=angle_atol)
    if d > zero:  # dW = 0 likewise
        torch.testing.assert_close(closed.angle_delta_w, dense.angle_delta_w, rtol=rtol, atol=angle_atol)


def _delora_case(m, n, r, paper, dtype, lam=3.0):
    W = _rand(m, n, dtype=dtype)
    A, B = _rand(r, n, dtype=dtype), _rand(m, r, dtype=dtype)
    A0, B0 = (_rand(r, n, dtype=dtype), _rand(m, r, dtype=dtype)) if paper else (None, None)
    lam = torch.tensor([lam], dtype=dtype)
    return W, A, B, lam, W.norm(dim=0), A0, B0


shapes = st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(1, 8))


@settings(max_examples=60, deadline=None)
@given(shapes, st.sampled_from(["lora", "rslora", "delora", "delora-paper"]), st.integers(0, 2**31 - 1))
@example((1, 1, 3), "delora", 2)  # dW = -W exactly: W + dW = 0 has no angle (found by hypothesis in CI)
def test_low_rank_closed_forms_match_dense_fp64(shape, method, seed):
    torch.manual_seed(seed)
    m, n, r = shape
    W, A, B, lam, w, A0, B0 = _delora_case(m, n, r, method == "delora-paper", torch.float64)
    if method in ("lora", "rslora"):
        s = 16 / math.sqrt(r) if method == "rslora" else 16 / r  # alpha / sqrt(r) (rsLoRA), alpha / r (LoRA)
        update = g.lora_update(A, B, s)
        dense = s * B @ A
    else:
        update = g.delora_update(A, B, lam, w, A0, B0)
        dense = D.dense_delora_delta(A, B, lam, w, A0, B0)
    torch.testing.assert_close(update.dense(), dense, rtol=1e-10, atol=1e-12)
    # A Gram-based norm is exact to ~sqrt(eps) ||U|| ||V|| in absolute terms: it only shows when large
    # terms cancel to a tiny dW (which hypothesis finds in 1 x 1 layers with flipped signs).
    norm_atol = 1e-7 * (update.U.norm() * update.V.norm()).item()
    _assert_geometry_close(E.update_geometry(W, update), reference(W, dense), rtol=1e-10, norm_atol=norm_atol)
    sv = g.singular_values(update)
    dense_sv = D.dense_singular_values(dense)[: sv.numel()]
    torch.testing.assert_close(sv, dense_sv, rtol=1e-8, atol=1e-10 * max(1.0, dense_sv.max().item()))


@pytest.mark.parametrize("m,n,r", [(64, 48, 4), (17, 129, 8), (256, 256, 16)])
def test_closed_forms_fp32(m, n, r):
    W, A, B, lam, w, _, _ = _delora_case(m, n, r, False, torch.float32)
    update = g.delora_update(A, B, lam, w)
    closed = E.update_geometry(W, update)
    dense = reference(W.double(), D.dense_delora_delta(*(t.double() for t in (A, B, lam, w))))
    for field in ("delta_fro", "w_fro", "rel_delta", "angle_delta_w", "angle_w_prime"):
        torch.testing.assert_close(getattr(closed, field).double(), getattr(dense, field), rtol=1e-4, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(shapes, st.integers(0, 2**31 - 1), st.floats(0.1, 10))
def test_dora_per_row_form_matches_dense(shape, seed, mag_scale):
    torch.manual_seed(seed)
    m, n, r = shape
    W, A, B = _rand(m, n), _rand(r, n), _rand(m, r)
    dora = g.DoraUpdate(
        A, B, scaling=0.5, magnitude=W.norm(dim=1) * mag_scale * (0.5 + torch.rand(m, dtype=torch.float64))
    )
    closed, row_scale, row_norms = E.dora_update_stats(W, dora)
    dense = D.dense_dora_delta(W, dora)
    # angle atol: sqrt(eps) ||dW|| / ||W'|| with ||dW|| / ||W'|| up to ~300 here
    _assert_geometry_close(closed, reference(W, dense), rtol=1e-8, angle_atol=1e-5)
    torch.testing.assert_close(row_scale, dora.magnitude / (W + 0.5 * B @ A).norm(dim=1))
    torch.testing.assert_close(row_norms, W.norm(dim=1))


def test_dora_at_init_is_zero_update():
    W, A = _rand(10, 7), _rand(3, 7)
    B = torch.zeros(10, 3, dtype=torch.float64)
    geo, _, _ = E.dora_update_stats(W, g.DoraUpdate(A, B, 2.0, W.norm(dim=1)))
    assert geo.delta_fro.item() < 1e-7
    assert geo.angle_w_prime.item() < 1e-7


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(5, 175), st.floats(0.05, 3))
def test_angles_equal_arccos_of_float64_inner_products_at_moderate_angles(seed, degrees, size):
    """dW at a chosen angle to W (5-175 deg) and of a chosen size: both closed-form angles against arccos,
    in float32 and float64 (a wrong atan2 in the closed form cannot hide behind a reference that repeats it)."""
    torch.manual_seed(seed)
    m, n, r = 24, 20, 3
    W = torch.randn(m, n, dtype=torch.float64)
    A, B = torch.randn(r, n, dtype=torch.float64), torch.randn(m, r, dtype=torch.float64)
    D = B @ A - (B @ A * W).sum() / (W * W).sum() * W  # orthogonal to W, rank <= r + 1
    theta = math.radians(degrees)
    dW = size * W.norm() * (math.cos(theta) * W / W.norm() + math.sin(theta) * D / D.norm())
    U, S, Vh = torch.linalg.svd(dW, full_matrices=False)  # exact factors of this dW (k = n)
    expected = reference(W, dW)
    assert expected.angle_delta_w.item() == pytest.approx(theta, rel=1e-9)
    for dtype, rel in ((torch.float64, 1e-9), (torch.float32, 2e-4)):
        closed = E.update_geometry(W.to(dtype), g.LowRankUpdate((U * S).to(dtype), Vh.T.to(dtype)))
        assert closed.angle_delta_w.item() == pytest.approx(expected.angle_delta_w.item(), rel=rel)
        assert closed.angle_w_prime.item() == pytest.approx(expected.angle_w_prime.item(), rel=rel)


@pytest.mark.parametrize("eps", [1e-3, 1e-6, 1e-9])
def test_tiny_angles_are_accurate_where_arccos_fails(eps):
    """W + eps * (direction orthogonal to W): angle(W', W) = atan(eps ||D|| / ||W||) exactly."""
    torch.manual_seed(1)
    W = torch.randn(32, 32)
    D = torch.randn(32, 32)
    D = D - (D * W).sum() / (W * W).sum() * W  # orthogonal to W
    U, S, Vh = torch.linalg.svd(D)  # write D as an exact low-rank-ish factorisation (full rank here)
    update = g.LowRankUpdate(eps * U * S, Vh.T)
    closed = E.update_geometry(W, update)
    expected = math.atan(eps * D.double().norm().item() / W.double().norm().item())
    assert closed.angle_w_prime.item() == pytest.approx(expected, rel=1e-3)
    assert closed.angle_delta_w.item() == pytest.approx(math.pi / 2, abs=1e-3)
    if eps <= 1e-6:  # the arccos route loses such angles entirely in fp32
        W_prime = W + update.dense()
        cos = (W_prime * W).sum() / (W_prime.norm() * W.norm())
        assert abs(torch.arccos(cos.clamp(-1, 1)).item() - expected) > 0.5 * expected


def test_zero_update_has_no_direction():
    update = g.LowRankUpdate(torch.zeros(4, 2), torch.randn(3, 2))
    geo = E.update_geometry(torch.randn(4, 3), update)
    assert geo.delta_fro.item() == 0 and torch.isnan(geo.angle_delta_w) and geo.angle_w_prime.item() == 0


# ----------------------------------------------------------------------------- bounds
@settings(max_examples=60, deadline=None)
@given(shapes, st.booleans(), st.integers(0, 2**31 - 1), st.floats(1e-3, 1e3))
def test_delora_bound_holds_on_random_factors(shape, paper, seed, lam):
    torch.manual_seed(seed)
    m, n, r = shape
    W, A, B, lam_t, w, A0, B0 = _delora_case(m, n, r, paper, torch.float64, lam=lam)
    norm = g.fro_norm(g.delora_update(A, B, lam_t, w, A0, B0))
    tight = g.delora_bound(A, lam_t, w, A0, B0)
    loose = g.delora_bound_loose(lam_t, w, paper_init=paper)
    assert norm <= tight * (1 + 1e-12)
    assert tight <= loose * (1 + 1e-12)


def test_bound_is_tight_for_rank_one_aligned_with_largest_column():
    """Adversarial case: r = 1, a_1 on the largest column of W: ||dW|| = |lambda| max_j w_j exactly."""
    W = torch.randn(20, 30, dtype=torch.float64)
    W[:, 7] *= 10
    w = W.norm(dim=0)
    A = torch.zeros(1, 30, dtype=torch.float64)
    A[0, 7] = 3.0
    B = torch.randn(20, 1, dtype=torch.float64)
    lam = torch.tensor([2.5], dtype=torch.float64)
    norm = g.fro_norm(g.delora_update(A, B, lam, w))
    assert norm.item() == pytest.approx(g.delora_bound(A, lam, w).item(), rel=1e-12)
    assert norm.item() == pytest.approx(g.delora_bound_loose(lam, w).item(), rel=1e-12)


def test_bound_with_all_rows_aligned_reaches_loose_bound():
    """All r rows of A and columns of B aligned: the r rank-1 terms add up to |lambda| max w."""
    W = torch.randn(16, 12, dtype=torch.float64)
    w = W.norm(dim=0)
    j = int(w.argmax())
    A = torch.zeros(4, 12, dtype=torch.float64)
    A[:, j] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    B = torch.randn(16, 1, dtype=torch.float64).repeat(1, 4) * torch.tensor([1.0, 5.0, 0.1, 2.0])
    lam = torch.tensor([7.0], dtype=torch.float64)
    norm = g.fro_norm(g.delora_update(A, B, lam, w)).item()
    assert norm == pytest.approx(g.delora_bound_loose(lam, w).item(), rel=1e-12)


def test_negative_lambda_uses_its_magnitude():
    W, A, B, lam, w, _, _ = _delora_case(8, 9, 2, False, torch.float64, lam=-4.0)
    assert g.fro_norm(g.delora_update(A, B, lam, w)) <= g.delora_bound(A, lam, w)
    assert g.delora_bound_loose(lam, w) > 0


# ----------------------------------------------------------------------------- bad input
def test_mismatched_shapes_say_what_to_change():
    with pytest.raises(ValueError, match="same r"):
        g.lora_update(torch.randn(3, 5), torch.randn(4, 2), 1.0)
    with pytest.raises(ValueError, match="w_norm must have shape"):
        g.delora_update(torch.randn(2, 5), torch.randn(4, 2), torch.ones(1), torch.ones(4))
    with pytest.raises(ValueError, match="W has shape"):
        E.update_geometry(torch.randn(5, 5), g.lora_update(torch.randn(2, 5), torch.randn(4, 2), 1.0))
    with pytest.raises(ValueError, match="same k"):
        g.LowRankUpdate(torch.randn(3, 2), torch.randn(3, 4))
    with pytest.raises(ValueError, match="DoRA shapes"):
        E.dora_update_stats(torch.randn(4, 5), g.DoraUpdate(torch.randn(2, 5), torch.randn(4, 2), 1.0, torch.ones(3)))


def test_paper_init_norm_is_accurate_near_the_start_in_fp32():
    """dW = P Q^T - P0 Q0^T with P ~ P0: the stacked form keeps ||dW|| exact even in fp32."""
    torch.manual_seed(3)
    m, n, r = 256, 128, 8
    A0, B0 = torch.randn(r, n), torch.randn(m, r)
    A, B = A0 + 1e-4 * torch.randn(r, n), B0 + 1e-4 * torch.randn(m, r)
    w, lam = torch.rand(n) + 0.5, torch.tensor([10.0])
    closed = g.fro_norm(g.delora_update(A, B, lam, w, A0, B0)).item()
    reference = D.dense_delora_delta(*(t.double() for t in (A, B, lam, w, A0, B0))).norm().item()
    assert closed == pytest.approx(reference, rel=1e-4)
    assert reference < 1e-2 * g.delora_bound_loose(lam, w).item()
