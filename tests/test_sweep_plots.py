"""The sweep's figures (plots/sweep.py), the layer-trajectory slider (plots/trajectory.py) and the lambda rule
(plots/choose_lambda.py): what they draw is the data they are given, on axes that do not follow the slider."""

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from delora_viz.plots import choose_lambda, trajectory
from delora_viz.plots.sweep import collapse_points, first_crossing, plot_lr_sweep, plot_sweep_norms


def by_gid(fig, gid):
    return [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == gid]


def sweep_frames():
    """LoRA collapses at 10x and crosses a flat ceiling of 2.0 at step 3 (10x) / never (1x); DeLoRA under it."""
    rows, steps = [], []
    for method in ("lora", "dora", "delora"):
        for mult in (1.0, 10.0, 100.0):
            bounded = method == "delora"
            diverged = method == "dora" and mult == 100.0
            acc = 0.9 if bounded or mult == 1.0 else 0.2
            rows.append(
                dict(
                    method=method,
                    lr_multiplier=mult,
                    lr=1e-3 * mult,
                    final_distance=1.0 if bounded else mult,
                    eval_metric=math.nan if diverged else acc,
                    eval_name="accuracy",
                    diverged=diverged,
                    baseline=0.4,
                )
            )
            for step in range(6):
                norm = 0.0 if step == 0 else (min(1.5, 0.5 * step) if bounded else 0.1 * mult * step)
                steps.append(
                    dict(
                        method=method,
                        lr_multiplier=mult,
                        step=step,
                        delta_fro_mean=norm,
                        bound_loose_mean=2.0 + 0.1 * step if bounded else math.nan,
                    )
                )
    return pd.DataFrame(rows), pd.DataFrame(steps)


def test_lr_sweep_plain_legends_styles_and_collapse_marks():
    sweep, _ = sweep_frames()
    fig = plot_lr_sweep(sweep)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert {"LoRA", "DoRA", "DeLoRA"} <= set(labels) and "diverged (loss NaN)" in labels
    styles = {ln.get_gid(): (ln.get_linestyle(), ln.get_marker()) for ln in fig.axes[0].get_lines()}
    assert len({styles[f"sweep-{m}"] for m in ("lora", "dora", "delora")}) == 3  # no line hidden under another
    assert collapse_points(sweep) == {"lora": 10.0, "dora": 10.0}
    notes = [t.get_text() for t in fig.axes[1].texts if t.get_gid() == "collapse"]
    assert notes == ["LoRA collapses from 10×", "DoRA collapses from 10×"]
    assert by_gid(fig, "baseline")[0].get_ydata()[0] == 0.4
    assert len(by_gid(fig, "diverged")) == 2  # DoRA at 100x, on both panels


def test_sweep_norms_small_multiples_ceiling_and_crossing():
    _, steps = sweep_frames()
    fig = plot_sweep_norms(steps, multipliers=[1.0, 10.0])
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2 and axes[0].get_ylim() == axes[1].get_ylim()  # one shared axis
    ceiling = [ln for ln in axes[1].get_lines() if ln.get_gid() == "ceiling"][0]
    np.testing.assert_allclose(ceiling.get_ydata(), 2.0 + 0.1 * np.arange(6))  # moves with lambda: drawn per step
    lora = [ln for ln in axes[1].get_lines() if ln.get_gid() == "norm-lora"][0]
    np.testing.assert_allclose(lora.get_ydata(), [1, 2, 3, 4, 5])  # step 0 (dW = 0) left off the log axis
    crossing = [t.get_text() for ax in axes for t in ax.texts if t.get_gid() == "crossing"]
    assert crossing == ["LoRA crosses\nthe ceiling\nat step 3"]  # 10x: 3 > 2.3; 1x: 0.5 < 2.1, never
    assert first_crossing(pd.Series([1, 2]), pd.Series([0.0, 0.1]), pd.Series([1.0, 1.0])) is None
    with pytest.raises(ValueError, match="no runs at multipliers"):
        plot_sweep_norms(steps, multipliers=[3.0])


def tracked():
    rows = []
    for method, scale in (("lora", 1.0), ("delora", 0.2)):
        for layer in ("l.0.q", "l.1.q"):
            for step in range(4):
                bounded = method == "delora"
                rows.append(
                    dict(
                        step=step,
                        layer=layer,
                        method=method,
                        delta_fro=scale * step * (2 if "1" in layer else 1),
                        bound=1.0 + step if bounded else math.nan,
                        bound_loose=2.0 + step if bounded else math.nan,
                        angle_delta_w_deg=80 + step,
                        angle_w_prime_deg=0.5 * step,
                        lambda_=5.0 + step if bounded else math.nan,
                        rel_delta=0.01 * step,
                    )
                )
    return pd.DataFrame(rows).rename(columns={"lambda_": "lambda"})


def test_layer_trajectory_axes_are_fixed_by_the_whole_frame():
    df = tracked()
    a = trajectory.plot_layer_trajectory(df, "l.0.q", "delora")
    b = trajectory.plot_layer_trajectory(df, "l.1.q", "lora")
    assert isinstance(a, Figure)
    assert a.axes[0].get_ylim() == b.axes[0].get_ylim()  # moving the slider keeps the axes
    assert a.axes[0].get_ylim()[1] >= 6.0  # LoRA's largest norm (2 * 3) fits on DeLoRA's picture too
    assert {ln.get_gid() for ln in a.axes[0].get_lines()} == {"delta_fro", "bound", "bound_loose"}
    fig = trajectory.plot_layer_small_multiples(df, ["l.0.q", "l.1.q"], ["lora", "delora"])
    assert len(fig.axes) == 4 and len({ax.get_ylim() for ax in fig.axes}) == 1
    with pytest.raises(ValueError, match="no rows for layer"):
        trajectory.plot_layer_small_multiples(df, ["nope"], ["lora"])


def test_lambda_rule_formula_axes_and_markers():
    assert choose_lambda.lambda_rule(15, 8, 4096) == pytest.approx(15 / math.sqrt(8 * 4096))
    assert choose_lambda.lambda_for(0.1, 8, 576) == pytest.approx(0.1 * math.sqrt(8 * 576))
    a = choose_lambda.plot_lambda_rule(5.0, 8)
    b = choose_lambda.plot_lambda_rule(25.0, 32, measured=[(25.0, 32, 576, 0.2)])
    assert a.axes[0].get_xlim() == b.axes[0].get_xlim() and a.axes[0].get_ylim() == b.axes[0].get_ylim()
    marker = by_gid(b, "at-576")[0]
    assert marker.get_ydata()[0] == pytest.approx(25 / math.sqrt(32 * 576))
    assert by_gid(b, "measured")[0].get_ydata()[0] == 0.2
    fig = choose_lambda.plot_lambda_rule_multiples(15.0, ranks=(4, 16))
    assert len(fig.axes) == 2 and not by_gid(fig, "measured")
    with pytest.raises(ValueError, match="positive"):
        choose_lambda.lambda_rule(1.0, 0, 10)
