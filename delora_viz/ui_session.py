"""What the app does between its widgets and the training loop, with no Gradio in it (so it is testable).

- `make_config`: the widgets' values -> (methods, TrainConfig, learning rates), or a ValueError that
  says what to change.
- `UiSession`: one browser session's state: its stop flag, its loaded model + data, its last results.
- `LiveView`: consumes training events and gives the live plots' long-format frames and the status
  line, throttled to a few updates a second.

    view = LiveView(steps=40, runs=["lora", "delora"])
    for event in iter_compare(methods, config, prepared, stop=session.stop.is_set):
        view.add(event)
        if view.due():
            show(view.frames(), view.status())
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from .config import TrainConfig
from .formats import FILE_SUFFIXES
from .methods import DEFAULT_LAMBDA, DEFAULT_RANK, METHODS
from .models import EMBEDDED_MODEL
from .plots_live import live_colors, live_frame, live_loss_frame
from .train import Prepared, RunResult, StepEvent, prepare

MAX_UPLOAD_MB = 50
BOUNDED = ("delora", "delora-paper")  # the methods with a bound on ||dW||_F (and a lambda)
LIVE_METRICS = {"norm": "delta_fro", "angle": "angle_delta_w_deg", "lambda": "lambda"}
_MEANS = ("delta_fro", "bound", "angle_delta_w_deg", "lambda", "rel_delta")

# Every setting of a comparison, in the order the app passes them; the values are the app's defaults.
DEFAULTS: dict = {
    "model": EMBEDDED_MODEL, "model_path": "", "data": "", "upload": None, "task": "auto",
    "r": DEFAULT_RANK, "delora_lambda": DEFAULT_LAMBDA,
    **{f"lr_{m}": method.default_lr for m, method in METHODS.items()},
    "steps": 40, "batch_size": 8, "max_length": 64, "target_modules": "", "seed": 0, "device": "auto",
    "eval_every": 20, "eval_examples": 96, "max_examples": 0,
}  # fmt: skip
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
        method=methods[0], model=model, data=data, task=None if s["task"] in (None, "", "auto") else s["task"],
        steps=_int("steps", s["steps"]), batch_size=_int("batch size", s["batch_size"]),
        max_length=_int("max length", s["max_length"]), r=_int("r", s["r"]),
        delora_lambda=_float("lambda", s["delora_lambda"]), target_modules=(s["target_modules"] or "").strip() or None,
        seed=_int("seed", s["seed"]), device=s["device"] or "auto", eval_every=_int("eval every", s["eval_every"]),
        eval_examples=_int("eval examples", s["eval_examples"]), max_examples=max_examples or None,
    )  # fmt: skip
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
        raise ValueError(f"learning-rate multipliers must be numbers separated by commas, e.g. 0.1, 1, 10; got {text!r}") from None
    if not values or any(not (math.isfinite(v) and v > 0) for v in values):
        raise ValueError(f"learning-rate multipliers must be positive numbers, e.g. 0.1, 1, 10; got {text!r}")
    return values


class UiSession:
    """One browser session: a stop flag, a cached model + data, the last comparison's results.

    gr.State(UiSession()) deep-copies its value once per browser session; a "copy" is a fresh, empty
    session (a threading.Event cannot be copied, and nothing of one session may leak into another).
    """

    def __init__(self):
        self.stop = threading.Event()
        self.results: dict[str, RunResult] = {}
        self.prepared: Prepared | None = None
        self._key = None
        self._dir: Path | None = None

    def __deepcopy__(self, memo):
        return UiSession()

    def prepare(self, config: TrainConfig) -> Prepared:
        """Load model + data, reusing the last ones when nothing that affects them changed."""
        stamp = os.stat(config.data).st_mtime_ns if config.data and os.path.isfile(config.data) else None
        key = (config.model, config.data, stamp, config.task, config.device, config.dtype, config.seed,
               config.eval_fraction, config.max_examples)  # fmt: skip
        if key != self._key:
            self.prepared = self._key = None  # let the old model go before loading the next
            self.prepared, self._key = prepare(config), key
        self.prepared.baseline = None  # evaluation settings may have changed: evaluate the base model again
        return self.prepared

    def output_dir(self, name: str) -> Path:
        """A fresh folder for one run's downloads (earlier downloads stay valid)."""
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="delora-viz-"))
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self._dir))

    def close(self) -> None:
        """Free the models and delete this session's files (gr.State's delete_callback)."""
        self.stop.set()
        self.results, self.prepared, self._key = {}, None, None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)


def _complete(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """`frame` with one NaN row for each of `names` it lacks, rows grouped in the order of `names`."""
    missing = [n for n in names if n not in set(frame["series"])]
    if missing:
        pad = pd.DataFrame({"step": [0] * len(missing), "value": [math.nan] * len(missing), "series": missing})
        frame = pd.concat([frame, pad], ignore_index=True) if len(frame) else pad
    rank = {n: i for i, n in enumerate(names)}
    by_name = lambda series: series.map(lambda n: rank.get(n, len(rank)))  # noqa: E731
    return frame.sort_values("series", key=by_name, kind="stable", ignore_index=True)


def _nanmean(values) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


class LiveView:
    """Training events in; live frames (step, value, series) and a status line out.

    Keeps one row of layer means per (run, step), so a frame costs the same whatever the layer count;
    once a run has ended its full tracker rows (with step 0) replace the means.

    Every frame holds every series of the comparison from the first update on (a series without data
    yet is one NaN row): gr.LinePlot fixes its colour domain when it builds its chart, and rebuilds only
    when props such as color_map change, so a series that arrives later would stay invisible."""

    def __init__(self, steps: int, runs: list[str], device: str = "", min_interval: float = 0.3, max_points: int = 300):
        self.steps, self.runs, self.device = steps, list(runs), device
        self.min_interval, self.max_points = min_interval, max_points
        self.means: dict[str, list[dict]] = {}  # run -> rows of layer means
        self.losses: list[dict] = []
        self.results: dict[str, RunResult] = {}
        self.evals: dict[str, tuple[str, float]] = {}
        self.last: StepEvent | None = None
        self.started = time.monotonic()
        self._shown = -math.inf

    def add(self, event: StepEvent | RunResult) -> None:
        if isinstance(event, RunResult):
            self.results[event.run] = event
            order = {run: i for i, run in enumerate(self.runs)}  # the comparison's order, not the order runs ended
            self.results = dict(sorted(self.results.items(), key=lambda kv: order.get(kv[0], len(order))))
            if not math.isnan(event.final.get("eval_metric", math.nan)):
                self.evals[event.run] = (event.final["eval_name"], event.final["eval_metric"])
            return
        self.last = event
        self.losses.append({"run": event.run, "method": event.method, "step": event.step, "loss": event.loss})
        if event.rows:
            mean = {k: _nanmean([r[k] for r in event.rows]) for k in _MEANS}
            self.means.setdefault(event.run, []).append({"run": event.run, "method": event.method, "step": event.step, **mean})
        if event.eval_metric is not None:
            self.evals[event.run] = (event.eval_name, event.eval_metric)

    @property
    def done(self) -> bool:
        return bool(self.runs) and len(self.results) >= len(self.runs)

    def last_step(self) -> int:
        """The furthest step any run reached (the x range of a finished or stopped comparison)."""
        steps = [r.final.get("steps", 0) for r in self.results.values()] + ([self.last.step] if self.last else [])
        return max(steps, default=0)

    def due(self, now: float | None = None) -> bool:
        """True at most every min_interval seconds (and for the first event); marks the update as shown."""
        now = time.monotonic() if now is None else now
        if now - self._shown < self.min_interval:
            return False
        self._shown = now
        return True

    def tracker_frame(self) -> pd.DataFrame:
        parts = [pd.DataFrame(self.results[run].rows) if run in self.results else pd.DataFrame(rows)
                 for run, rows in self.means.items()]  # fmt: skip
        parts += [pd.DataFrame(r.rows) for run, r in self.results.items() if run not in self.means and r.rows]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["run", "method", "step", *_MEANS])

    def series(self) -> dict[str, list[str]]:
        """Every series each live plot will show, in legend order (runs are named by their method)."""
        bounded = [r for r in self.runs if r in BOUNDED]
        return {"norm": [f"{r} ||dW||" for r in self.runs] + [f"{r} bound" for r in bounded],
                "angle": self.runs, "lambda": bounded, "loss": self.runs}  # fmt: skip

    def frames(self) -> dict[str, tuple[pd.DataFrame, dict]]:
        """{"norm" | "angle" | "lambda" | "loss": (long frame, color_map)}."""
        tracker = self.tracker_frame()
        frames = {key: live_frame(tracker, metric, self.max_points) for key, metric in LIVE_METRICS.items()}
        frames["loss"] = live_loss_frame(pd.DataFrame(self.losses), self.max_points)
        out = {}
        for key, names in self.series().items():
            frame = _complete(frames[key], names)
            out[key] = (frame, live_colors(frame) if len(frame) else {})
        return out

    def status(self) -> str:
        evals = " · ".join(f"{run} {self.evals[run][0]} {self.evals[run][1]:.3f}" for run in self.runs if run in self.evals)
        tail = "".join(f" · {part}" for part in (evals, self.device) if part)
        if self.done:
            stopped = any(r.status == "stopped" for r in self.results.values())
            diverged = [r.run for r in self.results.values() if r.status == "diverged"]
            head = f"stopped at step {self.last_step()}/{self.steps}" if stopped else f"finished {self.steps}/{self.steps} steps"
            head += f" in {time.monotonic() - self.started:.0f} s" + (f" · diverged: {', '.join(diverged)}" if diverged else "")
            return head + tail
        if self.last is None:
            return "starting: evaluating the base model" + tail
        e = self.last
        return f"step {e.step}/{self.steps} · {e.run} loss {e.loss:.3g} · {e.steps_per_s:.1f} steps/s" + tail
