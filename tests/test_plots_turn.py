"""Plots that teach: the turn view (direction turned vs strength), what the heatmap says it shows, the
bound's colour and the palette. Synthetic frames with dense updates as the reference; no torch."""

import itertools

import numpy as np
import pandas as pd
import pytest

from delora_viz.plots import plot_bound_heatmap, plot_turn_strength
from delora_viz.plots.frames import METHOD_COLORS, NO_TURN, bound_color, live_colors, turn_frame

LAYERS = ("q", "v")


def dense_history(methods=("lora", "delora"), steps=6, seed=0):
    """Tracker-like rows from explicit dense updates dW_t (m x n): the reference numbers are computed from
    those matrices (fp64 inner products, arccos), never from the code under test."""
    rng = np.random.default_rng(seed)
    rows, dense = [], {}
    for method in methods:
        for layer in LAYERS:
            W = rng.normal(size=(12, 10))
            cap = 3.0  # a DeLoRA-like bound: ||dW|| <= cap
            prev = None
            for step in range(steps):
                U, V = rng.normal(size=(12, 2)), rng.normal(size=(10, 2))
                dW = U @ V.T
                if method == "delora":
                    dW *= cap * 0.8 / np.linalg.norm(dW)  # strength fixed, direction turning
                else:
                    dW *= 0.1 * (step + 1) / np.linalg.norm(dW)  # LoRA: strength grows
                turn = np.nan
                if prev is not None:
                    cos = np.sum(dW * prev) / (np.linalg.norm(dW) * np.linalg.norm(prev))
                    turn = np.degrees(np.arccos(np.clip(cos, -1, 1)))
                dense[(method, layer, step)] = dW
                rows.append(
                    dict(
                        run=method,
                        method=method,
                        layer=layer,
                        step=step,
                        delta_fro=np.linalg.norm(dW),
                        w_fro=np.linalg.norm(W),
                        bound=cap if method == "delora" else np.nan,
                        turn_deg=turn,
                    )
                )
                prev = dW
    return pd.DataFrame(rows), dense


def _angle(a, b):
    return np.degrees(np.arccos(np.clip(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1)))


def test_turn_frame_is_the_running_sum_of_turns_and_the_strength_ratio():
    df, dense = dense_history()
    frame = turn_frame(df.sample(frac=1, random_state=1))  # row order must not matter
    for method, step in itertools.product(("lora", "delora"), range(6)):
        got = frame[(frame["run"] == method) & (frame["step"] == step)].iloc[0]
        turned, strength = [], []
        for layer in LAYERS:  # plain loops over the dense updates
            turned.append(
                sum(_angle(dense[(method, layer, s)], dense[(method, layer, s - 1)]) for s in range(1, step + 1))
            )
            dW = dense[(method, layer, step)]
            strength.append(
                np.linalg.norm(dW) / (3.0 if method == "delora" else df["w_fro"][df["layer"] == layer].iloc[0])
            )
        assert got["turned_deg"] == pytest.approx(np.mean(turned), rel=1e-9, abs=1e-9)
        assert got["strength"] == pytest.approx(np.mean(strength), rel=1e-9)
        assert bool(got["bounded"]) == (method == "delora")
        direct = [_angle(dense[(method, layer, step)], dense[(method, layer, 0)]) for layer in LAYERS]
        assert np.mean(turned) + 1e-5 >= np.mean(direct)  # a path on the sphere is at least the direct angle
    delora = frame[frame["run"] == "delora"]
    assert delora["strength"].max() <= 1.0 and delora["turned_deg"].iloc[-1] > 100  # capped, still turning


def test_turn_view_draws_bounded_and_unbounded_runs_with_their_labels():
    df, _ = dense_history()
    fig = plot_turn_strength(df)
    ax = fig.axes[0]
    lines = {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}
    assert lines["turn:delora"].get_label() == "delora: ‖ΔW‖ / bound"
    assert lines["turn:lora"].get_label() == "lora: ‖ΔW‖ / ‖W‖ (no bound)"
    # told apart by line style as well as colour (LoRA's and DoRA's lines often overlap)
    assert lines["turn:lora"].get_linewidth() > lines["turn:delora"].get_linewidth()
    bound = lines["bound-line"]
    assert bound.get_linestyle() == "--" and set(bound.get_ydata()) == {1.0}
    assert "turned" in ax.get_xlabel() and ax.get_legend() is not None
    assert "mean over layers" in ax.get_title()
    one = plot_turn_strength(df[df["layer"] == df["layer"].iloc[0]]).axes[0].get_title()
    assert "mean over layers" not in one and "layer" in one  # a layer view says which layer


def test_histories_without_turn_deg_say_so():
    df, _ = dense_history()
    old = df.drop(columns="turn_deg")
    with pytest.raises(ValueError, match="no 'turn_deg' column"):
        turn_frame(old)
    with pytest.raises(ValueError) as err:
        plot_turn_strength(old)
    assert str(err.value) == NO_TURN and "train again" in NO_TURN


def test_heatmap_title_says_what_it_shows_per_method():
    df, _ = dense_history()
    assert "bound" in plot_bound_heatmap(df, run="delora").axes[0].get_title()
    lora = plot_bound_heatmap(df, run="lora").axes[0].get_title()
    assert "‖ΔW‖ / ‖W‖" in lora and "no bound" in lora


# ----------------------------------------------------------------------------- colours
def _lab(hex_color, M):
    """CIELAB of a colour seen through a colour-vision matrix M (Machado et al. 2009, severity 1)."""
    c = np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)]) / 255
    linear = np.clip(M @ np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4), 0, 1)
    rgb_to_xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = rgb_to_xyz @ linear / np.array([0.95047, 1.0, 1.08883])  # D65 white
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


VISION = {
    "normal": np.eye(3),
    "deutan": np.array(
        [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.01182, 0.04294, 0.968881]]
    ),
    "protan": np.array(
        [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]]
    ),
    "tritan": np.array(
        [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.3039]]
    ),
}


def test_the_four_methods_are_told_apart_in_every_colour_vision():
    app = ["lora", "dora", "delora", "delora-paper"]
    for (a, b), (name, M) in itertools.product(itertools.combinations(app, 2), VISION.items()):
        distance = np.linalg.norm(_lab(METHOD_COLORS[a], M) - _lab(METHOD_COLORS[b], M))
        assert distance >= 30, (a, b, name, distance)


def test_bounds_are_darker_and_dashed_by_the_app_css():
    frame = pd.DataFrame({"step": [1, 1], "value": [0.5, 1.0], "series": ["delora ||dW||", "delora bound"]})
    colors = live_colors(frame)
    assert colors["delora ||dW||"] == METHOD_COLORS["delora"] and colors["delora bound"] == bound_color(
        METHOD_COLORS["delora"]
    )
    light = lambda h: sum(int(h[i : i + 2], 16) for i in (1, 3, 5))  # noqa: E731
    assert light(colors["delora bound"]) < light(colors["delora ||dW||"])
    from delora_viz.app.layout import CSS

    assert f'path[stroke="{colors["delora bound"]}"]' in CSS and "stroke-dasharray" in CSS
