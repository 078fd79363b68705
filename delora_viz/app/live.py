"""LiveView: consumes training events and gives the live plots' long-format frames and the status
line, throttled to a few updates a second.

    view = LiveView(steps=40, runs=["lora", "delora"])
    for event in iter_compare(methods, config, prepared, stop=session.stop.is_set):
        view.add(event)
        if view.due():
            show(view.frames(), view.status())
"""

from __future__ import annotations

import math
import time

import pandas as pd

from ..plots.frames import bound_color, live_colors, live_frame, live_loss_frame, method_color
from ..training.loop import RunResult, StepEvent
from ..training.methods import METHODS

BOUNDED = ("delora", "delora-fixed-lambda", "delora-paper")  # the methods with a bound on ||dW||_F (and a lambda)
LIVE_PLOT_METRICS = {"norm": "delta_fro", "angle": "angle_delta_w_deg", "lambda": "lambda"}
_MEANS = ("delta_fro", "bound", "angle_delta_w_deg", "lambda", "rel_delta")


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
        self.eval_rows: list[dict] = []  # (step, value, series): the eval metric at each evaluation
        self.baseline: float | None = None  # the base model's metric (step 0, the same for every run)
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
            # every evaluation of the run, the one at the step it stopped included (made after its last event)
            self.eval_rows = [r for r in self.eval_rows if r["series"] != event.run] + [
                {"step": h["step"], "value": float(h["eval_metric"]), "series": event.run}
                for h in event.history
                if h.get("eval_metric") is not None and not math.isnan(h["eval_metric"])
            ]
            return
        self.last = event
        self.losses.append({"run": event.run, "method": event.method, "step": event.step, "loss": event.loss})
        if event.rows:
            mean = {k: _nanmean([r[k] for r in event.rows]) for k in _MEANS}
            self.means.setdefault(event.run, []).append(
                {"run": event.run, "method": event.method, "step": event.step, **mean}
            )
        if event.eval_metric is not None:
            self.evals[event.run] = (event.eval_name, event.eval_metric)
            self.eval_rows.append({"step": event.step, "value": float(event.eval_metric), "series": event.run})

    @property
    def done(self) -> bool:
        return bool(self.runs) and len(self.results) >= len(self.runs)

    def due(self, now: float | None = None) -> bool:
        """True at most every min_interval seconds (and for the first event); marks the update as shown."""
        now = time.monotonic() if now is None else now
        if now - self._shown < self.min_interval:
            return False
        self._shown = now
        return True

    def layer_means_frame(self) -> pd.DataFrame:
        parts = [
            pd.DataFrame(self.results[run].rows) if run in self.results else pd.DataFrame(rows)
            for run, rows in self.means.items()
        ]
        parts += [pd.DataFrame(r.rows) for run, r in self.results.items() if run not in self.means and r.rows]
        return (
            pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["run", "method", "step", *_MEANS])
        )

    def series(self) -> dict[str, list[str]]:
        """Every series each live plot will show, in legend order (runs are named by their method)."""
        bounded = [r for r in self.runs if r in BOUNDED]
        return {
            "norm": [f"{r} ||dW||" for r in self.runs] + [f"{r} bound" for r in bounded],
            "angle": self.runs,
            "lambda": bounded,
            "loss": self.runs,
            "eval": self.runs,
        }

    def frames(self) -> dict[str, tuple[pd.DataFrame, dict]]:
        """{"norm" | "angle" | "lambda" | "loss" | "eval": (long frame, color_map)}."""
        tracker = self.layer_means_frame()
        frames = {key: live_frame(tracker, metric, self.max_points) for key, metric in LIVE_PLOT_METRICS.items()}
        frames["loss"] = live_loss_frame(pd.DataFrame(self.losses), self.max_points)
        start = [] if self.baseline is None else [{"step": 0, "value": self.baseline, "series": r} for r in self.runs]
        evals = pd.DataFrame(start + self.eval_rows, columns=["step", "value", "series"])
        frames["eval"] = evals.drop_duplicates(["series", "step"], keep="last").sort_values("step", kind="stable")
        out = {}
        for key, names in self.series().items():
            frame = _complete(frames[key], names)
            out[key] = (frame, live_colors(frame) if len(frame) else {})
        return out

    def status(self) -> str:
        evals = " · ".join(
            f"{run} {self.evals[run][0]} {self.evals[run][1]:.3f}" for run in self.runs if run in self.evals
        )
        tail = "".join(f" · {part}" for part in (evals, self.device) if part)
        if self.done:
            stopped = any(r.status == "stopped" for r in self.results.values())
            diverged = [r.run for r in self.results.values() if r.status == "diverged"]
            if stopped:  # runs take turns, so each stopped at its own step: name each one's
                at = ", ".join(f"{r.final.get('steps', 0)} ({run})" for run, r in self.results.items())
                head = f"stopped at step {at} of {self.steps}"
            else:
                head = f"finished {self.steps}/{self.steps} steps"
            head += f" in {time.monotonic() - self.started:.0f} s" + (
                f" · diverged: {', '.join(diverged)}" if diverged else ""
            )
            return head + tail
        if self.last is None:
            return "starting: evaluating the base model" + tail
        e = self.last
        return f"step {e.step}/{self.steps} · {e.run} loss {e.loss:.3g} · {e.steps_per_s:.1f} steps/s" + tail


def legend_html(runs: list[str]) -> str:
    """One legend for all live plots (theirs are hidden: they cut long names): a swatch per method, and a
    dashed one for each bound."""

    def item(color: str, label: str, dashed: bool = False, style: str = "solid", width: int = 3) -> str:
        line = f"border-top:{width}px {'dashed' if dashed else style} {color}"
        return f'<span class="legend-item"><span class="swatch" style="{line}"></span>{label}</span>'

    label = lambda r: f"{METHODS[r].label} ({r})" if r in METHODS else r  # noqa: E731
    look = {"lora": ("solid", 5), "dora": ("dotted", 3)}  # as layout.CSS draws them
    items = [item(method_color(r), label(r), False, *look.get(r, ("solid", 3))) for r in runs]
    items += [
        item(bound_color(method_color(r)), f"{label(r)} bound on ‖ΔW‖", dashed=True) for r in runs if r in BOUNDED
    ]
    return f'<div class="live-legend">{"".join(items)}</div>'
