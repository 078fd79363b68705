"""The app's handlers: what each button does, between the widgets and the training loop.

compare/sweep are generators (Gradio streams each yield). Stop sets the session's stop flag; the loop
checks it before every step, so every run ends within one step and the results and downloads are
built from what was recorded.
"""

from __future__ import annotations

import logging

import gradio as gr

from ..plots import plot_lr_sweep
from ..training.data import describe
from ..training.loop import RunResult, StepEvent, iter_compare, iter_lr_sweep, sweep_frame
from .live import LiveView
from .results import inspect_layer, layer_names, results_table, rounded, write_downloads
from .session import UiSession
from .settings import SETTINGS, make_config, parse_multipliers

log = logging.getLogger(__name__)
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, NotImplementedError)
PLOTS = ("norm", "angle", "lambda", "loss")


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
        yield out(
            _text(view.status()),
            None,
            table,
            files,
            gr.update(choices=runs, value=runs[0]),
            gr.update(choices=layers, value=layers[0] if layers else None),
        )
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
                yield (
                    _text(
                        f"run {len(results) + 1}/{total} · {event.run} step {event.step}/{event.total_steps} · "
                        f"loss {event.loss:.3g} · {event.steps_per_s:.1f} steps/s"
                    ),
                    skip,
                    skip,
                )
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
