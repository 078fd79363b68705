"""The app's settings: the widgets' values -> (methods, TrainConfig, learning rates), or a ValueError
that says what to change. Defaults come from TrainConfig (the one home of the defaults)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from ..training.config import TrainConfig, config_defaults
from ..training.methods import METHODS
from ..training.models import EMBEDDED_MODEL
from ..training.readers import FILE_SUFFIXES

MAX_UPLOAD_MB = 50

_CONFIG = config_defaults()  # the one home of the defaults
# Every setting of a comparison, in the order the app passes them; the values are the app's defaults,
# taken from TrainConfig (blank text boxes and 0 stand for its None).
DEFAULTS: dict = {
    "model": EMBEDDED_MODEL,
    "model_path": "",
    "data": "",
    "upload": None,
    "text_column": "",
    "label_column": "",
    "task": "auto",
    "r": _CONFIG["r"],
    "delora_lambda": _CONFIG["delora_lambda"],
    **{f"lr_{m}": method.default_lr for m, method in METHODS.items()},
    **{k: _CONFIG[k] for k in ("max_steps", "batch_size", "max_length")},
    "target_modules": "",
    "seed": _CONFIG["seed"],
    "device": _CONFIG["device"],
    "eval_every": _CONFIG["eval_every"],
    "eval_examples": _CONFIG["eval_examples"],
    "max_examples": 0,
}
SETTINGS = tuple(DEFAULTS)


def _int(name: str, value):
    """Gradio numbers arrive as floats (or None when blank); whole numbers become ints, the rest is left
    for TrainConfig to reject with its own message."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{name} is empty: enter a whole number")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _float(name: str, value):
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{name} is empty: enter a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def _upload(path, max_mb: float | None = None) -> str | None:
    max_mb = MAX_UPLOAD_MB if max_mb is None else max_mb  # main() may change the limit
    if not path:
        return None
    path = Path(getattr(path, "name", path))  # a filepath string, or a tempfile wrapper
    if path.suffix.lower() not in FILE_SUFFIXES:
        raise ValueError(f"the uploaded file '{path.name}' is not {', '.join(FILE_SUFFIXES)}: upload one of those")
    size_mb = path.stat().st_size / 2**20
    if size_mb > max_mb:
        raise ValueError(f"the uploaded file is {size_mb:.3g} MB; the limit is {max_mb:g} MB: upload a smaller sample")
    return str(path)


def _lambda(value, methods) -> float:
    """λ as typed; a non-positive one is refused below with the app's words (TrainConfig needs one > 0)."""
    lam = _float("DeLoRA λ", value)
    if not lam > 0:
        if any(m.startswith("delora") for m in methods):
            raise ValueError(
                f"DeLoRA λ must be a positive number, got {lam:g}: the app's default is "
                f"{DEFAULTS['delora_lambda']:g} (for these small models); PEFT's examples use 10-15 for 2-4k-wide "
                "LLM layers"
            )
        return DEFAULTS["delora_lambda"]  # no DeLoRA run: λ is unused
    return lam


def make_config(settings: dict, methods) -> tuple[list[str], TrainConfig, dict[str, float]]:
    """The widgets' values (keys of DEFAULTS; missing ones take the default) -> what iter_compare needs."""
    s = DEFAULTS | dict(settings)
    methods = [m for m in (methods or []) if m]
    if not methods:
        raise ValueError("no method ticked: tick at least one of " + ", ".join(METHODS))
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    model = (s["model_path"] or "").strip() or s["model"] or EMBEDDED_MODEL
    data = _upload(s["upload"]) or (s["data"] or "").strip() or None
    max_examples = _int("max examples", s["max_examples"]) if s["max_examples"] not in (None, "") else 0
    config = TrainConfig(
        method=methods[0],
        model=model,
        data=data,
        task=None if s["task"] in (None, "", "auto") else s["task"],
        max_steps=_int("steps", s["max_steps"]),
        batch_size=_int("batch size", s["batch_size"]),
        max_length=_int("max length", s["max_length"]),
        r=_int("r", s["r"]),
        delora_lambda=_lambda(s["delora_lambda"], methods),
        target_modules=(s["target_modules"] or "").strip() or None,
        seed=_int("seed", s["seed"]),
        device=s["device"] or "auto",
        eval_every=_int("eval every", s["eval_every"]),
        eval_examples=_int("eval examples", s["eval_examples"]),
        max_examples=max_examples or None,
    )
    lrs = {m: _float(f"learning rate ({METHODS[m].label})", s[f"lr_{m}"]) for m in methods}
    for m in methods:  # each run's own config, validated now rather than after the model has loaded
        try:
            replace(config, method=m, lr=lrs[m])
        except ValueError as err:
            raise ValueError(f"{METHODS[m].label}: {err}") from None
    return methods, config, lrs


def parse_multipliers(text: str) -> list[float]:
    """'0.1, 1, 10, 100' -> [0.1, 1.0, 10.0, 100.0]."""
    parts = [p for p in str(text or "").replace(";", ",").replace(" ", ",").split(",") if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(
            f"learning-rate multipliers must be numbers separated by commas, e.g. 0.1, 1, 10; got {text!r}"
        ) from None
    if not values or any(not (math.isfinite(v) and v > 0) for v in values):
        raise ValueError(f"learning-rate multipliers must be positive numbers, e.g. 0.1, 1, 10; got {text!r}")
    return values
