"""Data side of the plots (pure pandas, no matplotlib): method colours, runs, per-step means,
and long-format frames for live plots (Gradio's ``gr.LinePlot(x="step", y="value", color="series")``).

``figures.py`` draws the static figures from the same helpers. Live frames are cheap enough to
rebuild after every training step (a ``gr.LinePlot`` redraws in a few ms where a matplotlib
figure costs ~100 ms). Each has the columns ``step``, ``value``, ``series``, holds means over
layers, and keeps at most ``max_points`` evenly spaced rows per series (always the last one).
An empty input gives an empty frame, so the app can call these
before the first step; a metric with no data (``lambda`` of a LoRA-only run) does too.

    frame = live_frame(tracker_df, "delta_fro")
    gr.LinePlot(frame, x="step", y="value", color="series", color_map=live_colors(frame, tracker_df))
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import pandas as pd

# Colour-blind-safe colours from Paul Tol's and Okabe-Ito's palettes, one fixed colour per method, chosen so
# the four methods of the app stay apart (CIELAB distance >= 35) for normal, deutan, protan and tritan
# vision (tests/test_plots_turn.py simulates them). Okabe-Ito's blue / bluish green / vermillion / purple
# set fell to 17 there: LoRA and DoRA looked alike.
METHOD_COLORS = {
    "lora": "#332288",  # indigo
    "rslora": "#117733",  # green
    "dora": "#ee3377",  # magenta
    "delora": "#e69f00",  # orange
    "delora-paper": "#33bbee",  # cyan
    "delora-fixed-lambda": "#882255",  # wine
}
# Line style and marker per method, so lines that overlap (LoRA and DoRA often do) stay apart without
# colour: LoRA thick and solid with big dots under DoRA's dotted line with small squares.
METHOD_STYLES = {
    "lora": dict(ls="-", marker="o", lw=3.2, ms=7),
    "rslora": dict(ls="-", marker="P", lw=2.0, ms=6),
    "dora": dict(ls=":", marker="s", lw=1.8, ms=4),
    "delora": dict(ls="-", marker="D", lw=1.8, ms=5),
    "delora-paper": dict(ls="--", marker="^", lw=1.8, ms=5),
    "delora-fixed-lambda": dict(ls="-.", marker="v", lw=1.8, ms=5),
}
_FALLBACK_COLORS = ("#e69f00", "#000000", "#999999", "#f0e442")  # orange, black, grey, yellow


def bound_color(color: str) -> str:
    """A bound's colour: its method's, darker (the app dashes lines of exactly this colour with CSS)."""
    rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c * 0.55):02x}" for c in rgb)


def method_color(name: str) -> str:
    """Colour of a method or of a run label naming one ("delora@lr x10" -> delora's colour).

    Matches the longest known method name appearing as a word in ``name`` (case-insensitive);
    unknown labels get a stable colour from the rest of the Okabe-Ito palette.
    """
    low = str(name).lower()
    for key in sorted(METHOD_COLORS, key=len, reverse=True):
        if re.search(rf"(?<![a-z]){re.escape(key)}(?![a-z])", low):
            return METHOD_COLORS[key]
    return _FALLBACK_COLORS[zlib.crc32(low.encode()) % len(_FALLBACK_COLORS)]


def method_style(name: str) -> dict:
    """matplotlib kwargs (ls, marker, lw, ms) for a run named after its method (matched as method_color does)."""
    low = str(name).lower()
    for key in sorted(METHOD_STYLES, key=len, reverse=True):
        if re.search(rf"(?<![a-z]){re.escape(key)}(?![a-z])", low):
            return dict(METHOD_STYLES[key])
    return dict(ls="-", marker="o", lw=1.8, ms=4)


def require_rows(df: pd.DataFrame, columns, what: str) -> None:
    """ValueError naming ``what`` if ``df`` is empty or lacks one of ``columns``."""
    if df is None or len(df) == 0:
        raise ValueError(f"{what}: the frame is empty (no rows to plot)")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; got {list(df.columns)}")


def run_labels(df: pd.DataFrame) -> pd.Series:
    """The run label of each row: ``run`` when present (gaps filled by ``method``), else ``method``."""
    if "run" in df.columns:
        return df["run"].fillna(df.get("method", "run")).astype(str)
    return df["method"].astype(str)


def iter_runs(df: pd.DataFrame):
    """Yield ``(run, method, rows, colour)`` in order of first appearance.

    Runs sharing a method get progressively lighter shades of the method colour.
    """
    labels = run_labels(df)
    seen: dict[str, int] = {}
    for run in pd.unique(labels):
        rows = df[labels == run]
        method = str(rows["method"].iloc[0]) if "method" in rows.columns else run
        k = seen[method] = seen.get(method, -1) + 1
        yield run, method, rows, shade(method_color(method), 0.3 * min(k, 2))


def shade(color: str, amount: float) -> str:
    """``color`` ("#rrggbb") mixed with white: amount 0 keeps it, 1 gives white."""
    rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in rgb)


def numeric(rows: pd.DataFrame, col: str) -> pd.Series:
    """Column ``col`` as floats, with anything non-numeric or infinite turned into NaN."""
    return pd.to_numeric(rows[col], errors="coerce").astype(float).replace([np.inf, -np.inf], np.nan)


def has_values(rows: pd.DataFrame, col: str) -> bool:
    """True if column ``col`` exists and holds at least one finite value (bound/lambda: DeLoRA only)."""
    return col in rows.columns and bool(numeric(rows, col).notna().any())


def mean_by_step(rows: pd.DataFrame, col: str) -> pd.Series:
    """Mean over layers of ``col`` per step (NaNs skipped), indexed by step."""
    return numeric(rows, col).groupby(rows["step"]).mean().dropna().sort_index()


def worst_layer(rows: pd.DataFrame) -> str | None:
    """The layer of one run closest to its bound (max delta_fro / bound) at the last step that has one."""
    if not has_values(rows, "bound") or "layer" not in rows.columns:
        return None
    ratio = (numeric(rows, "delta_fro") / numeric(rows, "bound")).replace([np.inf, -np.inf], np.nan).dropna()
    if ratio.empty:
        return None
    steps = rows.loc[ratio.index, "step"]
    return rows.loc[ratio[steps == steps.max()].idxmax(), "layer"]


def layer_step_table(rows: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """Layer x step table for one run: delta_fro / bound when it has a bound (flag True),
    else rel_delta = delta_fro / w_fro (flag False). Layers in order of first appearance."""
    bounded = has_values(rows, "bound")
    if bounded:
        value = numeric(rows, "delta_fro") / numeric(rows, "bound")
    elif "rel_delta" in rows.columns or "w_fro" in rows.columns:
        value = (
            numeric(rows, "rel_delta")
            if "rel_delta" in rows.columns
            else numeric(rows, "delta_fro") / numeric(rows, "w_fro")
        )
    else:
        raise ValueError("no 'bound', 'rel_delta' or 'w_fro' column to normalise delta_fro by")
    table = pd.DataFrame(
        {"layer": rows["layer"], "step": rows["step"], "v": value.replace([np.inf, -np.inf], np.nan)}
    ).pivot_table(index="layer", columns="step", values="v", aggfunc="mean", dropna=False, sort=False)
    return table.reindex(index=pd.unique(rows["layer"]), columns=sorted(table.columns)), bounded


def short_layer(name: str, width: int = 38) -> str:
    """A readable layer name from the block index on ("layer.1.attention.self.value"), tail-cut."""
    parts = str(name).split(".")
    first_digit = next((k for k, p in enumerate(parts) if p.isdigit()), 0)
    name = ".".join(parts[max(first_digit - 1, 0) :])
    return name if len(name) <= width else "…" + name[-(width - 1) :]


# ---- long frames for gr.LinePlot ------------------------------------------------------------

FRAME_METRICS = ("delta_fro", "angle_delta_w_deg", "lambda", "rel_delta")
LONG_COLUMNS = ("step", "value", "series")


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {"step": pd.Series(dtype="int64"), "value": pd.Series(dtype=float), "series": pd.Series(dtype=str)}
    )


def _series(values: pd.Series, name: str, max_points: int) -> pd.DataFrame:
    """One series as long rows, downsampled evenly to <= max_points, keeping the last point."""
    values = values.dropna()
    if len(values) > max_points:
        keep = np.unique(np.linspace(len(values) - 1, 0, max_points).round().astype(int))
        values = values.iloc[keep]
    return pd.DataFrame({"step": values.index.to_numpy(), "value": values.to_numpy(dtype=float), "series": name})


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else _empty()


def _check(max_points: int) -> None:
    if int(max_points) < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")


def live_frame(tracker_df: pd.DataFrame, metric: str, max_points: int = 300) -> pd.DataFrame:
    """Mean over layers of one tracker metric per run, as (step, value, series) rows.

    ``metric``: "delta_fro" (series "<run> ||dW||", plus "<run> bound" for runs with a bound),
    "angle_delta_w_deg" (degrees), "lambda" (only runs that have one) or "rel_delta"
    (||dW||_F / ||W||_F); for these three, series = run label.
    """
    if metric not in FRAME_METRICS:
        raise ValueError(f"live_frame: unknown metric {metric!r}; choose one of {FRAME_METRICS}")
    _check(max_points)
    if tracker_df is None or len(tracker_df) == 0:
        return _empty()
    missing = [c for c in ("step", "method", metric) if c not in tracker_df.columns]
    if missing:
        raise ValueError(f"live_frame: tracker frame is missing column(s) {missing}")
    parts = []
    for run, _, rows, _ in iter_runs(tracker_df):
        if metric == "delta_fro":
            parts.append(_series(mean_by_step(rows, metric), f"{run} ||dW||", max_points))
            if has_values(rows, "bound"):
                parts.append(_series(mean_by_step(rows, "bound"), f"{run} bound", max_points))
        elif has_values(rows, metric):
            parts.append(_series(mean_by_step(rows, metric), run, max_points))
    return _concat(parts)


def live_loss_frame(history_df: pd.DataFrame, max_points: int = 300) -> pd.DataFrame:
    """Training loss per run as (step, value, series = run) rows, downsampled like ``live_frame``."""
    _check(max_points)
    if history_df is None or len(history_df) == 0:
        return _empty()
    missing = [c for c in ("step", "method", "loss") if c not in history_df.columns]
    if missing:
        raise ValueError(f"live_loss_frame: history frame is missing column(s) {missing}")
    return _concat([_series(mean_by_step(rows, "loss"), run, max_points) for run, _, rows, _ in iter_runs(history_df)])


def live_colors(frame: pd.DataFrame, source_df: pd.DataFrame | None = None) -> dict[str, str]:
    """``color_map`` for gr.LinePlot: each series of ``frame`` in its run's colour, bounds darker (dashed by CSS).

    Pass the tracker/history frame as ``source_df`` to colour runs by their ``method`` column
    (as the matplotlib figures do); without it the method is guessed from the run label.
    """
    runs = {run: color for run, _, _, color in iter_runs(source_df)} if source_df is not None and len(source_df) else {}
    colors = {}
    for s in pd.unique(frame["series"]):
        run = s.removesuffix(" bound").removesuffix(" ||dW||")
        color = runs.get(run) or method_color(run)
        colors[s] = bound_color(color) if s.endswith(" bound") else color
    return colors


NO_TURN = (
    "this history has no 'turn_deg' column (how far dW turned since the previous record); it was recorded "
    "by an older tracker: train again to see the turn view"
)


def turn_frame(tracker_df: pd.DataFrame) -> pd.DataFrame:
    """Direction turned vs strength, per run and step, means over layers.

    turned_deg = sum over records so far of turn_deg, the angle between dW at this record and at the
    previous one of the same layer (NaN at a layer's first record counts 0); strength = ||dW||_F / bound
    for runs with a bound (1 = at the bound), else ||dW||_F / ||W||_F (column ``bounded`` says which).
    ValueError when the tracker did not record turn_deg (older histories).
    """
    require_rows(tracker_df, ["step", "method", "layer", "delta_fro"], "turn_frame")
    if "turn_deg" not in tracker_df.columns:
        raise ValueError(NO_TURN)
    parts = []
    for run, method, rows, _ in iter_runs(tracker_df):
        rows = rows.sort_values("step", kind="stable")
        turned = numeric(rows, "turn_deg").fillna(0.0).groupby(rows["layer"]).cumsum()
        bounded = has_values(rows, "bound")
        norm = numeric(rows, "bound") if bounded else numeric(rows, "w_fro")
        strength = (numeric(rows, "delta_fro") / norm).replace([np.inf, -np.inf], np.nan)
        per_step = pd.DataFrame({"step": rows["step"], "turned_deg": turned, "strength": strength})
        means = per_step.groupby("step").mean().reset_index()
        parts.append(means.assign(run=run, method=method, bounded=bounded))
    return pd.concat(parts, ignore_index=True)[["run", "method", "step", "turned_deg", "strength", "bounded"]]
