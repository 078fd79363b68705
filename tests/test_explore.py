"""The tutorials' widget callbacks (plots/bound_explorer, angle_explorer, trajectory, sliders): every number
they draw, against PEFT's own layers merged in float64 and the paper's equation written out here; the
figures; the widget wiring."""

import copy
import math
from collections import OrderedDict

import numpy as np
import pandas as pd
import pytest
import torch
from peft import DeloraConfig, LoraConfig, get_peft_model
from torch import nn

from delora_viz import Tracker
from delora_viz.plots import angle_explorer, bound_explorer, sliders, trajectory


@pytest.fixture
def uneven():
    """A weight (48 out, 32 in) with column norms spread over ~30x, so the two bounds differ."""
    torch.manual_seed(0)
    return (torch.randn(48, 32) * torch.logspace(-1, 0.5, 32)).double()


def _one_layer(W):
    layer = nn.Linear(W.shape[1], W.shape[0], bias=False).double()
    with torch.no_grad():
        layer.weight.copy_(W)
    return nn.Sequential(OrderedDict(proj=layer))


def _peft_delora_delta(W, A, B, lam):
    """dW from PEFT's own DeloraLinear (get_delta_weight), in float64."""
    model = get_peft_model(_one_layer(W), DeloraConfig(r=A.shape[0], delora_lambda=lam, target_modules=["proj"]))
    model = model.double()
    peft_layer = model.base_model.model.proj
    with torch.no_grad():
        peft_layer.delora_A["default"].copy_(A)
        peft_layer.delora_B["default"].copy_(B)
    return peft_layer.get_delta_weight("default")


@pytest.mark.parametrize("r", [1, 3, 8])
def test_bound_table_peft_init_matches_peft(uneven, r):
    table = bound_explorer.bound_table(uneven, 2.5, r, "peft", alignments=[0.0, 0.4, 1.0])
    w = uneven.norm(dim=0)
    for _, row in table.iterrows():
        A, B = bound_explorer.aligned_factors(uneven, r, row["alignment"])
        dW = _peft_delora_delta(uneven, A, B, 2.5)
        assert row["delta_fro"] == pytest.approx(torch.linalg.norm(dW).item(), rel=1e-10)
        a_hat = A / A.norm(dim=1, keepdim=True)  # the triangle inequality over the r unit terms, by hand
        tight = 2.5 / r * sum((a_hat[i] * w).norm().item() for i in range(r))
        assert row["bound"] == pytest.approx(tight, rel=1e-10)
        assert row["bound_loose"] == pytest.approx(2.5 * w.max().item(), rel=1e-12)
        assert row["typical"] == pytest.approx(2.5 * math.sqrt((w**2).mean().item() / r), rel=1e-12)
        assert row["delta_fro"] <= row["bound"] * (1 + 1e-12)
        assert row["bound"] <= row["bound_loose"] * (1 + 1e-12)
    worst = table.set_index("alignment").loc[1.0]
    assert worst["delta_fro"] == pytest.approx(worst["bound_loose"], rel=1e-10)  # adversarial: attained
    if r == 1:
        assert np.allclose(table["delta_fro"], table["bound"], rtol=1e-10)  # rank 1: the tight bound is exact


def test_bound_table_paper_init_matches_the_paper_equation(uneven):
    r, lam = 4, 1.5
    table = bound_explorer.bound_table(uneven, lam, r, "paper", alignments=[0.0, 1.0])
    A0, B0 = bound_explorer.paper_start(uneven, r)
    w = uneven.norm(dim=0)

    def term(A, B):  # Eq. 5-9 written out: (lambda / r) B Xi A diag(w), Xi = diag(1 / (||b_i|| ||a_i||))
        return lam / r * B @ torch.diag(1 / (B.norm(dim=0) * A.norm(dim=1))) @ A @ torch.diag(w)

    for _, row in table.iterrows():
        A, B = bound_explorer.aligned_factors(uneven, r, row["alignment"])
        dense = term(A, B) - term(A0, B0)
        assert row["delta_fro"] == pytest.approx(torch.linalg.norm(dense).item(), rel=1e-10)
        assert row["bound_loose"] == pytest.approx(2 * lam * w.max().item(), rel=1e-12)
        assert row["delta_fro"] <= row["bound"] <= row["bound_loose"]


def test_bound_table_rejects_bad_input(uneven):
    with pytest.raises(ValueError, match="alignment must be in"):
        bound_explorer.bound_table(uneven, 1.0, 2, alignments=[1.5])
    with pytest.raises(ValueError, match="init must be"):
        bound_explorer.bound_table(uneven, 1.0, 2, init="kaiming")
    with pytest.raises(ValueError, match="positive integer"):
        bound_explorer.bound_table(uneven, 1.0, 0)


def _angle_deg(X, Y):
    """The angle between two matrices from the arccos of their float64 inner product (not the atan2 route)."""
    return math.degrees(torch.arccos((X * Y).sum() / (X.norm() * Y.norm())).item())


def _peft_merged(W, method, A, B, lam):
    """W' from PEFT merging each method's adapter (float64)."""
    r = A.shape[0]
    if method == "delora":
        config = DeloraConfig(r=r, delora_lambda=lam, target_modules=["proj"])
    else:
        config = LoraConfig(r=r, lora_alpha=2 * r, use_dora=method == "dora", target_modules=["proj"])
    model = get_peft_model(_one_layer(W), config).double()
    peft_layer = model.base_model.model.proj
    with torch.no_grad():
        if method == "delora":
            peft_layer.delora_A["default"].copy_(A)
            peft_layer.delora_B["default"].copy_(B)
        else:
            peft_layer.lora_A["default"].weight.copy_(A)
            peft_layer.lora_B["default"].weight.copy_(B)
            if method == "dora":  # the magnitudes at their start: the row norms of W
                peft_layer.lora_magnitude_vector["default"].weight.copy_(W.norm(dim=1))
    return model.merge_and_unload().proj.weight.detach()


@pytest.mark.parametrize("method", ["lora", "dora", "delora"])
def test_angle_table_matches_peft_merged_weights(uneven, method):
    sigmas = [1e-3, 0.3, 5.0]
    table = angle_explorer.angle_table(uneven, r=4, delora_lambda=3.0, sigmas=sigmas, methods=[method])
    A, B_hat, s = angle_explorer.angle_factors(uneven, 4)
    assert s == 2.0  # LoRA's alpha / r with alpha = 2r, as in the PEFT config above
    for sigma, (_, row) in zip(sigmas, table.iterrows()):
        merged = _peft_merged(uneven, method, A, sigma * B_hat, 3.0)
        dW = merged - uneven
        assert row["rel_delta"] == pytest.approx((dW.norm() / uneven.norm()).item(), rel=1e-8)
        assert row["angle_w_prime_deg"] == pytest.approx(_angle_deg(merged, uneven), rel=1e-5, abs=1e-6)
        assert row["angle_delta_w_deg"] == pytest.approx(_angle_deg(dW, uneven), rel=1e-8)
    if method == "lora":  # sigma reads as LoRA's relative size
        assert np.allclose(table["rel_delta"], sigmas, rtol=1e-10)
    if method == "delora":  # the factors' scale divides away; the bound holds
        assert np.allclose(table["rel_delta"], table["rel_delta"].iloc[0], rtol=1e-10)
        assert (table["rel_delta"] <= table["bound_rel"]).all()
        col_max = uneven.norm(dim=0).max().item()
        assert table["bound_rel"].iloc[0] == pytest.approx(3.0 * col_max / uneven.norm().item(), rel=1e-12)


def _lines(fig):
    return {line.get_gid(): line for ax in fig.axes for line in ax.get_lines() if line.get_gid()}


def test_explorer_figures_draw_the_tables(uneven):
    fig = bound_explorer.plot_bound_explorer(uneven, delora_lambda=2.0, r=3, init="peft", alignment=0.5)
    lines = _lines(fig)
    table = bound_explorer.bound_table(uneven, 2.0, 3, "peft")
    np.testing.assert_allclose(lines["delta_fro"].get_ydata(), table["delta_fro"])
    np.testing.assert_allclose(lines["bound"].get_ydata(), table["bound"])
    np.testing.assert_allclose(lines["loose"].get_ydata(), table["bound_loose"])
    now = bound_explorer.bound_table(uneven, 2.0, 3, "peft", alignments=[0.5]).iloc[0]
    np.testing.assert_allclose(lines["now"].get_ydata(), [now["delta_fro"]])
    sums = bound_explorer.term_sums(uneven, 2.0, 3, 0.5)
    for column in ("partial", "aligned", "orthogonal"):
        np.testing.assert_allclose(lines[column].get_ydata(), sums[column])


def _bars(fig):
    return {p.get_gid(): p.get_height() for ax in fig.axes for p in ax.patches if p.get_gid()}


def test_angle_explorer_draws_the_table_on_fixed_axes(uneven):
    fig = angle_explorer.plot_angle_explorer(uneven, sigma=0.2, delora_lambda=3.0, r=4)
    bars, lines = _bars(fig), _lines(fig)
    now = angle_explorer.angle_table(uneven, r=4, delora_lambda=3.0, sigmas=[0.2]).set_index("method")
    for method in ("lora", "dora", "delora"):
        for column in ("rel_delta", "angle_w_prime_deg"):
            assert bars[f"{column}:{method}"] == pytest.approx(now.loc[method, column], rel=1e-12)
    assert bars["rel_delta:lora"] == pytest.approx(0.2, rel=1e-10)  # sigma reads as LoRA's ||dW|| / ||W||
    ceiling = 3.0 * uneven.norm(dim=0).max().item() / uneven.norm().item()  # |lambda| max_j w_j / ||W||_F
    np.testing.assert_allclose(lines["ceiling"].get_ydata(), [ceiling, ceiling], rtol=1e-12)
    other = angle_explorer.plot_angle_explorer(uneven, sigma=5.0, delora_lambda=10.0, r=4)
    for a, b in zip(fig.axes, other.axes):  # fixed axes: moving a slider moves the bars, not the axes
        assert a.get_ylim() == b.get_ylim()
    assert _bars(other)["rel_delta:delora"] == pytest.approx(bars["rel_delta:delora"] * 10 / 3, rel=1e-10)


def test_angle_small_multiples_draw_each_setting(uneven):
    settings = ((0.01, 2.0), (1.0, 2.0), (1.0, 6.0))
    bars = _bars(angle_explorer.plot_angle_small_multiples(uneven, settings=settings, r=4))
    for k, (sigma, lam) in enumerate(settings):
        now = angle_explorer.angle_table(uneven, r=4, delora_lambda=lam, sigmas=[sigma]).set_index("method")
        for method in ("lora", "dora", "delora"):
            assert bars[f"{k}:rel_delta:{method}"] == pytest.approx(now.loc[method, "rel_delta"], rel=1e-12)
            assert bars[f"{k}:angle_w_prime_deg:{method}"] == pytest.approx(now.loc[method, "angle_w_prime_deg"])


def test_random_angle_band_matches_dense_arccos(uneven):
    low, high = angle_explorer.random_angle_band(uneven, r=3, samples=60, seed=4, coverage=0.9)
    gen = torch.Generator().manual_seed(4)
    angles = []
    for _ in range(60):  # the same draws, the dense update and arccos
        A = torch.randn(3, 32, generator=gen, dtype=torch.float64)
        B = torch.randn(48, 3, generator=gen, dtype=torch.float64)
        angles.append(_angle_deg(B @ A, uneven))
    assert (low, high) == pytest.approx(tuple(np.quantile(angles, [0.05, 0.95])), rel=1e-9)
    assert low < 90 < high


def test_layer_trajectory_draws_the_tracked_rows_which_match_peft():
    torch.manual_seed(0)
    base = nn.Sequential(OrderedDict(a=nn.Linear(16, 12), act=nn.GELU(), b=nn.Linear(12, 4))).double()
    model = get_peft_model(copy.deepcopy(base), DeloraConfig(r=2, delora_lambda=2.0, target_modules=["a", "b"]))
    model = model.double()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    with Tracker(model, dtype=torch.float64).watch(opt) as tracker:
        for _ in range(3):
            loss = model(torch.randn(8, 16, dtype=torch.float64)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    df = tracker.to_dataframe()
    layer = sorted(df["layer"].unique())[0]
    fig = trajectory.plot_layer_trajectory(df, layer, "delora")
    lines = _lines(fig)
    rows = df[df["layer"] == layer].sort_values("step")
    np.testing.assert_allclose(lines["delta_fro"].get_ydata(), rows["delta_fro"])
    np.testing.assert_allclose(lines["bound"].get_ydata(), rows["bound"])
    np.testing.assert_allclose(lines["lambda"].get_ydata(), rows["lambda"])
    # the last point, against PEFT's own merge of that layer (float64) and arccos
    name = layer.split(".")[-1]
    W = base.get_submodule(name).weight.detach()
    merged = copy.deepcopy(model).merge_and_unload().get_submodule(name).weight.detach()
    assert lines["delta_fro"].get_ydata()[-1] == pytest.approx((merged - W).norm().item(), rel=1e-8)
    assert lines["angle_w_prime"].get_ydata()[-1] == pytest.approx(_angle_deg(merged, W), rel=1e-5)
    with pytest.raises(ValueError, match="no rows for layer"):
        trajectory.plot_layer_trajectory(df, "nope", "delora")


def test_layer_trajectory_without_lambda_draws_the_relative_size():
    df = pd.DataFrame(
        dict(step=[0, 1, 2], layer="x", method="lora", delta_fro=[0.0, 0.1, 0.2], rel_delta=[0.0, 0.01, 0.02])
    )
    df["angle_delta_w_deg"], df["angle_w_prime_deg"], df["bound"], df["lambda"] = np.nan, np.nan, np.nan, np.nan
    lines = _lines(trajectory.plot_layer_trajectory(df, "x"))
    assert "bound" not in lines and "lambda" not in lines
    np.testing.assert_allclose(lines["rel_delta"].get_ydata(), df["rel_delta"])


def test_show_interactive_displays_the_defaults_then_redraws_in_place(monkeypatch):
    widgets = pytest.importorskip("ipywidgets")
    import IPython.display

    shown, updates, calls = [], [], []

    class Handle:
        def update(self, obj):
            updates.append(obj)

    def fake_display(obj, display_id=None):
        shown.append(obj)
        return Handle() if display_id else None

    monkeypatch.setattr(IPython.display, "display", fake_display)

    def plot(a, b):
        calls.append((a, b))
        return f"figure {a} {b}"

    returned = sliders.show_interactive(
        plot, a=widgets.IntSlider(value=1, min=0, max=5), b=widgets.Dropdown(options=["x", "y"])
    )
    assert returned is None  # a cell ending with the call shows the controls once
    assert shown[0] == "figure 1 x" and isinstance(shown[1], widgets.Box)  # the default figure first, plain
    box = shown[1]
    box.children[0].value = 4
    box.children[1].value = "y"
    assert calls == [(1, "x"), (4, "x"), (4, "y")] and updates == ["figure 4 x", "figure 4 y"]


@pytest.mark.parametrize("alignment", [0.0, 0.5, 1.0])
def test_term_sums_add_the_unit_terms_as_the_paper_writes_them(uneven, alignment):
    r, lam = 4, 2.5
    sums = bound_explorer.term_sums(uneven, lam, r, alignment)
    A, B = bound_explorer.aligned_factors(uneven, r, alignment)
    w = uneven.norm(dim=0)
    terms = [torch.outer(B[:, i] / B[:, i].norm(), A[i] / A[i].norm() * w) for i in range(r)]  # (m, n) each
    for k in range(1, r + 1):
        row = sums.iloc[k - 1]
        assert row["k"] == k
        dense = lam / r * sum(terms[:k])
        assert row["partial"] == pytest.approx(torch.linalg.norm(dense).item(), rel=1e-10)
        assert row["aligned"] == pytest.approx(lam / r * sum(t.norm().item() for t in terms[:k]), rel=1e-12)
        assert row["orthogonal"] == pytest.approx(lam / r * math.sqrt(sum(t.norm().item() ** 2 for t in terms[:k])))
        assert row["partial"] <= row["aligned"] * (1 + 1e-12)
    # all r terms: PEFT's own dW (float64), and the tight bound of bound_table
    peft = torch.linalg.norm(_peft_delora_delta(uneven, A, B, lam)).item()
    assert sums["partial"].iloc[-1] == pytest.approx(peft, rel=1e-10)
    table = bound_explorer.bound_table(uneven, lam, r, "peft", alignments=[alignment]).iloc[0]
    assert sums["aligned"].iloc[-1] == pytest.approx(table["bound"], rel=1e-10)


def test_bound_explorer_axes_are_fixed_so_each_slider_value_draws_its_own_picture(uneven):
    small = bound_explorer.plot_bound_explorer(uneven, delora_lambda=2.0, r=4, alignment=0.2)
    large = bound_explorer.plot_bound_explorer(uneven, delora_lambda=8.0, r=4, alignment=0.2)
    top = 8.0 * uneven.norm(dim=0).max().item() * 1.05
    for a, b in zip(small.axes, large.axes):
        assert a.get_ylim() == b.get_ylim() == pytest.approx((0.0, top))
        assert a.get_xlim() == b.get_xlim()
    np.testing.assert_allclose(_lines(large)["delta_fro"].get_ydata(), 4 * _lines(small)["delta_fro"].get_ydata())
    moved = bound_explorer.plot_bound_explorer(uneven, delora_lambda=2.0, r=4, alignment=0.9)
    assert not np.allclose(_lines(moved)["partial"].get_ydata(), _lines(small)["partial"].get_ydata())  # redrawn
    assert _lines(moved)["now"].get_xdata()[0] == 0.9


def test_bound_small_multiples_draw_each_setting_on_one_axis(uneven):
    settings = [dict(delora_lambda=2.0), dict(delora_lambda=8.0), dict(alignment=1.0)]
    fig = bound_explorer.plot_bound_small_multiples(uneven, settings, r=3)
    assert len(fig.axes) == 6
    assert len({ax.get_ylim() for ax in fig.axes}) == 1  # one y-axis for all panels
    for i, setting in enumerate(settings):
        lam, t = setting.get("delora_lambda", 2.0), setting.get("alignment", 0.0)
        upper = {line.get_gid(): line for line in fig.axes[2 * i].get_lines()}
        lower = {line.get_gid(): line for line in fig.axes[2 * i + 1].get_lines()}
        table = bound_explorer.bound_table(uneven, lam, 3, "peft")
        np.testing.assert_allclose(upper["delta_fro"].get_ydata(), table["delta_fro"])
        np.testing.assert_allclose(lower["partial"].get_ydata(), bound_explorer.term_sums(uneven, lam, 3, t)["partial"])
    with pytest.raises(ValueError, match="at least one setting"):
        bound_explorer.plot_bound_small_multiples(uneven, [])
