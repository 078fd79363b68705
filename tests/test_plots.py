"""Plots and live frames on synthetic tracker/history/sweep tables: fast, headless, no torch needed."""

from io import BytesIO

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from delora_viz.plots import (
    plot_angle_strength,
    plot_angles,
    plot_bound_heatmap,
    plot_lambda,
    plot_loss,
    plot_lr_sweep,
    plot_singular_values,
    plot_update_norm,
    save_figures,
)
from delora_viz.plots.frames import METHOD_COLORS, live_colors, live_frame, live_loss_frame, method_color, short_layer

LAYERS = ["base_model.model.encoder.layer.0.attention.self.query", "encoder.layer.0.value", "encoder.layer.1.query"]
STEPS = 20


def tracker_frame(methods=("lora", "dora", "delora"), steps=STEPS, layers=LAYERS, run_column=True):
    """One row per (run, step, layer). DeLoRA's delta_fro stays strictly below its bound."""
    rng = np.random.default_rng(0)
    rows = []
    for method in methods:
        for li, layer in enumerate(layers):
            w_fro, max_col = 10.0 + li, 1.5 + 0.1 * li
            for step in range(steps):
                t = step / (steps - 1)
                bounded = method.startswith("delora")
                lam = 0.5 + 0.3 * t + 0.05 * li if bounded else np.nan
                bound = (2 if method == "delora-paper" else 1) * lam * max_col if bounded else np.nan
                delta = bound * (0.3 + 0.6 * t) * (0.9 + 0.1 * rng.random()) if bounded else (0.2 + li) * t * 3
                rows.append(
                    dict(
                        run=method,
                        step=step,
                        layer=layer,
                        method=method,
                        rank=4,
                        delta_fro=delta,
                        w_fro=w_fro,
                        rel_delta=delta / w_fro,
                        angle_delta_w_deg=np.nan if step == 0 else 88 - 10 * t + li,
                        angle_w_prime_deg=np.degrees(np.arctan2(delta, w_fro)),
                        bound=bound,
                        bound_loose=bound,
                        bound_ratio=delta / bound,
                        **{"lambda": lam},
                        sigma_max=delta * 0.8,
                        dora_mag_drift=0.01 * t if method == "dora" else np.nan,
                    )
                )
    df = pd.DataFrame(rows)
    return df if run_column else df.drop(columns="run")


def history_frame(runs=("lora", "dora", "delora"), steps=STEPS):
    rows = []
    for k, run in enumerate(runs):
        for step in range(steps):
            ev = 0.3 + 0.03 * step + 0.01 * k if step % 5 == 4 else np.nan
            rows.append(
                dict(
                    run=run,
                    method=run,
                    step=step,
                    loss=2.0 * np.exp(-step / 8) + 0.05 * np.sin(step + k),
                    lr=1e-3,
                    eval_metric=ev,
                    eval_name="accuracy",
                )
            )
    return pd.DataFrame(rows)


def sweep_frame():
    rows = []
    for method in ("lora", "dora", "delora"):
        for mult in (0.1, 1.0, 10.0, 100.0):
            div = method != "delora" and mult == 100.0
            rows.append(
                dict(
                    method=method,
                    lr_multiplier=mult,
                    lr=1e-3 * mult,
                    final_distance=np.nan if div else (0.5 if method == "delora" else 0.1 * mult),
                    eval_metric=np.nan if div else 0.8,
                    eval_name="accuracy",
                    diverged=div,
                )
            )
    return pd.DataFrame(rows)


def render(fig):
    assert isinstance(fig, Figure)
    buf = BytesIO()
    fig.savefig(buf, format="png")
    assert buf.tell() > 1000
    return fig


def lines_by_gid(fig, gid):
    """Lines whose gid is ``gid``, or starts with it when ``gid`` ends with ':'."""
    match = (lambda g: g.startswith(gid)) if gid.endswith(":") else (lambda g: g == gid)
    return [ln for ax in fig.axes for ln in ax.get_lines() if match(ln.get_gid() or "")]


def test_method_color_fixed_and_fallback():
    assert set(METHOD_COLORS) == {"lora", "rslora", "dora", "delora", "delora-fixed-lambda", "delora-paper"}
    assert len(set(METHOD_COLORS.values())) == len(METHOD_COLORS)  # one colour each
    assert method_color("delora") == METHOD_COLORS["delora"]
    assert method_color("delora@lr x10") == METHOD_COLORS["delora"]
    assert method_color("DeLoRA-paper") == METHOD_COLORS["delora-paper"]
    assert method_color("rslora") == METHOD_COLORS["rslora"]
    assert method_color("something else") == method_color("something else")  # stable
    assert method_color("something else") not in METHOD_COLORS.values()


def test_update_norm_bound_above_norm():
    fig = render(plot_update_norm(tracker_frame()))
    ax = fig.axes[0]
    (bound,) = lines_by_gid(fig, "bound-mean:delora")
    (norm,) = lines_by_gid(fig, "norm:delora")
    assert bound.get_label() == "DeLoRA bound"  # plain words
    assert np.array_equal(bound.get_xdata(), norm.get_xdata())
    assert np.all(np.asarray(bound.get_ydata()) >= np.asarray(norm.get_ydata()))
    (worst_b,) = lines_by_gid(fig, "bound-worst:delora")
    (worst_n,) = lines_by_gid(fig, "norm-worst:delora")
    assert np.all(np.asarray(worst_b.get_ydata()) >= np.asarray(worst_n.get_ydata()))
    # lora and dora: one norm line each, no bound
    assert not lines_by_gid(fig, "bound-mean:lora") and lines_by_gid(fig, "norm:lora")
    assert len(ax.get_lines()) == 3 + 3  # 3 norms + (mean bound, worst norm, worst bound)
    assert "Frobenius" in ax.get_ylabel()


def test_update_norm_worst_layer_is_highest_ratio():
    df = tracker_frame(methods=("delora",))
    last = df[df.step == STEPS - 1]
    expected = last.loc[(last.delta_fro / last.bound).idxmax(), "layer"]
    fig = plot_update_norm(df)
    (worst,) = lines_by_gid(fig, "norm-worst:delora")
    assert short_layer(expected, 28) in worst.get_label()


def test_without_run_column_groups_by_method():
    fig = render(plot_update_norm(tracker_frame(run_column=False)))
    assert {ln.get_gid() for ln in lines_by_gid(fig, "norm:")} == {"norm:lora", "norm:dora", "norm:delora"}


def test_runs_of_same_method_get_shades():
    a, b = tracker_frame(methods=("delora",)), tracker_frame(methods=("delora",))
    b["run"] = "delora@lr x10"
    fig = plot_update_norm(pd.concat([a, b]), show_worst_layer=False)
    c1, c2 = (lines_by_gid(fig, f"norm:{r}")[0].get_color() for r in ("delora", "delora@lr x10"))
    assert c1 == METHOD_COLORS["delora"].lower() and c2 != c1


def test_ax_argument_draws_into_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_update_norm(tracker_frame(), ax=ax) is fig and len(ax.get_lines()) == 6
    for fn in (plot_angles, plot_lambda, plot_bound_heatmap):
        f2 = Figure()
        a2 = f2.add_subplot()
        assert fn(tracker_frame(), ax=a2) is f2
        assert a2.get_lines() or a2.images
        render(f2)
    f3 = Figure()
    a3 = f3.add_subplot()
    assert plot_loss(history_frame(), ax=a3) is f3 and len(f3.axes) == 2  # twin axis for eval
    render(f3)
    f4 = Figure()
    a4 = f4.add_subplot()
    assert plot_lr_sweep(sweep_frame(), ax=a4) is f4 and len(f4.axes) == 1
    f5 = Figure()
    a5 = f5.add_subplot()
    assert plot_singular_values([3, 2, 1], ax=a5) is f5 and len(a5.get_lines()) == 1


def test_angles_two_panels():
    fig = render(plot_angles(tracker_frame()))
    assert len(fig.axes) == 2
    assert [len(ax.get_lines()) for ax in fig.axes] == [3 + 1, 3]  # + the 90 deg reference line
    assert all("degrees" in ax.get_ylabel() for ax in fig.axes)
    # NaN angle at step 0 is skipped, not drawn as NaN
    assert all(np.isfinite(ln.get_ydata()).all() for ln in fig.axes[0].get_lines())


def test_lambda_only_runs_with_lambda_and_error_without():
    fig = render(plot_lambda(tracker_frame()))
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 1 and ax.get_lines()[0].get_color() == METHOD_COLORS["delora"].lower()
    assert len(ax.collections) == 1  # min-max band
    with pytest.raises(ValueError, match="lambda"):
        plot_lambda(tracker_frame(methods=("lora", "dora")))


def test_loss_raw_smoothed_and_eval_panel():
    fig = render(plot_loss(history_frame()))
    assert len(fig.axes) == 2
    assert len(fig.axes[0].get_lines()) == 6  # raw + smoothed per run
    assert len(fig.axes[1].get_lines()) == 3 and fig.axes[1].get_ylabel() == "accuracy"
    no_eval = history_frame().assign(eval_metric=np.nan)
    assert len(render(plot_loss(no_eval)).axes) == 1


def test_bound_heatmap_shapes_and_labels():
    df = tracker_frame()
    fig = render(plot_bound_heatmap(df))
    ax = fig.axes[0]
    img = ax.images[0]
    assert img.get_array().shape == (len(LAYERS), STEPS)
    assert "bound" in fig.axes[-1].get_ylabel()  # colourbar
    assert "delora" in ax.get_title()
    fig = render(plot_bound_heatmap(df, run="lora"))
    assert "W" in fig.axes[-1].get_ylabel() and "bound" not in fig.axes[-1].get_ylabel()
    ratio = fig.axes[0].images[0].get_array()
    assert np.allclose(ratio[0], df[(df.run == "lora") & (df.layer == LAYERS[0])].rel_delta)
    with pytest.raises(ValueError, match="no rows with run 'nope'"):
        plot_bound_heatmap(df, run="nope")
    # first run picked when none has a bound
    assert "lora" in plot_bound_heatmap(tracker_frame(methods=("lora", "dora"))).axes[0].get_title()


def test_angle_strength_polar_with_bound_circle():
    fig = render(plot_angle_strength(tracker_frame(methods=("lora", "delora", "delora-paper"))))
    ax = fig.axes[0]
    assert ax.name == "polar"
    (circle,) = lines_by_gid(fig, "bound:delora")
    df = tracker_frame(methods=("delora",))
    last = df[df.step == STEPS - 1]
    assert np.allclose(circle.get_ydata(), (last.bound / last.w_fro).mean())
    assert lines_by_gid(fig, "bound:delora-paper") and not lines_by_gid(fig, "bound:lora")
    (path,) = lines_by_gid(fig, "path:delora")
    assert np.all(np.asarray(path.get_xdata()) <= np.pi)  # radians, angles 0..180 deg
    flat = Figure().add_subplot()
    with pytest.raises(ValueError, match="polar"):
        plot_angle_strength(df, ax=flat)
    polar = Figure().add_subplot(projection="polar")
    assert plot_angle_strength(df, ax=polar) is polar.figure


def test_lr_sweep_panels_and_diverged_markers():
    fig = render(plot_lr_sweep(sweep_frame()))
    assert len(fig.axes) == 2
    assert all(ax.get_xscale() == "log" for ax in fig.axes)
    diverged = lines_by_gid(fig, "diverged")
    assert len(diverged) == 4 and all(ln.get_marker() == "x" for ln in diverged)  # lora+dora, 2 panels
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "diverged (loss NaN)" in labels and {"LoRA", "DoRA", "DeLoRA"} <= set(labels)  # plain names
    with pytest.raises(ValueError, match="lr_multiplier"):
        plot_lr_sweep(sweep_frame().assign(lr_multiplier=0.0))


def test_singular_values_dict_sorted_log():
    fig = render(plot_singular_values({"lora": [0.1, 2.0, 0.0, 1.0], "delora": np.array([1.0, 0.5])}))
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and len(ax.get_lines()) == 2
    assert list(ax.get_lines()[0].get_ydata()) == [2.0, 1.0, 0.1, 0.0]
    assert ax.get_lines()[1].get_color() == METHOD_COLORS["delora"].lower()
    render(plot_singular_values(np.zeros(3), label="lora"))  # all zero: linear axis, no crash
    with pytest.raises(ValueError, match="no singular values"):
        plot_singular_values({})


@pytest.mark.parametrize(
    "fn",
    [plot_update_norm, plot_angles, plot_lambda, plot_bound_heatmap, plot_angle_strength, plot_loss, plot_lr_sweep],
)
def test_empty_frame_raises(fn):
    with pytest.raises(ValueError, match="empty"):
        fn(pd.DataFrame())


def test_missing_column_is_named():
    with pytest.raises(ValueError, match="delta_fro"):
        plot_update_norm(tracker_frame().drop(columns="delta_fro"))
    with pytest.raises(ValueError, match="loss"):
        plot_loss(history_frame().drop(columns="loss"))


def test_nan_heavy_data_does_not_crash():
    df = tracker_frame()
    df.loc[df.sample(frac=0.3, random_state=0).index, ["delta_fro", "rel_delta", "angle_delta_w_deg", "bound"]] = np.nan
    df.loc[df.step == 0, "bound"] = 0.0  # ratio 0/0 and x/0 at the first step
    for fn in (plot_update_norm, plot_angles, plot_lambda, plot_bound_heatmap, plot_angle_strength):
        render(fn(df))
    h = history_frame()
    h.loc[::3, "loss"] = np.nan
    render(plot_loss(h))


def test_save_figures_writes_pngs(tmp_path):
    figs = {"update norm": plot_update_norm(tracker_frame()), "loss.png": plot_loss(history_frame())}
    paths = save_figures(figs, tmp_path / "out")
    assert [p.name for p in paths] == ["update_norm.png", "loss.png"]
    assert all(p.exists() and p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG" for p in paths)


# ---- live frames -----------------------------------------------------------------------------


def test_live_frame_norm_has_bound_series_and_means():
    df = tracker_frame()
    frame = live_frame(df, "delta_fro")
    assert list(frame.columns) == ["step", "value", "series"]
    assert set(frame.series) == {"lora ||dW||", "dora ||dW||", "delora ||dW||", "delora bound"}
    norm = frame[frame.series == "delora ||dW||"].set_index("step").value
    bound = frame[frame.series == "delora bound"].set_index("step").value
    assert (bound >= norm).all()
    assert np.allclose(norm.to_numpy(), df[df.run == "delora"].groupby("step").delta_fro.mean().to_numpy())
    colors = live_colors(frame, df)
    assert colors["delora ||dW||"] == METHOD_COLORS["delora"].lower() != colors["delora bound"]


@pytest.mark.parametrize("metric", ["angle_delta_w_deg", "rel_delta", "lambda"])
def test_live_frame_other_metrics(metric):
    frame = live_frame(tracker_frame(), metric)
    expected = {"delora"} if metric == "lambda" else {"lora", "dora", "delora"}
    assert set(frame.series) == expected and frame.value.notna().all()


def test_live_frame_downsamples_and_keeps_last_step():
    df = tracker_frame(steps=1000, layers=LAYERS[:1])
    for max_points in (1, 7, 300):
        frame = live_frame(df, "delta_fro", max_points=max_points)
        for _, rows in frame.groupby("series"):
            assert 1 <= len(rows) <= max_points and rows.step.max() == 999 and rows.step.is_monotonic_increasing
    assert len(live_frame(df, "delta_fro", max_points=2000)) == 4 * 1000  # no downsampling needed


def test_live_frames_empty_and_errors():
    assert list(live_frame(pd.DataFrame(), "delta_fro").columns) == ["step", "value", "series"]
    assert live_frame(tracker_frame(methods=("lora",)), "lambda").empty
    assert live_loss_frame(pd.DataFrame()).empty
    with pytest.raises(ValueError, match="unknown metric"):
        live_frame(tracker_frame(), "nope")
    with pytest.raises(ValueError, match="max_points"):
        live_frame(tracker_frame(), "delta_fro", max_points=0)
    with pytest.raises(ValueError, match="angle_delta_w_deg"):
        live_frame(tracker_frame().drop(columns="angle_delta_w_deg"), "angle_delta_w_deg")


def test_live_loss_frame():
    h = history_frame(steps=500)
    frame = live_loss_frame(h, max_points=50)
    assert set(frame.series) == {"lora", "dora", "delora"}
    assert all(len(r) <= 50 and r.step.max() == 499 for _, r in frame.groupby("series"))


def turn_history():
    """Two layers of LoRA and DeLoRA over steps 0..3 with known turns, norms and ceilings."""
    rows = []
    turns = {0: [np.nan, np.nan, 10.0, 5.0], 1: [np.nan, np.nan, 30.0, 1.0]}
    for method in ("lora", "delora"):
        for li in (0, 1):
            for step in range(4):
                delta = 0.0 if step == 0 else 1.0 + step * (li + 1) * (method == "lora")
                ceiling = 8.0 - step if method == "delora" else np.nan
                rows.append(
                    dict(step=step, layer=f"l{li}", method=method, delta_fro=delta, w_fro=10.0 * (li + 1),
                         turn_deg=turns[li][step], bound_loose=ceiling, angle_delta_w_deg=90.0 + li - step / 10)
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_direction_strength_table_by_hand():
    from delora_viz.plots.figures import direction_strength_table

    table = direction_strength_table(turn_history()).set_index(["method", "step"])
    # turned: running sum per layer (NaN counts 0), then the mean over the two layers
    assert table.loc[("lora", 3), "turned_deg"] == pytest.approx(((10 + 5) + (30 + 1)) / 2)
    assert table.loc[("lora", 2), "turned_deg"] == pytest.approx((10 + 30) / 2)
    assert table.loc[("lora", 1), "turned_deg"] == 0
    # strength over ||W||: layer 0 has ||W|| 10, layer 1 has 20
    assert table.loc[("lora", 2), "rel_delta"] == pytest.approx(((1 + 2) / 10 + (1 + 4) / 20) / 2)
    assert table.loc[("delora", 3), "to_ceiling"] == pytest.approx(1 / 5)
    assert table.loc[("delora", 3), "ceiling_rel"] == pytest.approx((5 / 10 + 5 / 20) / 2)
    assert table.loc["lora", "ceiling_rel"].isna().all() and table.loc["lora", "to_ceiling"].isna().all()
    with pytest.raises(ValueError, match="turn_deg"):
        direction_strength_table(turn_history().drop(columns="turn_deg"))
    # a turn away from a rounding-size update (DoRA's start: ||dW|| / ||W|| ~ 1e-8) is no turn
    noisy = turn_history()
    noisy.loc[noisy["step"] == 0, "delta_fro"] = 1e-7  # ||W|| is 10 or 20: 1e-8 relative
    noisy.loc[noisy["step"] == 1, "turn_deg"] = 90.0
    again = direction_strength_table(noisy).set_index(["method", "step"])
    assert again.loc[("lora", 3), "turned_deg"] == pytest.approx(table.loc[("lora", 3), "turned_deg"])
    noisy.loc[noisy["step"] == 0, "delta_fro"] = 1e-3  # a real (small) update: its turn counts
    again = direction_strength_table(noisy).set_index(["method", "step"])
    assert again.loc[("lora", 3), "turned_deg"] == pytest.approx(table.loc[("lora", 3), "turned_deg"] + 90)


def test_direction_and_strength_draws_the_table_with_distinct_styles():
    from delora_viz.plots.figures import direction_strength_table, plot_direction_and_strength

    df = turn_history()
    fig = render(plot_direction_and_strength(df, title="what to notice"))
    table = direction_strength_table(df)
    for method in ("lora", "delora"):
        rows = table[table["method"] == method]
        (turned,) = lines_by_gid(fig, f"turned:{method}")
        (strength,) = lines_by_gid(fig, f"strength:{method}")
        np.testing.assert_allclose(turned.get_ydata(), rows["turned_deg"])
        np.testing.assert_allclose(strength.get_ydata(), rows["rel_delta"])
    (ceiling,) = lines_by_gid(fig, "ceiling:delora")
    np.testing.assert_allclose(ceiling.get_ydata(), table[table["method"] == "delora"]["ceiling_rel"])
    assert not lines_by_gid(fig, "ceiling:lora")
    lora, delora = lines_by_gid(fig, "turned:lora")[0], lines_by_gid(fig, "turned:delora")[0]
    assert lora.get_marker() != delora.get_marker()  # a line on top of another stays visible
    assert lora.get_label() == "LoRA" and delora.get_label() == "DeLoRA"  # plain words
    # DeLoRA reaches its final strength at step 1: the jump is marked
    assert any("jump at step 1" in t.get_text() for ax in fig.axes for t in ax.texts)
    assert fig._suptitle.get_text() == "what to notice"


def test_angle_to_w_wide_range_and_band():
    from delora_viz.plots.figures import plot_angle_to_w

    df = turn_history()
    fig = render(plot_angle_to_w(df, random_band=(89.5, 90.5)))
    ax = fig.axes[0]
    assert ax.get_ylim() == (45.0, 135.0)  # sub-degree noise is not magnified
    (line,) = lines_by_gid(fig, "angle:delora")
    expected = df[df.method == "delora"].groupby("step")["angle_delta_w_deg"].mean()
    np.testing.assert_allclose(line.get_ydata(), expected.to_numpy())
    assert any("random directions" in t.get_text() for t in ax.get_legend().get_texts())
    noisy = df.copy()
    noisy.loc[noisy["step"] == 0, ["delta_fro", "angle_delta_w_deg"]] = (1e-7, 150.0)  # rounding, no direction
    noisy["rel_delta"] = noisy["delta_fro"] / noisy["w_fro"]
    (line,) = lines_by_gid(plot_angle_to_w(noisy), "angle:delora")
    np.testing.assert_allclose(line.get_ydata(), expected.loc[1:].to_numpy())  # step 0 skipped
