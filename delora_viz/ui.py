"""The Gradio app: wiring only. The logic lives in ui_session.py (settings, session, live frames),
ui_results.py (table, downloads, layer inspection), train.py (the one training loop) and plots.py.

    python app.py --port 7860          # http://127.0.0.1:7860

Stop sets the session's stop flag; the training loop checks it before every step, so every run
ends within one step and the results and downloads are built from what was recorded.
"""
from __future__ import annotations

import argparse
import logging
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from . import ui_session  # noqa: E402
from .data import describe  # noqa: E402
from .methods import DEFAULT_METHODS, METHODS  # noqa: E402
from .models import EMBEDDED_MODEL, SMOLLM2_PRESET, available_devices, pick_device  # noqa: E402
from .plots import plot_lr_sweep  # noqa: E402
from .train import RunResult, StepEvent, iter_compare, iter_lr_sweep, sweep_frame  # noqa: E402
from .ui_results import inspect_layer, layer_names, results_table, rounded, write_downloads  # noqa: E402
from .ui_session import DEFAULTS, SETTINGS, LiveView, UiSession, make_config, parse_multipliers  # noqa: E402

log = logging.getLogger(__name__)
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, NotImplementedError)
QUEUE_SIZE = 16
TRAINING = "training"  # one concurrency group for everything that trains: one GPU, one run at a time

INTRO = """# DeLoRA vs LoRA vs DoRA, live
Fine-tune a small pretrained model with each method on the same data and watch **how far** each update
moves (its Frobenius norm, against DeLoRA's bound), **which way** (its angle to W) and DeLoRA's learned
**strength λ**. Pick settings on the left, press **Train**; **Stop** ends the run within one step."""
EXPLAIN = {
    "norm": "**Update size ‖ΔW‖_F** (mean over layers). DeLoRA normalises each rank-1 term of BA and scales it "
            "by λ and W's column norms, so ‖ΔW‖_F ≤ |λ|·max_j ‖W[:,j]‖ (the lighter *bound* series). LoRA and DoRA "
            "have no cap: their norm grows with the learning rate and the steps.  \n**Why DeLoRA jumps at step 1:** "
            "PEFT starts with B = 0 and clamps ‖b_i‖ at 1e-4 before dividing by it, so the first step, at any "
            "learning rate, sets ‖ΔW‖ to about λ·rms(w)/√r. The paper's init (*delora-paper*) grows smoothly.",
    "angle": "**Direction: ∠(ΔW, W)** in degrees (mean over layers). Near 90° the update is almost orthogonal "
             "to the pretrained weight, as is typical in high dimension. DeLoRA's direction moves freely; "
             "only its size is capped.",
    "lambda": "**DeLoRA's strength λ** (mean over layers; only DeLoRA runs have one). Strength lives in λ, "
              "decoupled from the direction: it is the only thing that can move the bound.",
    "loss": "**Training loss.** Why DeLoRA's learning rate is 10-100× LoRA's: its factors A, B are normalised "
            "away, so a step on them only *turns* the update; its strength lives in λ. Turning it as far takes "
            "bigger steps (defaults: LoRA 2e-3, DeLoRA 3e-2).",
}  # fmt: skip
CSS = """
#status, #sweep-status {font-family: ui-monospace, monospace; font-size: 0.95em; min-height: 1.6em}
.explain {font-size: 0.8em; line-height: 1.35; opacity: 0.85}
.explain p {margin: 0.2em 0}
"""
PLOTS = ("norm", "angle", "lambda", "loss")
Y_TITLES = {"norm": "‖ΔW‖_F", "angle": "∠(ΔW, W) degrees", "lambda": "λ", "loss": "loss"}


def _text(message: str) -> str:
    return str(message).replace("<", "&lt;")


def _error(err: Exception) -> str:
    """A readable message for the screen; anything unexpected is logged here with its traceback."""
    if isinstance(err, USER_ERRORS):
        message = str(err)
    else:
        log.exception("unexpected error in the app")
        message = f"unexpected error: {type(err).__name__}: {err}"
    gr.Warning(message)
    return f"⚠️ {_text(message)}"


def _plots(frames: dict) -> list:
    """The four LinePlot updates. Only the data changes while a run goes (color_map stays the same, no x_lim):
    a changed prop rebuilds the chart, and a rebuild can show stale data or drop a series."""
    return [gr.update(value=frames[k][0], color_map=frames[k][1] or None) for k in PLOTS]


def _device(prepared) -> str:
    """What auto picked, e.g. "cpu, float32" or "cuda:0, bfloat16"."""
    device, dtype = prepared.loaded.device, str(prepared.loaded.dtype).removeprefix("torch.")
    return f"{device if device.type == 'cuda' else device.type}, {dtype}"


# ----------------------------------------------------------------------------- handlers
def compare(session: UiSession | None, methods, *values):
    """Train the ticked methods side by side; yields (status, 4 plots, table, downloads, run, layer)."""
    session = session if session is not None else UiSession()
    session.stop.clear()
    skip = gr.skip()

    def out(status, frames=None, table=skip, files=skip, run=skip, layer=skip):
        return (status, *(_plots(frames) if frames else [skip] * 4), table, files, run, layer)

    view = None
    try:
        methods, config, lrs = make_config(dict(zip(SETTINGS, values)), methods)
        yield out("loading the model and data…")
        prepared = session.prepare(config)
        session.results = {}
        view = LiveView(config.steps, methods, device=_device(prepared))
        yield out(_text(f"{prepared.loaded.name} · {describe(prepared.data)} · evaluating the base model…"))
        for event in iter_compare(methods, config, prepared, stop=session.stop.is_set, lrs=lrs):
            view.add(event)
            if isinstance(event, StepEvent) and view.due():
                yield out(_text(view.status()), view.frames())
        session.results = dict(view.results)
        results = list(view.results.values())
        table = results_table(results)
        yield out(_text(view.status() + " · writing downloads…"), view.frames(), table)
        files = write_downloads(results, prepared, session.output_dir("compare"))
        runs, layers = list(view.results), layer_names(results)
        yield out(_text(view.status()), None, table, files, gr.update(choices=runs, value=runs[0]),
                  gr.update(choices=layers, value=layers[0] if layers else None))  # fmt: skip
    except Exception as err:  # noqa: BLE001 - every error becomes a message; the app keeps serving
        if view is not None and view.results:
            session.results = dict(view.results)
        yield out(_error(err), view.frames() if view is not None else None)


def stop(session: UiSession | None):
    """Ask the session's run to stop: it ends before its next step and keeps what it recorded."""
    if session is not None:
        session.stop.set()


def sweep(session: UiSession | None, methods, multipliers, steps, *values):
    """Learning-rate sweep: yields (status, figure, table) as runs finish."""
    session = session if session is not None else UiSession()
    session.stop.clear()
    skip = gr.skip()
    try:
        settings = dict(zip(SETTINGS, values)) | {"steps": steps, "eval_every": steps}
        methods, config, _ = make_config(settings, methods)
        mults = parse_multipliers(multipliers)
        yield "loading the model and data…", skip, skip
        prepared = session.prepare(config)
        total, results, view = len(mults) * len(methods), [], LiveView(config.steps, [])
        figure = table = skip
        for event in iter_lr_sweep(methods, mults, config, prepared, stop=session.stop.is_set):
            if isinstance(event, RunResult):  # a finished run: redraw the figure (matplotlib, ~0.2 s)
                results.append(event)
                figure, table = plot_lr_sweep(sweep_frame(results)), rounded(sweep_frame(results))
                yield _text(f"{len(results)}/{total} runs done · last: {event.run} ({event.status})"), figure, table
            elif view.due():
                yield _text(f"run {len(results) + 1}/{total} · {event.run} step {event.step}/{event.total_steps} · "
                            f"loss {event.loss:.3g} · {event.steps_per_s:.1f} steps/s"), skip, skip  # fmt: skip
        state = "stopped" if session.stop.is_set() else "finished"
        yield _text(f"{state}: {len(results)}/{total} runs · device {_device(prepared)}"), figure, table
    except Exception as err:  # noqa: BLE001
        yield _error(err), skip, skip


def inspect(session: UiSession | None, run, layer):
    """One layer of the session's last comparison: (status, singular values, heatmap, polar, numbers)."""
    try:
        sv, heat, polar, numbers = inspect_layer(session.results if session else {}, run, layer)
        return _text(f"{layer} · singular values and polar path: every run; heatmap: {run}"), sv, heat, polar, numbers
    except Exception as err:  # noqa: BLE001
        return _error(err), gr.skip(), gr.skip(), gr.skip(), gr.skip()


# ----------------------------------------------------------------------------- layout
def _settings() -> dict:
    """The left column: every setting shared by the tabs, keyed as in ui_session.DEFAULTS."""
    d, c = DEFAULTS, {}
    with gr.Accordion("Model and data", open=True):
        c["model"] = gr.Radio([EMBEDDED_MODEL, SMOLLM2_PRESET], value=d["model"], label="Model",
                              info="minilm: all-MiniLM-L6-v2 (embedded); smollm2: SmolLM2-135M, causal LM")  # fmt: skip
        c["model_path"] = gr.Textbox(label="…or a Hugging Face id / local folder", placeholder="blank: the model above",
                                     elem_id="model-path")
        c["data"] = gr.Textbox(label="Dataset", placeholder="blank: BBC News (embedded); or an HF dataset name", elem_id="data")
        c["upload"] = gr.File(label="…or upload a csv / json / jsonl / txt", file_types=[".csv", ".json", ".jsonl", ".txt"],
                              type="filepath", height=120)  # fmt: skip
        c["task"] = gr.Radio(["auto", "classification", "causal_lm"], value=d["task"], label="Task")
    with gr.Accordion("Adapter", open=True):
        with gr.Row():
            c["r"] = gr.Number(d["r"], label="rank r", precision=0)
            c["delora_lambda"] = gr.Number(d["delora_lambda"], label="DeLoRA λ")
        gr.Markdown("Learning rates (each method's recommended default):", elem_classes="explain")
        names = list(METHODS)
        for pair in (names[:2], names[2:]):
            with gr.Row():
                for m in pair:
                    c[f"lr_{m}"] = gr.Number(d[f"lr_{m}"], label=f"lr · {METHODS[m].label}", min_width=110)
    with gr.Accordion("Training", open=True):
        with gr.Row():
            c["steps"] = gr.Number(d["steps"], label="steps", precision=0, elem_id="steps")
            c["batch_size"] = gr.Number(d["batch_size"], label="batch size", precision=0)
            c["max_length"] = gr.Number(d["max_length"], label="max length (tokens)", precision=0)
        with gr.Row():
            c["seed"] = gr.Number(d["seed"], label="seed", precision=0)
            c["device"] = gr.Dropdown(["auto", *available_devices()], value=d["device"], label="device",
                                      info=f"auto picks {pick_device('auto')}")  # fmt: skip
        c["target_modules"] = gr.Textbox(label="target modules", placeholder="blank: the model's query/value projections")
    with gr.Accordion("Evaluation", open=False):
        with gr.Row():
            c["eval_every"] = gr.Number(d["eval_every"], label="eval every (steps)", precision=0)
            c["eval_examples"] = gr.Number(d["eval_examples"], label="eval examples", precision=0)
            c["max_examples"] = gr.Number(d["max_examples"], label="max examples (0: all)", precision=0)
    return c


def _live_plot(key: str, title: str):
    with gr.Column(min_width=320):
        plot = gr.LinePlot(None, x="step", y="value", color="series", title=title, x_title="step", y_title=Y_TITLES[key],
                           color_title="run", height=260, elem_id=f"plot-{key}", show_label=False)  # fmt: skip
        gr.Markdown(EXPLAIN[key], elem_classes="explain")
    return plot


def _methods(value) -> gr.CheckboxGroup:
    choices = [(f"{m.label} ({m.name})", m.name) for m in METHODS.values()]
    return gr.CheckboxGroup(choices, value=list(value), label="Methods", scale=4)


def _compare_tab() -> dict:
    c = {}
    with gr.Row(equal_height=False):
        c["methods"] = _methods(DEFAULT_METHODS)
        with gr.Column(scale=1, min_width=160):
            c["train"] = gr.Button("Train", variant="primary", elem_id="train")
            c["stop"] = gr.Button("Stop", variant="stop", elem_id="stop")
    c["status"] = gr.Markdown("Press **Train** to start.", elem_id="status")
    with gr.Row():
        c["plots"] = [_live_plot("norm", "‖ΔW‖_F vs DeLoRA's bound"), _live_plot("angle", "angle to W")]
    with gr.Row():
        c["plots"] += [_live_plot("lambda", "DeLoRA's λ"), _live_plot("loss", "training loss")]
    c["table"] = gr.Dataframe(label="Final metrics per method", interactive=False, elem_id="results")
    c["files"] = gr.File(label="Downloads: tracker history CSV, loss/eval CSV, figures (PNG zip), adapters (zip of "
                         "PEFT dirs)", file_count="multiple", interactive=False, elem_id="downloads")  # fmt: skip
    return c


def _sweep_tab() -> dict:
    c = {}
    gr.Markdown("Each method at multiples of its recommended learning rate (same model, data and settings as on the "
                "left). LoRA's distance from W grows with the rate until it diverges; DeLoRA's stays nearly flat, "
                "since λ, not the rate, sets how far it goes.", elem_classes="explain")  # fmt: skip
    with gr.Row(equal_height=True):
        c["methods"] = _methods(["lora", "delora"])
        c["multipliers"] = gr.Textbox("0.1, 1, 10, 100", label="lr multipliers", scale=2)
        c["steps"] = gr.Number(20, label="steps per run", precision=0, scale=1)
    with gr.Row():
        c["run"] = gr.Button("Run sweep", variant="primary", elem_id="sweep-run")
        c["stop"] = gr.Button("Stop", variant="stop", elem_id="sweep-stop")
    c["status"] = gr.Markdown("", elem_id="sweep-status")
    c["plot"] = gr.Plot(show_label=False, elem_id="sweep-plot")
    c["table"] = gr.Dataframe(label="Sweep", interactive=False)
    return c


def _inspect_tab() -> dict:
    c = {}
    gr.Markdown("After a comparison: one adapted layer of the trained models. Singular values show the update's "
                "effective rank (LoRA/DeLoRA ≤ r, DoRA's rescaled rows are not low rank); the heatmap shows how "
                "close every layer of a run came to its bound; the polar plot, direction against strength.",
                elem_classes="explain")  # fmt: skip
    with gr.Row(equal_height=False):
        c["run"] = gr.Dropdown([], label="run", scale=1)
        c["layer"] = gr.Dropdown([], label="layer", scale=3)
        c["show"] = gr.Button("Show layer", scale=1, elem_id="inspect-show", variant="primary")
    c["status"] = gr.Markdown("", elem_id="inspect-status")
    with gr.Row():
        c["sv"], c["polar"] = gr.Plot(show_label=False, elem_id="inspect-sv"), gr.Plot(show_label=False, elem_id="inspect-polar")
    c["heat"] = gr.Plot(show_label=False, elem_id="inspect-heatmap")
    c["numbers"] = gr.Dataframe(label="this layer at the last step", interactive=False)
    return c


def build_demo() -> gr.Blocks:
    """The app. Cheap: nothing loads until Train is pressed."""
    with gr.Blocks(title="delora-viz: DeLoRA vs LoRA vs DoRA", analytics_enabled=False) as demo:
        session = gr.State(UiSession(), delete_callback=UiSession.close)  # one per browser session
        gr.Markdown(INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                settings = _settings()
            with gr.Column(scale=3), gr.Tabs():
                with gr.Tab("Compare", id="compare"):
                    cmp = _compare_tab()
                with gr.Tab("Learning-rate sweep", id="sweep"):
                    swp = _sweep_tab()
                with gr.Tab("Inspect a layer", id="inspect"):
                    ins = _inspect_tab()
        values = [settings[k] for k in SETTINGS]
        train = dict(concurrency_limit=1, concurrency_id=TRAINING, show_progress="minimal")  # one run at a time
        cmp["train"].click(compare, [session, cmp["methods"], *values],
                           [cmp["status"], *cmp["plots"], cmp["table"], cmp["files"], ins["run"], ins["layer"]],
                           api_name="compare", **train)  # fmt: skip
        swp["run"].click(sweep, [session, swp["methods"], swp["multipliers"], swp["steps"], *values],
                         [swp["status"], swp["plot"], swp["table"]], api_name="sweep", **train)  # fmt: skip
        for btn, name in ((cmp["stop"], "stop"), (swp["stop"], "stop_sweep")):  # a flag, not `cancels`: results survive
            btn.click(stop, session, None, api_name=name, concurrency_limit=None, show_progress="hidden")
        io = dict(fn=inspect, inputs=[session, ins["run"], ins["layer"]],
                  outputs=[ins["status"], ins["sv"], ins["heat"], ins["polar"], ins["numbers"]])  # fmt: skip
        ins["show"].click(api_name="inspect", **io)
        gr.on([ins["run"].input, ins["layer"].input], api_visibility="private", **io)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
    return demo


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False,
           max_upload_mb: float = ui_session.MAX_UPLOAD_MB, **kwargs):
    """demo.launch with the app's settings: local by default, bounded uploads, its CSS."""
    ui_session.MAX_UPLOAD_MB = max_upload_mb
    return demo.launch(server_name=host, server_port=port, share=share, max_file_size=f"{max_upload_mb:g}mb",
                       css=CSS, show_error=False, footer_links=["api", "gradio"], **kwargs)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="delora-viz: compare LoRA, DoRA and DeLoRA live in the browser")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0 exposes the app on the network)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument("--max-upload-mb", type=float, default=ui_session.MAX_UPLOAD_MB, help="largest dataset upload")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    launch(build_demo(), args.host, args.port, args.share, args.max_upload_mb)
