"""Lessons as links: the app's whole setup lives in the URL query, named like `delora-viz train`'s flags
(which mirror PEFT's delora_finetuning.py), so a tutorial can say "open this setup".

    /?methods=lora,delora&rank=3&max_steps=5&tab=sweep
    /?preset=lora-crosses-the-cap                 # a curated lesson; explicit parameters override it

`methods` and `max_steps` belong to the tab the link opens: with tab=sweep they are the sweep's methods
and steps per run (with `lr_multipliers`), otherwise the comparison's. Only values that differ from the
app's defaults are written, so a link stays short. No Gradio in here: layout.py wires these functions to the page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from urllib.parse import urlencode

from ..training.methods import DEFAULT_METHODS, METHODS
from ..training.models import EMBEDDED_MODEL, SMOLLM2_PRESET
from .settings import DEFAULTS

TABS = ("compare", "sweep", "inspect", "open")
SWEEP_DEFAULTS = {"methods": ("lora", "delora"), "multipliers": "0.1, 1, 10, 100", "steps": 20}
MODEL_PRESETS = (EMBEDDED_MODEL, SMOLLM2_PRESET)
# URL parameter (the CLI's flag) -> settings key (app/settings.py). `base_model` is the Model radio for a
# preset name and the Hugging Face id / folder box otherwise.
FLAGS = {
    "base_model": "model",
    "data_path": "data",
    "text_column": "text_column",
    "label_column": "label_column",
    "task": "task",
    "rank": "r",
    "delora_lambda": "delora_lambda",
    **{f"learning_rate_{m}": f"lr_{m}" for m in METHODS},
    "max_steps": "max_steps",
    "batch_size": "batch_size",
    "cutoff_len": "max_length",
    "seed": "seed",
    "device": "device",
    "target_modules": "target_modules",
    "eval_step": "eval_every",
    "val_set_size": "eval_examples",
    "max_examples": "max_examples",
}
SETTING_FLAG = {key: flag for flag, key in FLAGS.items()}
INTS = ("r", "max_steps", "batch_size", "max_length", "seed", "eval_every", "eval_examples", "max_examples")
FLOATS = ("delora_lambda", *(f"lr_{m}" for m in METHODS))


@dataclass(frozen=True)
class Preset:
    """One lesson: a setup that makes ONE point visible in the plots, and the sentence that says where."""

    name: str  # the ?preset= value
    title: str  # the button
    point: str  # what to look at, in markdown
    query: dict = field(default_factory=dict)  # URL parameters (flags as above)


PRESETS = {
    p.name: p
    for p in (
        Preset(
            "lora-crosses-the-cap",
            "LoRA crosses DeLoRA's cap",
            "**LoRA at 5x its rate (lr 0.01) against DeLoRA at its own.** In the norm plot LoRA's ‖ΔW‖ (indigo, "
            "thick) grows with every step and passes DeLoRA's bound (dashed) near step 20 (measured on CPU: 8.0 "
            "against 7.1; 16 at step 40), while DeLoRA's ‖ΔW‖ (orange) stays under it: its rank-1 terms are "
            "normalised and scaled by λ and W's column norms. Try lr 0.02 (10x): LoRA passes 50 and its accuracy "
            "falls to chance.",
            {"methods": "lora,delora", "learning_rate_lora": 0.01},
        ),
        Preset(
            "rank-1-tight-bound",
            "Rank 1: the bound is tight",
            "**DeLoRA at rank 1.** With one rank-1 term there is nothing to align: ‖ΔW‖ equals the bound "
            "(|λ|/r) Σᵢ ‖(aᵢ/‖aᵢ‖) ⊙ w‖ at every step, so the solid line sits on the dashed one and the table's "
            "‖ΔW‖/bound is 1. At higher rank the r unit terms only partly add up and ‖ΔW‖ sits below it.",
            {"methods": "delora", "rank": 1},
        ),
        Preset(
            "peft-vs-paper-init",
            "PEFT's init against the paper's",
            "**The same DeLoRA, two initialisations, at a tenth of their learning rate (0.003).** PEFT starts with "
            "B = 0 and clamps ‖bᵢ‖ at 1e-4, so its ‖ΔW‖ (orange) jumps after ONE step to about λ·rms(w)/√r (2.5 here, "
            "exactly what it reaches at the default 0.03: the jump does not depend on the rate) and then barely "
            "moves; the paper's init (cyan: A, B random, their frozen copy subtracted) starts at 0.26 and grows "
            "smoothly. The paper init's ceiling is 2|λ| max_j ‖W[:,j]‖.",
            {"methods": "delora,delora-paper", "learning_rate_delora": 0.003, "learning_rate_delora-paper": 0.003},
        ),
        Preset(
            "lambda-fixed-vs-learned",
            "λ fixed against learned",
            "**λ is not the whole story.** With λ fixed (wine) only A and B train, yet its ‖ΔW‖ still moves: "
            "λ and W's column norms set the scale and the ceiling, A and B set the direction and where the norm "
            "sits below it (how aligned the r unit terms are). With λ learned (orange) the bound moves too.",
            {"methods": "delora,delora-fixed-lambda"},
        ),
    )
}


# ----------------------------------------------------------------------------- URL -> setup
@dataclass
class Setup:
    """What a URL asks for: the settings (keys of DEFAULTS), each tab's methods, the sweep, the tab."""

    settings: dict
    methods: list[str]
    sweep_methods: list[str]
    multipliers: str
    sweep_steps: int
    tab: str
    preset: Preset | None = None
    problems: list[str] = field(default_factory=list)  # parameters ignored, in the UI's words


def _methods(value: str, problems: list[str]) -> list[str] | None:
    names = [m.strip() for m in str(value).split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        problems.append(f"methods: unknown {', '.join(unknown)} (choose from {', '.join(METHODS)})")
    names = [m for m in names if m in METHODS]
    return names or None


def _number(key: str, value: str):
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    if key in INTS:
        if not number.is_integer():
            raise ValueError(value)
        return int(number)
    return number


def parse_query(params) -> Setup:
    """The URL's query parameters (a mapping; gr.Request.query_params) -> Setup. Unknown parameters and
    unreadable values are listed in `problems` and otherwise ignored: a link never stops the page loading."""
    params = {str(k): str(v) for k, v in dict(params or {}).items()}
    problems: list[str] = []
    preset = None
    if "preset" in params:
        preset = PRESETS.get(params["preset"])
        if preset is None:
            problems.append(f"preset: unknown {params['preset']!r} (choose from {', '.join(PRESETS)})")
    merged = dict(preset.query if preset else {}) | {k: v for k, v in params.items() if k != "preset"}
    tab = str(merged.pop("tab", "compare"))
    if tab not in TABS:
        problems.append(f"tab: unknown {tab!r} (choose from {', '.join(TABS)})")
        tab = "compare"
    settings = dict(DEFAULTS)
    methods = list(DEFAULT_METHODS)
    sweep = dict(SWEEP_DEFAULTS, methods=list(SWEEP_DEFAULTS["methods"]))
    for name, raw in merged.items():
        raw = str(raw)
        if name == "methods":
            chosen = _methods(raw, problems)
            if chosen and tab == "sweep":
                sweep["methods"] = chosen
            elif chosen:
                methods = chosen
        elif name == "lr_multipliers":
            sweep["multipliers"] = raw.replace(",", ", ")
        elif name == "max_steps" and tab == "sweep":
            try:
                sweep["steps"] = _number("steps", raw)
            except ValueError:
                problems.append(f"max_steps: {raw!r} is not a whole number")
        elif name == "base_model":
            key = "model" if raw.lower() in MODEL_PRESETS else "model_path"
            settings[key] = raw.lower() if key == "model" else raw
        elif name in FLAGS:
            key = FLAGS[name]
            if key in INTS or key in FLOATS:
                try:
                    settings[key] = _number(key, raw)
                except ValueError:
                    problems.append(f"{name}: {raw!r} is not a {'whole number' if key in INTS else 'number'}")
            else:
                settings[key] = raw
        else:
            problems.append(f"{name}: not a setting of this app")
    return Setup(settings, methods, sweep["methods"], sweep["multipliers"], sweep["steps"], tab, preset, problems)


# ----------------------------------------------------------------------------- setup -> URL
def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-12)
    return (a or "") == (b or "")


def _text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def make_query(settings: dict, methods, tab: str = "compare", sweep_methods=None, multipliers=None, sweep_steps=None):
    """The query string ("?a=1&b=2", or "" at the defaults) of a setup: only what differs from the defaults.
    An upload cannot travel in a link and is left out (the user uploads it again)."""
    tab = tab if tab in TABS else "compare"
    query: dict[str, str] = {}
    if tab == "sweep":
        sweep_methods = list(sweep_methods or [])
        if sweep_methods != list(SWEEP_DEFAULTS["methods"]):
            query["methods"] = ",".join(sweep_methods)
        if sweep_steps is not None and not _same(sweep_steps, SWEEP_DEFAULTS["steps"]):
            query["max_steps"] = _text(sweep_steps)
        compact = str(multipliers or "").replace(" ", "")
        if compact and compact != SWEEP_DEFAULTS["multipliers"].replace(" ", ""):
            query["lr_multipliers"] = compact
    elif list(methods or []) != list(DEFAULT_METHODS):
        query["methods"] = ",".join(methods or [])
    model = (settings.get("model_path") or "").strip() or settings.get("model")
    if not _same(model, DEFAULTS["model"]):
        query["base_model"] = str(model)
    for key, flag in SETTING_FLAG.items():
        if key == "model" or (key == "max_steps" and tab == "sweep"):
            continue
        value = settings.get(key, DEFAULTS[key])
        if value is None or _same(value, DEFAULTS[key]):
            continue
        query[flag] = _text(value)
    if tab != "compare":
        query["tab"] = tab
    return "?" + urlencode(query, safe=",/:") if query else ""


def preset_link(name: str) -> str:
    """The link of a preset, relative to the app's address ("?preset=...")."""
    return "?" + urlencode({"preset": PRESETS[name].name})
