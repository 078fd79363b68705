"""The appendix's precision figure (delora_viz.plots.internals): its table against arccos of float64 inner
products computed here, and the figure drawing that table."""

import math

import numpy as np
import pytest
import torch

from delora_viz.plots import internals


@pytest.fixture
def weight():
    torch.manual_seed(0)
    return torch.randn(48, 32) / 32**0.5


def test_angle_precision_table_against_float64_arccos(weight):
    sizes = (1e-1, 1e-3, 1e-6)
    table = internals.angle_precision_table(weight, sizes=sizes, r=3, seed=2)
    gen = torch.Generator().manual_seed(2)  # the same random direction, rebuilt densely here
    U, V = torch.randn(48, 3, generator=gen), torch.randn(32, 3, generator=gen)
    direction = (U @ V.T).double()
    W = weight.double()
    for size, (_, row) in zip(sizes, table.iterrows()):
        turned = W + direction * (size * W.norm() / direction.norm())
        cos = (turned * W).sum() / (turned.norm() * W.norm())
        if size >= 1e-4:  # float64 arccos is exact enough here (cos - 1 ~ 5e-9 >> 1e-16)
            assert row["truth_rad"] == pytest.approx(math.acos(cos.item()), rel=1e-7)
        else:  # tiny angles: about ||dW|| / ||W|| (the random direction is nearly orthogonal to W)
            assert row["truth_rad"] == pytest.approx(size, rel=0.05)
        assert row["atan2_rel_error"] < 1e-4
    assert table.set_index("size").loc[1e-6, "arccos_rel_error"] > 0.5  # float32 arccos: lost
    assert table.set_index("size").loc[1e-1, "arccos_rel_error"] < 1e-2


def test_plot_angle_precision_draws_the_table(weight):
    table = internals.angle_precision_table(weight, r=3)
    fig = internals.plot_angle_precision(table)
    lines = {ln.get_gid(): ln for ln in fig.axes[0].get_lines()}
    np.testing.assert_allclose(lines["atan2"].get_ydata(), np.maximum(table["atan2_rel_error"], 1e-9))
    np.testing.assert_allclose(lines["arccos"].get_ydata(), np.maximum(table["arccos_rel_error"], 1e-9))
    assert lines["atan2"].get_linestyle() != lines["arccos"].get_linestyle()  # told apart without colour
