"""The app's "Open" tab: runs and adapters from elsewhere, drawn with the app's figures.

    with gr.Tab("Open", id="open"):
        open_tab(allow_local_paths=False)       # inside an existing gr.Blocks

Upload one or more history files (#open-upload: delora_history.jsonl, a tracker CSV, the app's per-step log,
a Trainer's trainer_state.json for the loss) and see the `delora-viz plot` figures and a last-step table.
Where the app's path policy allows (the user's own machine), an adapter folder or cached Hub id can be
named too and is shown as `delora-viz inspect` shows it. Served beyond this machine: uploads only, and the
adapter handler refuses whatever it is sent, whether or not its widgets are shown.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import gradio as gr
import pandas as pd

SLOTS = 8  # figure slots: update_norm, angles, lambda, loss, direction, heatmaps of the first runs
TABLE_COLUMNS = (
    "run",
    "layer",
    "method",
    "rank",
    "step",
    "delta_fro",
    "rel_delta",
    "angle_delta_w_deg",
    "angle_w_prime_deg",
    "bound",
    "bound_ratio",
    "lambda",
    "sigma_max",
)
TITLES = {
    "update_norm": "update size vs bound",
    "angles": "angles",
    "lambda": "lambda",
    "loss": "loss",
    "direction": "direction vs strength",
    "layer_bars": "per-layer size vs bound",
    "layer_heatmap": "layer heatmaps",
    "spectrum": "spectrum",
}
NO_PATHS = (
    "Naming an adapter is off on this server (it is reachable beyond its own machine): upload history files "
    "instead, or run the app locally to inspect adapters."
)


# ----------------------------------------------------------------------------- what the events do (no widgets)
def histories_view(files) -> tuple[str, dict, pd.DataFrame]:
    """(status, {name: Figure}, last-step table) for uploaded files; a bad file gives a message, no figures."""
    from ..plots.runs import BadInputs, load_runs, run_figures

    paths = [Path(getattr(f, "name", f)) for f in files or []]
    if not paths:
        return "Upload one or more history files (.jsonl or .csv).", {}, pd.DataFrame()
    try:
        tracker_df, loss_df = load_runs(paths, _upload_labels(paths))
        figs = run_figures(tracker_df, loss_df)
    except BadInputs as bad:
        return "Could not read: " + "; ".join(f"`{_name(line)}`" for line in bad.lines), {}, pd.DataFrame()
    except ValueError as err:
        return f"Could not draw these files: {err}", {}, pd.DataFrame()
    runs = list(dict.fromkeys(tracker_df["run"].astype(str)))
    loss = "with loss" if "loss" in figs else "no loss (add trainer_state.json or the per-step log to see it)"
    status = f"{len(runs)} run(s): {', '.join(runs)}; {tracker_df['layer'].nunique()} layers; {loss}."
    return status, figs, last_step_table(tracker_df)


def adapter_view(spec: str, base_model: str, allow_local_paths: bool) -> tuple[str, dict, pd.DataFrame]:
    """(status, figures, per-layer table) for one adapter, only where the path policy allows naming one."""
    if not allow_local_paths:
        return NO_PATHS, {}, pd.DataFrame()
    if not (spec or "").strip():
        return "Name an adapter folder (with adapter_config.json) or a cached Hub id.", {}, pd.DataFrame()
    from ..plots.adapters import adapter_figures
    from ..training.load_adapter import inspect_adapter

    try:
        inspected = inspect_adapter(spec.strip(), (base_model or "").strip() or None, device="cpu")
    except (ValueError, FileNotFoundError, TypeError) as err:
        return f"Could not inspect: {err}", {}, pd.DataFrame()
    frame = inspected.frame
    status = f"{inspected.label}: {inspected.peft_type} adapter on {inspected.base_model}, {len(frame)} layers."
    table = frame.rename(columns={"adapter": "run"})
    return status, adapter_figures(frame), _rounded(table[[c for c in TABLE_COLUMNS if c in table.columns]])


def last_step_table(tracker_df: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, layer): its last record, 4 significant digits."""
    last = tracker_df[tracker_df["step"] == tracker_df.groupby("run")["step"].transform("max")]
    return _rounded(last[[c for c in TABLE_COLUMNS if c in last.columns]].reset_index(drop=True))


def _rounded(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].map(lambda v: None if pd.isna(v) else float(f"{v:.4g}"))
    return out.astype(object).where(out.notna(), None)


def _upload_labels(paths: list[Path]) -> list[str]:
    """Uploads sit in random folders: label by file name; trainer_state.json joins the only history."""
    stems = [p.stem for p in paths]
    histories = [s for p, s in zip(paths, stems) if p.name != "trainer_state.json"]
    return [histories[0] if p.name == "trainer_state.json" and len(histories) == 1 else s for p, s in zip(paths, stems)]


def _name(line: str) -> str:
    """An upload's error line without its server-side folder (never show server paths)."""
    head, _, rest = line.partition(": ")
    return f"{Path(head).name}: {rest}" if rest else line


# ----------------------------------------------------------------------------- widgets and wiring
def _outputs(result, slots: int = SLOTS):
    status, figs, table = result
    items = list(figs.items())[:slots]
    plots = [gr.update(value=fig, label=TITLES.get(name, name.replace("_", " ")), visible=True) for name, fig in items]
    plots += [gr.update(value=None, visible=False)] * (slots - len(items))
    return [status, *plots, gr.update(value=table, visible=not table.empty)]


def open_tab(allow_local_paths: bool = False) -> dict:
    """Build the tab's widgets and wire their events, inside the caller's gr.Blocks (and gr.Tab)."""
    c = {}
    gr.Markdown(
        "Runs and adapters from elsewhere. Upload tracker histories (`delora_history.jsonl` from "
        "`TrackerCallback`, a tracker CSV from this app or the CLI; add `trainer_state.json` or the per-step "
        "log for the loss): several files are overlaid, one run each."
        + (" Or name a saved PEFT adapter to measure it on its base model." if allow_local_paths else ""),
        elem_classes="explain",
    )
    c["upload"] = gr.File(
        label="history files (.jsonl, .csv, trainer_state.json)",
        file_count="multiple",
        file_types=[".jsonl", ".csv", ".json"],
        elem_id="open-upload",
    )
    with gr.Row(equal_height=False, visible=allow_local_paths):
        c["adapter"] = gr.Textbox(label="adapter folder or Hub id", scale=3, elem_id="open-adapter")
        c["base"] = gr.Textbox(label="base model (default: from adapter_config.json)", scale=2)
        c["inspect"] = gr.Button("Inspect adapter", scale=1, variant="primary", elem_id="open-inspect")
    c["status"] = gr.Markdown("", elem_id="open-status")
    # no label badge: it sat on the figure's own title ("D" of "Direction") and ticks; each figure has its title
    c["plots"] = [gr.Plot(visible=False, show_label=False, elem_id=f"open-plot-{i}") for i in range(SLOTS)]
    c["table"] = gr.Dataframe(
        label="each layer at its last step", interactive=False, visible=False, elem_id="open-table"
    )
    outputs = [c["status"], *c["plots"], c["table"]]
    c["upload"].change(lambda files: _outputs(histories_view(files)), c["upload"], outputs, api_name="open_histories")
    inspect = partial(adapter_view, allow_local_paths=allow_local_paths)
    c["inspect"].click(
        lambda spec, base: _outputs(inspect(spec, base)),
        [c["adapter"], c["base"]],
        outputs,
        api_name="open_adapter",
        concurrency_limit=1,
        concurrency_id="open-adapter",  # one model load at a time
    )
    return c
