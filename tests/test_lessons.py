"""The lesson figures of notebooks 00 and 01 (plots/lessons.py, plots/toy_delora.py): the toy runs against computations
written out here (Adam's first step, the reflection built as a matrix, the bound from W's columns), and every
figure against the numbers it was given."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from delora_viz.plots import lessons, toy_delora


def _lines(fig):
    return {line.get_gid(): line for ax in fig.axes for line in ax.get_lines() if line.get_gid()}


def test_toy_task_is_a_rank_2_change_of_the_asked_size():
    W, D = lessons.toy_task(m=32, n=48, target_size=0.3)
    assert W.shape == D.shape == (32, 48) and W.dtype == torch.float64
    assert D.norm().item() == pytest.approx(0.3 * W.norm().item(), rel=1e-12)
    assert torch.linalg.matrix_rank(D).item() == 2


@pytest.fixture(scope="module")
def family():
    return lessons.family_runs(lrs=(1e-2, 1.0), steps=6)


def test_family_starts_where_each_method_starts(family):
    W, _ = lessons.toy_task()
    start = family[family["step"] == 0].set_index("method")
    for method in ("lora", "dora", "delora"):  # B = 0: no update yet
        assert (family[(family["method"] == method) & (family["step"] == 0)]["delta_fro"] == 0).all()
    # ETHER starts as a reflection: the matrix H = I - 2 u u^T / ||u||^2 built in full, u drawn as in the runs
    u = torch.randn(W.shape[0], 1, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    H = torch.eye(W.shape[0], dtype=torch.float64) - 2 * u @ u.T / (u.T @ u)
    assert start.loc["ether", "delta_fro"].iloc[0] == pytest.approx(torch.linalg.norm(H @ W - W).item(), rel=1e-12)
    assert torch.linalg.norm(H - torch.eye(W.shape[0], dtype=torch.float64)).item() == pytest.approx(2.0)
    assert np.allclose(family["reflection"].dropna(), 2.0, rtol=1e-12)  # ||H - I||_F = 2 at every step


def test_lora_first_step_is_adams_sign_step(family):
    """Adam's first step moves each entry by lr * g / (|g| + eps): with B = 0, only B moves (A's gradient is 0)."""
    W, D = lessons.toy_task()
    r, s = 4, 2.0
    A = torch.empty(r, W.shape[1], dtype=torch.float64).uniform_(
        -1 / math.sqrt(W.shape[1]), 1 / math.sqrt(W.shape[1]), generator=torch.Generator().manual_seed(10)
    )
    x = next(lessons.toy_batches(W.shape[1], 1, seed=1))
    B = torch.zeros(W.shape[0], r, dtype=torch.float64, requires_grad=True)
    loss = ((x @ (W + s * B @ A).T - x @ (W + D).T) ** 2).mean()
    (grad,) = torch.autograd.grad(loss, B)
    for lr in (1e-2, 1.0):
        B1 = -lr * grad / (grad.abs() + 1e-8)
        row = family[(family["method"] == "lora") & (family["lr"] == lr) & (family["step"] == 1)].iloc[0]
        assert row["delta_fro"] == pytest.approx(torch.linalg.norm(s * B1 @ A).item(), rel=1e-9)


def test_delora_never_passes_its_ceiling_and_the_ceiling_follows_lambda(family):
    W, _ = lessons.toy_task()
    delora = family[family["method"] == "delora"]
    np.testing.assert_allclose(delora["ceiling"], delora["lambda"].abs() * W.norm(dim=0).max().item(), rtol=1e-12)
    assert (delora["delta_fro"] <= delora["ceiling"] * (1 + 1e-12)).all()
    assert delora["lambda"].nunique() > 1  # lambda is trained


def test_plot_update_family_draws_the_runs(family):
    fig = lessons.plot_update_family(family)
    assert len(fig.axes) == 2 and len({ax.get_ylim() for ax in fig.axes}) == 1  # one y-axis for every rate
    for ax, lr in zip(fig.axes, (1e-2, 1.0)):
        lines = {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}
        for method in lessons.FAMILY:
            rows = family[(family["method"] == method) & (family["lr"] == lr) & (family["delta_fro"] > 0)]
            np.testing.assert_allclose(lines[f"delta_fro:{method}"].get_ydata(), rows["delta_fro"])
        rows = family[(family["method"] == "delora") & (family["lr"] == lr) & (family["delta_fro"] > 0)]
        np.testing.assert_allclose(lines["ceiling"].get_ydata(), rows["ceiling"])


@pytest.fixture(scope="module")
def delora_runs():
    settings = [dict(lr=1e-2, freeze_lambda=True), dict(lr=1e-2), dict(lr=1e-4), dict(init="paper", lr=1e-3)]
    return toy_delora.toy_delora_runs(settings, steps=8)


def test_toy_delora_runs_respect_the_bound_and_freeze_lambda_when_asked(delora_runs):
    W, _ = lessons.toy_task()
    w_max = W.norm(dim=0).max().item()
    assert (delora_runs["delta_fro"] <= delora_runs["bound"] * (1 + 1e-12)).all()
    assert (delora_runs["bound"] <= delora_runs["ceiling"] * (1 + 1e-12)).all()
    factor = np.where(delora_runs["init"] == "paper", 2.0, 1.0)  # the paper init's ceiling is twice as high
    np.testing.assert_allclose(delora_runs["ceiling"], factor * delora_runs["lambda"].abs() * w_max, rtol=1e-12)
    frozen = delora_runs[delora_runs["freeze_lambda"]]
    learned = delora_runs[~delora_runs["freeze_lambda"] & (delora_runs["lr"] == 1e-2)]
    assert frozen["lambda"].nunique() == 1 and learned["lambda"].nunique() > 1
    assert frozen["delta_fro"].iloc[-1] != frozen["delta_fro"].iloc[1]  # the norm moves under a fixed ceiling
    assert (delora_runs[delora_runs["step"] == 0]["delta_fro"] == 0).all()  # both inits start at dW = 0


def test_peft_init_jumps_to_the_same_size_at_any_rate(delora_runs):
    one = delora_runs[(delora_runs["step"] == 1) & (delora_runs["init"] == "peft")]
    assert one["delta_fro"].max() == pytest.approx(one["delta_fro"].min(), rel=1e-6)  # lr 1e-4 and 1e-2 alike
    paper = delora_runs[(delora_runs["step"] == 1) & (delora_runs["init"] == "paper")]["delta_fro"].item()
    assert paper < 0.05 * one["delta_fro"].min()  # the paper init starts small


def test_lesson_figures_draw_their_frames(delora_runs):
    two = delora_runs[delora_runs["lr"] == 1e-2]
    lines = _lines(toy_delora.plot_lambda_frozen_vs_learned(two))
    for frozen, name in ((True, "lambda frozen"), (False, "lambda learned")):
        rows = two[two["freeze_lambda"] == frozen].sort_values("step")
        np.testing.assert_allclose(lines[f"delta_fro:{name}"].get_ydata(), rows["delta_fro"])
        np.testing.assert_allclose(lines[f"ceiling:{name}"].get_ydata(), rows["ceiling"])
        np.testing.assert_allclose(lines[f"ratio:{name}"].get_ydata(), rows["delta_fro"] / rows["ceiling"])
    lines = _lines(toy_delora.plot_first_steps(delora_runs[~delora_runs["freeze_lambda"]]))
    rows = delora_runs[(delora_runs["init"] == "paper") & (delora_runs["step"] >= 1)]
    np.testing.assert_allclose(lines["delta_fro:paper:0.001"].get_ydata(), rows["delta_fro"])


def test_lora_shapes_are_drawn_to_scale():
    fig = lessons.plot_lora_shapes(m=48, n=64, r=4, alpha=8)
    boxes = {p.get_gid(): (p.get_width(), p.get_height()) for p in fig.axes[0].patches}
    assert boxes == {"dW": (64, 48), "B": (4, 48), "A": (64, 4)}
    assert "448" in fig.axes[0].get_title() and "3072" in fig.axes[0].get_title()  # r (m + n) and m n
    with pytest.raises(ValueError, match="r must be between"):
        lessons.plot_lora_shapes(m=8, n=8, r=9)


def test_lr_collapse_draws_the_sweep_and_marks_diverged_runs():
    sweep = pd.DataFrame(
        dict(
            method=["lora"] * 3 + ["delora"] * 3,
            lr_multiplier=[1, 10, 30] * 2,
            eval_metric=[0.9, 0.24, np.nan, 0.9, 0.88, 0.86],
            eval_name="accuracy",
            diverged=[False, False, True, False, False, False],
        )
    )
    fig = lessons.plot_lr_collapse(sweep)
    lines = _lines(fig)
    np.testing.assert_allclose(lines["eval:lora"].get_ydata(), [0.9, 0.24])
    np.testing.assert_allclose(lines["eval:delora"].get_ydata(), [0.9, 0.88, 0.86])
    assert list(lines["diverged:lora"].get_xdata()) == [30]
    assert fig.axes[0].get_ylabel() == "accuracy"


def test_family_sweep_reads_the_runs_as_a_sweep(family):
    sweep = lessons.family_sweep(family, last=3)
    assert set(sweep.columns) >= {"method", "lr_multiplier", "lr", "final_distance", "eval_metric", "diverged"}
    row = sweep[(sweep["method"] == "lora") & (sweep["lr"] == 1.0)].iloc[0]
    run = family[(family["method"] == "lora") & (family["lr"] == 1.0)]
    assert row["lr_multiplier"] == pytest.approx(100.0)  # 1.0 / the smallest rate, 1e-2
    assert row["eval_metric"] == pytest.approx(max(0.0, 1 - run["loss"].iloc[-3:].mean() / run["loss"].iloc[0]))
    assert sweep["eval_metric"].between(0, 1).all()
    assert row["final_distance"] == run["delta_fro"].iloc[-1]
