"""The Gradio app's layout: widgets and wiring only. What the buttons do is in handlers.py; the
settings in settings.py; per-session state in session.py; the live frames in live.py; launching and
the command line in serve.py.

    demo = build_demo(); serve.launch(demo)   # http://127.0.0.1:7860
"""

from __future__ import annotations

import inspect as pyinspect
import json
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from ..plots.frames import METHOD_COLORS, bound_color  # noqa: E402
from ..training.methods import DEFAULT_METHODS, METHODS  # noqa: E402
from ..training.models import EMBEDDED_MODEL, SMOLLM2_PRESET, available_devices, pick_device  # noqa: E402
from . import handlers  # noqa: E402
from .handlers import compare, inspect, stop, sweep  # noqa: E402
from .links import PRESETS, Setup, make_query, parse_query, preset_link  # noqa: E402
from .logs import quiet_library_logs  # noqa: E402
from .open_tab import open_tab  # noqa: E402
from .results import display_table  # noqa: E402
from .settings import DEFAULTS, SETTINGS  # noqa: E402

QUEUE_SIZE = 64  # Gradio's queue: presses admitted at once; the app's own queue (handlers.QUEUE) orders runs
MAX_WAITING = 16  # runs waiting in the app's queue before new ones are turned away
PAPER = "https://arxiv.org/abs/2503.18225"

INTRO = f"""# DeLoRA vs LoRA vs DoRA, live
DeLoRA: Bini, Girrbach, Akata, [*Decoupling Angles and Strength in Low-rank Adaptation*]({PAPER}), ICLR 2025.
Fine-tune a small pretrained model with each method on the same data and watch **how far** each update
moves (its Frobenius norm, against DeLoRA's bound), **which way** (its angle to W) and DeLoRA's learned
**strength λ**. Pick settings on the left, press **Train**; **Stop** ends the run within one step."""
# The tutorial that explains each plot (notebooks/<stem>.ipynb; on the docs site when DELORA_VIZ_DOCS_URL is set)
TUTORIALS = {
    "00": ("why bound an update", "00_why_bound_an_update"),
    "01": ("DeLoRA from scratch", "01_delora_from_scratch"),
    "02": ("the geometry of an update", "02_geometry_of_an_update"),
    "03": ("LoRA, DoRA and DeLoRA compared", "03_lora_dora_delora"),
    "04": ("your own model", "04_bring_your_own_model"),
}
DOCS_URL = os.environ.get("DELORA_VIZ_DOCS_URL", "").rstrip("/")


def tutorial(number: str) -> str:
    """'Tutorial 02 (the geometry of an update)', a link when the docs site's address is known."""
    title, stem = TUTORIALS[number]
    text = f"tutorial {number}, *{title}*"
    return f"[{text}]({DOCS_URL}/tutorials/{stem}.html)" if DOCS_URL else f"{text} (`notebooks/{stem}.ipynb`)"


EXPLAIN = {
    "norm": "**Update size ‖ΔW‖_F** (mean over layers). DeLoRA normalises each rank-1 term of BA and scales it "
    "by λ and W's column norms, so ‖ΔW‖_F stays under the dashed *bound* ((|λ|/r) Σᵢ ‖(aᵢ/‖aᵢ‖) ⊙ w‖ for the "
    "current directions, itself ≤ |λ|·max_j ‖W[:,j]‖; twice that for the paper init; λ learns, so it moves). "
    "LoRA and DoRA have no cap: their norm grows with the learning rate and the steps.  \n**Why DeLoRA jumps "
    "at step 1:** PEFT starts with B = 0 and clamps ‖b_i‖ at 1e-4 before dividing by it, so the first step, at "
    "any learning rate, sets ‖ΔW‖ to about λ·rms(w)/√r. The paper's init (*delora-paper*) grows smoothly.  \n"
    f"More: {tutorial('01')}.",
    "angle": "**Direction: ∠(ΔW, W)** in degrees (mean over layers). Near 90° the update is almost orthogonal "
    "to the pretrained weight, as is typical in high dimension, so this angle says little on its own; the "
    "paper's \"angle\" is the direction of the normalised BA (Inspect's turn view shows how far it moves). "
    f"More: {tutorial('02')}.",
    "lambda": "**DeLoRA's strength λ** (mean over layers; only DeLoRA runs have one). λ with W's column norms "
    "sets the scale and the ceiling; A and B set the direction and where ‖ΔW‖ sits below the ceiling. "
    f"More: {tutorial('01')}.",
    "eval": "**Held-out accuracy** (classification; perplexity for causal LM) of each run at step 0 (the base "
    "model), at every evaluation and at the step a run stopped: does a bounded update still learn the task? "
    f"More: {tutorial('03')}.",
    "loss": "**Training loss.** Why DeLoRA's learning rate is 10-100× LoRA's: its factors A, B are normalised, "
    "so a step on them changes the direction of each rank-1 term and its strength comes from λ; moving it as "
    f"far takes bigger steps (defaults: LoRA 2e-3, DeLoRA 3e-2). More: {tutorial('00')}.",
}
# Gradio's LinePlot (Vega-Lite, SVG) has no dash or marker option: the lines and the (hidden) hover points
# are styled here by their colour. Bounds dashed; LoRA thick and solid under DoRA's dotted line, so neither
# hides the other; every evaluation a visible marker (a lone step-0 point draws), one shape per method.
_PLOT = '[id^="plot-"]'
DASHED = ", ".join(f'{_PLOT} path[stroke="{bound_color(c)}"]' for c in METHOD_COLORS.values())
MARKERS = {  # method -> SVG path of its marker, ~11 px (as plots.frames.METHOD_STYLES: o s D ^ v P)
    "lora": "M-5.5,0A5.5,5.5 0 1,1 5.5,0A5.5,5.5 0 1,1 -5.5,0Z",
    "dora": "M-4,-4H4V4H-4Z",
    "delora": "M0,-6L6,0L0,6L-6,0Z",
    "delora-paper": "M0,-6L5.5,4.5L-5.5,4.5Z",
    "delora-fixed-lambda": "M0,6L5.5,-4.5L-5.5,-4.5Z",
    "rslora": "M-5,-1.5H-1.5V-5H1.5V-1.5H5V1.5H1.5V5H-1.5V1.5H-5Z",
}
_MARKER_CSS = "\n".join(
    f'#plot-eval g.mark-symbol path[stroke="{METHOD_COLORS[m]}"] {{d: path("{d}")}}'
    for m, d in MARKERS.items()
    if m in METHOD_COLORS
)
CSS = f"""
#status, #sweep-status {{font-family: ui-monospace, monospace; font-size: 0.95em; min-height: 1.6em}}
.explain {{font-size: 0.8em; line-height: 1.35; opacity: 0.85}}
.explain p {{margin: 0.2em 0}}
{DASHED} {{stroke-dasharray: 7 4}}
{_PLOT} path[stroke="{METHOD_COLORS["lora"]}"] {{stroke-width: 4.5px}}
{_PLOT} path[stroke="{METHOD_COLORS["dora"]}"] {{stroke-dasharray: 1.5 3.5; stroke-linecap: round}}
#plot-eval g.mark-symbol path {{opacity: 1 !important; stroke-width: 2.5px; fill: white}}
{_MARKER_CSS}
.live-legend {{display: flex; flex-wrap: wrap; gap: 0.4em 1.4em; font-size: 0.9em; padding: 0.2em 0}}
.legend-item {{display: inline-flex; align-items: center; gap: 0.45em}}
.legend-item .swatch {{display: inline-block; width: 2.2em; height: 0}}
#results table {{table-layout: auto; width: 100%}}
#results th, #results th * {{white-space: normal; word-break: keep-all; overflow-wrap: normal; hyphens: none}}
#results td, #results td * {{word-break: keep-all !important; overflow-wrap: normal !important}}
#results td span, #results th span {{padding-left: 0.2em !important; padding-right: 0.2em !important}}
#results th, #results td {{padding: 0.3em 0.25em; font-size: 0.8em}}
#results .table-wrap, #results table {{min-width: 0 !important}}
#upload .upload-container {{padding-top: 1.9em}}
[id^="plot-"] .vega-embed {{padding-top: 0.2em}}
#lessons button {{white-space: normal}}
#lesson {{font-size: 0.92em}}
"""
# the results table's columns (run, status, steps, lr, final eval, ‖ΔW‖_F, ‖ΔW‖/‖W‖, ∠, ‖ΔW‖/bound, λ, time):
# shares that hold each value on one line at 1440 px (Gradio otherwise squeezes them and breaks mid-word)
TABLE_WIDTHS = ["10%", "11%", "7%", "7%", "10%", "8%", "9%", "8%", "11%", "8%", "11%"]
Y_TITLES = {"norm": "‖ΔW‖_F", "angle": "∠(ΔW, W) degrees", "lambda": "λ", "loss": "loss", "eval": "accuracy"}


# ----------------------------------------------------------------------------- layout
def _settings() -> dict:
    """The left column: every setting shared by the tabs, keyed as in settings.DEFAULTS."""
    d, c = DEFAULTS, {}
    with gr.Accordion("Model and data", open=True):
        c["model"] = gr.Radio(
            [EMBEDDED_MODEL, SMOLLM2_PRESET],
            value=d["model"],
            label="Model",
            info="minilm: all-MiniLM-L6-v2 (embedded); smollm2: SmolLM2-135M, causal LM",
        )
        c["model_path"] = gr.Textbox(
            label="…or a Hugging Face id / local folder", placeholder="blank: the model above", elem_id="model-path"
        )
        c["data"] = gr.Textbox(
            label="Dataset", placeholder="blank: BBC News (embedded); or an HF dataset name", elem_id="dataset"
        )
        c["upload"] = gr.File(
            label="…or upload a csv / json / jsonl / txt",
            file_types=[".csv", ".json", ".jsonl", ".txt"],
            type="filepath",
            height=140,
            elem_id="upload",
        )
        with gr.Row():
            pick = dict(choices=[""], value="", allow_custom_value=True, min_width=120)
            c["text_column"] = gr.Dropdown(label="text column", info="blank: guess", elem_id="text-column", **pick)
            c["label_column"] = gr.Dropdown(label="label column", info="blank: guess", elem_id="label-column", **pick)
        c["task"] = gr.Radio(["auto", "classification", "causal_lm"], value=d["task"], label="Task")
    with gr.Accordion("Adapter", open=True):
        with gr.Row():
            c["r"] = gr.Number(d["r"], label="rank r", precision=0, elem_id="rank")
            c["delora_lambda"] = gr.Number(d["delora_lambda"], label="DeLoRA λ")
        gr.Markdown("Learning rates (each method's recommended default):", elem_classes="explain")
        names = list(METHODS)
        for pair in (names[i : i + 2] for i in range(0, len(names), 2)):
            with gr.Row():
                for m in pair:
                    c[f"lr_{m}"] = gr.Number(d[f"lr_{m}"], label=f"lr · {METHODS[m].label}", min_width=110)
    with gr.Accordion("Training", open=True):
        with gr.Row():
            c["max_steps"] = gr.Number(d["max_steps"], label="steps", precision=0, elem_id="steps")
            c["batch_size"] = gr.Number(d["batch_size"], label="batch size", precision=0)
            c["max_length"] = gr.Number(d["max_length"], label="max length (tokens)", precision=0)
        with gr.Row():
            c["seed"] = gr.Number(d["seed"], label="seed", precision=0)
            c["device"] = gr.Dropdown(
                ["auto", *available_devices()],
                value=d["device"],
                label="device",
                info=f"auto picks {pick_device('auto')}",
            )
        c["target_modules"] = gr.Textbox(
            label="target modules", placeholder="blank: the model's query/value projections"
        )
    with gr.Accordion("Evaluation", open=False):
        with gr.Row():
            c["eval_every"] = gr.Number(d["eval_every"], label="eval every (steps)", precision=0)
            c["eval_examples"] = gr.Number(d["eval_examples"], label="eval examples", precision=0)
            c["max_examples"] = gr.Number(d["max_examples"], label="max examples (0: all)", precision=0)
    return c


def _live_plot(key: str, title: str):
    with gr.Column(min_width=320):
        plot = gr.LinePlot(
            None,
            x="step",
            y="value",
            color="series",
            title=title,
            x_title="step",
            y_title=Y_TITLES[key],
            color_title="run",
            colors_in_legend=[],  # one shared legend above the plots (Vega's cut long names: "delo...")
            x_axis_format="d",  # whole steps
            y_axis_format="~g",  # 5, not 5.000000
            x_lim=[0, DEFAULTS["max_steps"]],
            height=250,
            elem_id=f"plot-{key}",
            show_label=False,
        )
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
    c["legend"] = gr.HTML("", elem_id="legend")
    with gr.Row():
        c["plots"] = [_live_plot("norm", "‖ΔW‖_F vs DeLoRA's bound"), _live_plot("angle", "angle to W")]
    with gr.Row():
        c["plots"] += [_live_plot("lambda", "DeLoRA's λ"), _live_plot("loss", "training loss")]
    with gr.Row():
        c["plots"] += [_live_plot("eval", "held-out accuracy")]
    c["table"] = gr.Dataframe(
        display_table(),
        label="Final metrics per run (means over layers; ‖ΔW‖/bound: the largest layer's)",
        interactive=False,
        column_widths=TABLE_WIDTHS,
        wrap=True,
        elem_id="results",
    )
    c["files"] = gr.File(
        label="Downloads: tracker history CSV, loss/eval CSV, figures (PNG zip), adapters (zip of PEFT dirs)",
        file_count="multiple",
        interactive=False,
        elem_id="downloads",
    )
    return c


def _sweep_tab() -> dict:
    c = {}
    gr.Markdown(
        "Each method at multiples of its recommended learning rate (same model, data and settings as on the "
        "left; the final ‖ΔW‖_F, mean over layers). LoRA's distance from W grows with the rate, and at large "
        "rates its accuracy collapses. DeLoRA's changes less, for two reasons: PEFT's zero-init B jumps after "
        "ONE step to about λ·rms(w)/√r whatever the rate, and λ with W's column norms sets a ceiling ‖ΔW‖ cannot "
        "pass; A and B (which the rate moves) set where below that ceiling it sits. "
        f"More: {tutorial('00')} and {tutorial('03')}.",
        elem_classes="explain",
    )
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
    gr.Markdown(
        "After a comparison: one adapted layer of the trained models. Singular values show the update's "
        "effective rank (LoRA/DeLoRA ≤ r, DoRA's rescaled rows are not low rank); the heatmap shows, per layer and "
        "step, ‖ΔW‖/bound for DeLoRA runs and ‖ΔW‖/‖W‖ for runs without a bound (its title says which); the turn "
        "view plots how far the update's direction has turned against its strength: DeLoRA keeps turning "
        f"while its strength stays under its ceiling. More: {tutorial('02')}.",
        elem_classes="explain",
    )
    with gr.Row(equal_height=False):
        c["run"] = gr.Dropdown([], label="run", scale=1)
        c["layer"] = gr.Dropdown([], label="layer", scale=3)
        c["show"] = gr.Button("Show layer", scale=1, elem_id="inspect-show", variant="primary")
    c["status"] = gr.Markdown("", elem_id="inspect-status")
    with gr.Row():
        c["sv"], c["turn"] = (
            gr.Plot(show_label=False, elem_id="inspect-sv"),
            gr.Plot(show_label=False, elem_id="inspect-turn"),
        )
    c["heat"] = gr.Plot(show_label=False, elem_id="inspect-heatmap")
    c["numbers"] = gr.Dataframe(label="this layer at the last step", interactive=False)
    return c


LINKED = tuple(k for k in SETTINGS if k != "upload")  # an upload cannot travel in a link
TABS = ("compare", "sweep", "inspect", "open")
# the link button: the server writes the query, the page puts it after its own address (behind a proxy,
# e.g. a Space, only the page knows that) and into the address bar
LINK_JS = "(q) => { const u = location.origin + location.pathname + q; history.replaceState(null, '', u); return u; }"


def _lessons() -> dict:
    """The presets (one button each, each also a link: ?preset=NAME) and the link to the current setup."""
    c = {}
    with gr.Row(elem_id="lessons", equal_height=True):
        c["presets"] = {
            # disabled until the page's load has read its own link (_from_url), which would overwrite
            # a lesson picked before it returned
            name: gr.Button(preset.title, size="sm", elem_id=f"preset-{name}", min_width=150, interactive=False)
            for name, preset in PRESETS.items()
        }
        c["link"] = gr.Button(
            "Link to this setup", size="sm", elem_id="link-button", variant="secondary", min_width=150
        )
    c["url"] = gr.Textbox(
        show_label=False,
        placeholder="Pick a lesson above, or press 'Link to this setup' for a link that reopens these settings",
        buttons=["copy"],
        interactive=False,
        elem_id="link",
    )
    c["lesson"] = gr.Markdown("", elem_id="lesson")
    return c


def lesson_text(setup: Setup) -> str:
    """What the page says after a link or a preset: the lesson's point, and what the link could not use."""
    parts = []
    if setup.preset is not None:
        parts.append(f"{setup.preset.point}  \nPress **Train**. This lesson's link: `{preset_link(setup.preset.name)}`")
    if setup.problems:
        parts.append("⚠️ Not used from the link: " + "; ".join(setup.problems))
    return "\n\n".join(parts)


N_LINK_OUTPUTS = len(LINKED) + 7  # apply_setup's updates


def apply_setup(setup: Setup) -> list:
    """The page's updates for a Setup, in the order of _wire_links' outputs."""
    fields = [gr.update(value=setup.settings[k]) for k in LINKED]
    tab = gr.Tabs(selected=setup.tab)
    return [
        *fields,
        setup.methods,
        setup.sweep_methods,
        setup.multipliers,
        setup.sweep_steps,
        tab,
        setup.tab,
        lesson_text(setup),
    ]


def link_query(*args) -> str:
    """The query string of what the page shows: (*LINKED values, methods, sweep methods, multipliers,
    sweep steps, tab) -> "?..."."""
    *values, methods, sweep_methods, multipliers, sweep_steps, tab = args
    return make_query(dict(zip(LINKED, values)), methods, tab, sweep_methods, multipliers, sweep_steps)


def _from_url(request: gr.Request) -> list:
    """The page from its link, then the lesson buttons enabled. With no query nothing is rewritten, so
    what a user typed while the page loaded stays."""
    query = dict(request.query_params) if request is not None else {}
    page = apply_setup(parse_query(query)) if query else [gr.skip()] * N_LINK_OUTPUTS
    return [*page, *[gr.update(interactive=True)] * len(PRESETS)]


def _wire_links(demo, lessons, settings, cmp, swp, tabs, tab_widgets) -> None:
    """URL -> page on load; a preset -> page (and the address bar); the link button -> the page's URL."""
    tab = gr.State("compare")
    for name, widget in zip(TABS, tab_widgets):
        widget.select(lambda name=name: name, None, tab, api_visibility="private", show_progress="hidden", queue=False)
    linked = [settings[k] for k in LINKED]
    outputs = [*linked, cmp["methods"], swp["methods"], swp["multipliers"], swp["steps"], tabs, tab, lessons["lesson"]]
    quiet = dict(api_visibility="private", show_progress="hidden")
    assert len(outputs) == N_LINK_OUTPUTS
    demo.load(_from_url, None, [*outputs, *lessons["presets"].values()], **quiet)
    for name, button in lessons["presets"].items():
        button.click(lambda name=name: apply_setup(parse_query({"preset": name})), None, outputs, **quiet).then(
            None, None, lessons["url"], js=f"() => ({LINK_JS})({json.dumps(preset_link(name))})"
        )
    inputs = [*linked, cmp["methods"], swp["methods"], swp["multipliers"], swp["steps"], tab]
    lessons["link"].click(link_query, inputs, lessons["url"], **quiet).then(
        None, lessons["url"], lessons["url"], js=LINK_JS
    )


def _with_session(handler, n_inputs: int):
    """handler(session, *inputs) as a Gradio function of (*inputs, request): the session comes from the
    server's registry (keyed by the tab's session hash), so it can be freed when the tab closes."""

    def call(*args):
        *inputs, request = args
        result = handler(handlers.SESSIONS.get(request), *inputs)
        if pyinspect.isgenerator(result):
            return (yield from result)
        return result

    def call_plain(*args):
        *inputs, request = args
        return handler(handlers.SESSIONS.get(request), *inputs)

    fn = call if pyinspect.isgeneratorfunction(handler) else call_plain
    P = pyinspect.Parameter
    params = [P(f"input_{i}", P.POSITIONAL_OR_KEYWORD) for i in range(n_inputs)]
    fn.__signature__ = pyinspect.Signature([*params, P("request", P.POSITIONAL_OR_KEYWORD, annotation=gr.Request)])
    fn.__annotations__ = {"request": gr.Request}  # Gradio finds gr.Request through the annotations
    fn.__name__ = handler.__name__
    return fn


def build_demo(extra_tabs=None, local_paths: bool = True) -> gr.Blocks:
    """The app. Cheap: nothing loads until Train is pressed. `extra_tabs`: callables that add a gr.Tab.
    local_paths: the Open tab may name adapter folders on this machine (the launch policy decides)."""
    quiet_library_logs()
    with gr.Blocks(title="delora-viz: DeLoRA vs LoRA vs DoRA", analytics_enabled=False) as demo:
        gr.Markdown(INTRO)
        lessons = _lessons()
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                settings = _settings()
            with gr.Column(scale=3), gr.Tabs(elem_id="tabs") as tabs:
                with gr.Tab("Compare", id="compare") as tab_compare:
                    cmp = _compare_tab()
                with gr.Tab("Learning-rate sweep", id="sweep") as tab_sweep:
                    swp = _sweep_tab()
                with gr.Tab("Inspect a layer", id="inspect") as tab_inspect:
                    ins = _inspect_tab()
                with gr.Tab("Open", id="open") as tab_open:
                    open_tab(allow_local_paths=local_paths)
                for add_tab in extra_tabs or ():  # more tabs go here
                    add_tab()
        values = [settings[k] for k in SETTINGS]
        _wire_links(demo, lessons, settings, cmp, swp, tabs, (tab_compare, tab_sweep, tab_inspect, tab_open))
        # Gradio admits every press at once (its queue cannot talk to the page); the runs wait in the
        # app's own queue (handlers.QUEUE), which tells the user how many runs are ahead.
        train = dict(concurrency_limit=MAX_WAITING + 1, concurrency_id="training", show_progress="minimal")
        cmp_inputs = [cmp["methods"], *values]
        cmp["train"].click(
            _with_session(compare, len(cmp_inputs)),
            cmp_inputs,
            [cmp["status"], cmp["legend"], *cmp["plots"], cmp["table"], cmp["files"], ins["run"], ins["layer"]],
            api_name="compare",
            **train,
        )
        swp_inputs = [swp["methods"], swp["multipliers"], swp["steps"], *values]
        swp["run"].click(
            _with_session(sweep, len(swp_inputs)),
            swp_inputs,
            [swp["status"], swp["plot"], swp["table"]],
            api_name="sweep",
            **train,
        )
        # Stop sets a flag, not `cancels`: results survive. One Stop per session: either button stops
        # whatever this session runs or waits for (a comparison or a sweep); other sessions never notice.
        quick = dict(concurrency_limit=None, show_progress="hidden")
        cmp["stop"].click(_with_session(stop, 0), None, None, api_name="stop", **quick)
        swp["stop"].click(_with_session(stop, 0), None, None, api_name="stop_sweep", **quick)
        io = dict(
            fn=_with_session(inspect, 2),
            inputs=[ins["run"], ins["layer"]],
            outputs=[ins["status"], ins["sv"], ins["heat"], ins["turn"], ins["numbers"]],
        )
        ins["show"].click(api_name="inspect", **io)
        gr.on([ins["run"].input, ins["layer"].input], api_visibility="private", **io)
        settings["upload"].change(
            handlers.upload_columns,
            settings["upload"],
            [settings["text_column"], settings["label_column"]],
            api_visibility="private",
            show_progress="hidden",
            queue=False,
        )
        demo.load(handlers.queue_note, None, cmp["status"], api_visibility="private", show_progress="hidden")
        demo.unload(handlers.unload)  # the tab closed: free its models and files (idle ones: SESSIONS.reap)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
    return demo
