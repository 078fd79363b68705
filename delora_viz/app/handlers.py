"""The app's handlers: what each button does, between the widgets and the training loop.

compare/sweep are generators (Gradio streams each yield). Gradio admits them at once; they wait in the
app's own AdmissionQueue (queue.py), telling the user how many runs are ahead, and Stop cancels a queued
run before it starts. Stop sets the session's flag for its tab; the loop checks it before every step, so
a run ends within one step and the results and downloads are built from what was recorded.
"""

from __future__ import annotations

import csv
import logging
import re
import tempfile
from dataclasses import replace
from pathlib import Path

import gradio as gr
import torch

from ..plots import plot_lr_sweep
from ..training import RunResult, StepEvent, sweep_frame
from ..training.data import describe
from . import runner
from .columns import check_upload, file_columns, with_columns
from .live import BOUNDED, LiveView, legend_html
from .policy import Policy, check_caps, resolve_dataset, resolve_model
from .queue import AdmissionQueue
from .results import display_table, inspect_layer, layer_names, results_table, rounded, write_downloads
from .session import Sessions, UiSession
from .settings import SETTINGS, make_config, parse_multipliers

log = logging.getLogger(__name__)
UNREADABLE = (csv.Error, UnicodeDecodeError)  # a garbage upload: one line, no traceback
PLOTS = ("norm", "angle", "lambda", "loss", "eval")
POLICY = Policy()  # launch() replaces it with the one for its host / flags
QUEUE = AdmissionQueue(slots=1)  # one GPU, one run at a time
SESSIONS = Sessions(ttl_s=3600)  # one UiSession per browser tab, freed on unload or after an hour idle
WAIT_POLL_S = 0.5
INTERNAL = "internal error, see the server log"
BUSY = "⚠️ this page is already running or waiting for a comparison or a sweep: press Stop (on either tab) first"
# DeloraVizError.field (the library's name of a knob) -> the label of the widget that sets it
FIELD_LABELS = {
    "model": "Model",
    "base_model": "Model",
    "data": "Dataset",
    "data_path": "Dataset",
    "upload": "upload",
    "text_column": "text column",
    "label_column": "label column",
    "task": "Task",
    "r": "rank r",
    "rank": "rank r",
    "delora_lambda": "DeLoRA λ",
    "lr": "learning rate",
    "max_steps": "steps",
    "batch_size": "batch size",
    "max_length": "max length (tokens)",
    "cutoff_len": "max length (tokens)",
    "seed": "seed",
    "device": "device",
    "target_modules": "target modules",
    "eval_every": "eval every (steps)",
    "eval_examples": "eval examples",
    "max_examples": "max examples (0: all)",
    "methods": "Methods",
    "multipliers": "lr multipliers",
}


def _text(message: str) -> str:
    return str(message).replace("<", "&lt;")


def user_message(err: BaseException) -> str | None:
    """The words for a user's mistake, or None for anything else (a bug: the caller logs it).

    A mistake is a ValueError (DeloraVizError is one; the readers' and PEFT's checks raise ValueError) or
    a missing file the user named. With a `field`, the message leads with the widget's label: the library
    starts its message with the field's name, which the label replaces; the rest of its text stays as written."""
    if isinstance(err, UNREADABLE):
        return "the file could not be read (is it really csv / json / jsonl / text, in UTF-8?): upload another"
    if not isinstance(err, (ValueError, FileNotFoundError)):
        return None
    message = str(err)
    field = getattr(err, "field", None)
    label = FIELD_LABELS.get(field) if field else None
    if label is None:
        return message
    lead = re.match(rf"{re.escape(field)}( \([^)]*\))? ", message)  # "r (the rank) must be ..."
    if lead:
        return f"{label} {message[lead.end() :]}"
    return f"{label}: {message}"


def without_temp_folders(message: str) -> str:
    """Uploads and the session's files live under the temporary folder: a message names them by file name
    only (a library message may quote the path it read; the server's folders are nobody's business)."""
    tmp = re.escape(tempfile.gettempdir().rstrip("/"))
    return re.sub(rf"{tmp}/(?:[^\s'\"/]+/)*", "", message)


def _error(err: BaseException) -> str:
    """A readable message for the screen; anything unexpected is logged here with its traceback."""
    if isinstance(err, torch.OutOfMemoryError):
        message = (
            "out of GPU memory: the run ended and its memory was freed; what was recorded is kept. "
            "Try fewer methods, a smaller batch size, max length or rank"
        )
    elif isinstance(err, runner.RunEnded):  # app-serve: its worker process died; the server serves on
        log.error("a run's training process ended: %s", err)
        message = str(err)
    else:
        message = user_message(err)
    if message is None:
        log.exception("unexpected error in the app")
        message = INTERNAL
    message = without_temp_folders(message)
    gr.Warning(message)
    return f"⚠️ {_text(message)}"


def _plots(frames: dict, x_max: int) -> list:
    """The LinePlot updates. Only the data changes while a run goes (color_map and x_lim stay the same):
    a changed prop rebuilds the chart, and a rebuild can show stale data or drop a series."""
    return [gr.update(value=frames[k][0], color_map=frames[k][1] or None, x_lim=[0, x_max]) for k in PLOTS]


def _device(prepared) -> str:
    """What auto picked, e.g. "cpu, float32" or "cuda:0, bfloat16"."""
    device, dtype = prepared.loaded.device, str(prepared.loaded.dtype).removeprefix("torch.")
    return f"{device if device.type == 'cuda' else device.type}, {dtype}"


def _admit(session: UiSession, flag, status):
    """Wait in the app's queue; yields status updates; returns the ticket, or None when Stop cancelled it."""
    ticket = QUEUE.join()
    while not ticket.wait(WAIT_POLL_S):
        if flag.is_set() or session.closed:
            ticket.leave()
            return None
        ahead = ticket.ahead()
        yield status(f"waiting: {ahead} run{'s' if ahead != 1 else ''} ahead of yours (Stop cancels it)")
    return ticket


def _prepare(session: UiSession, config, policy: Policy, settings: dict, job: runner.Job):
    """Apply the server's policy to model and data, load them, and check what only the model can tell.
    An upload (Gradio keeps it in its own upload folder) is the user's file, not a server path; the text /
    label columns picked in the UI rewrite it (blank: the readers guess)."""
    model, public = resolve_model(config.model or "minilm", policy)
    columns = (settings.get("text_column"), settings.get("label_column"))
    picked = any((c or "").strip() for c in columns)
    directory = session.output_dir("data") if (policy.served or picked) and config.data else None
    if settings.get("upload"):
        check_upload(config.data)
    data = config.data if settings.get("upload") else resolve_dataset(config.data, policy, directory)
    if picked and data and Path(data).is_file():  # an upload, a local file, or a streamed Hub dataset
        data = with_columns(data, *columns, directory)
    config = replace(config, model=model, data=data)
    # app-serve: runner.start loads here, in a device's worker or in a ZeroGPU call, and applies the checks
    return config, runner.start(session, config, policy, public, job)


def compare(session: UiSession | None, methods, *values):
    """Train the ticked methods side by side; yields (status, legend, 5 plots, table, downloads, run, layer)."""
    session = session if session is not None else UiSession()
    skip = gr.skip()
    x_max = 1

    def out(status, frames=None, legend=skip, table=skip, files=skip, run=skip, layer=skip):
        plots = _plots(frames, x_max) if frames else [skip] * len(PLOTS)
        return (status, legend, *plots, table, files, run, layer)

    if session.busy:
        yield out(BUSY)
        return
    session.stop.clear()
    session.busy += 1
    view = ticket = None
    try:
        methods, config, lrs = make_config(dict(zip(SETTINGS, values)), methods)
        check_caps(
            POLICY, r=config.r, max_steps=config.max_steps, batch_size=config.batch_size, max_length=config.max_length
        )
        x_max = config.max_steps
        ticket = yield from _admit(session, session.stop, out)
        if ticket is None:
            yield out("cancelled while waiting: nothing ran")
            return
        yield out("loading the model and data…", legend=legend_html(methods))
        job = runner.Job("compare", methods, lrs=lrs)  # app-serve: where it trains (runner.py)
        config, prepared = _prepare(session, config, POLICY, dict(zip(SETTINGS, values)), job)
        session.results = {}
        view = LiveView(config.max_steps, methods, device=_device(prepared))
        yield out(_text(f"{prepared.loaded.name} · {describe(prepared.data)} · evaluating the base model…"))
        events = runner.events(prepared, stop=session.stop.is_set, methods=methods, config=config, lrs=lrs)
        try:
            for event in events:
                view.add(event)
                view.baseline = prepared.baseline
                if isinstance(event, StepEvent) and view.due():
                    yield out(_text(view.status()), view.frames())
        finally:
            events.close()  # on OOM or cancel: the runs' models and optimizers go now
        session.results = dict(view.results)
        results = list(view.results.values())
        table = display_table(results_table(results))
        yield out(_text(view.status() + " · writing downloads…"), view.frames(), table=table)
        files = write_downloads(results, prepared, session.output_dir("compare"))
        runs, layers = list(view.results), layer_names(results)
        first = next((r for r in runs if r in BOUNDED), runs[0])  # Inspect opens on DeLoRA, the method taught
        yield out(
            _text(view.status()),
            table=table,
            files=files,
            run=gr.update(choices=runs, value=first),
            layer=gr.update(choices=layers, value=layers[0] if layers else None),
        )
    except Exception as err:  # noqa: BLE001 - every error becomes a message
        if view is not None and view.results:
            session.results = dict(view.results)
        if isinstance(err, torch.OutOfMemoryError):  # free the GPU for everyone; keep the recorded numbers
            session.free_models()
        yield out(_error(err), view.frames() if view is not None and view.means else None)
    finally:
        if ticket is not None:
            ticket.leave()
        session.release()


def stop(session: UiSession | None):
    """Stop whatever this session runs or waits for (a comparison or a sweep): it keeps what it recorded.
    One flag per session, so either tab's Stop button ends it."""
    if session is not None:
        session.stop.set()


def sweep(session: UiSession | None, methods, multipliers, steps, *values):
    """Learning-rate sweep: yields (status, figure, table) as runs finish. Keeps metrics, not models."""
    session = session if session is not None else UiSession()
    skip = gr.skip()
    if session.busy:
        yield BUSY, skip, skip
        return
    session.stop.clear()
    session.busy += 1
    ticket = None
    try:
        settings = dict(zip(SETTINGS, values)) | {"max_steps": steps, "eval_every": steps}
        methods, config, _ = make_config(settings, methods)
        check_caps(
            POLICY, r=config.r, max_steps=config.max_steps, batch_size=config.batch_size, max_length=config.max_length
        )
        mults = parse_multipliers(multipliers)
        ticket = yield from _admit(session, session.stop, lambda s: (s, skip, skip))
        if ticket is None:
            yield "cancelled while waiting: nothing ran", skip, skip
            return
        yield "loading the model and data…", skip, skip
        job = runner.Job("sweep", methods, multipliers=mults, keep_models=False)  # app-serve
        config, prepared = _prepare(session, config, POLICY, settings, job)
        total, results, view = len(mults) * len(methods), [], LiveView(config.max_steps, [])
        figure = table = skip
        run = dict(kind="sweep", methods=methods, multipliers=mults, config=config)
        for event in runner.events(prepared, stop=session.stop.is_set, **run):
            if isinstance(event, RunResult):  # a finished run: keep its metrics, drop its model
                event.model = None
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
        if isinstance(err, torch.OutOfMemoryError):
            session.free_models()
        yield _error(err), skip, skip
    finally:
        if ticket is not None:
            ticket.leave()
        session.release()


def inspect(session: UiSession | None, run, layer):
    """One layer of the session's last comparison: (status, singular values, heatmap, turn view, numbers)."""
    try:
        sv, heat, turn, numbers, note = inspect_layer(session.results if session else {}, run, layer)
        return (
            _text(f"{layer} · singular values and turn view: every run; heatmap: {run}{note}"),
            sv,
            heat,
            turn,
            numbers,
        )
    except Exception as err:  # noqa: BLE001
        return _error(err), gr.skip(), gr.skip(), gr.skip(), gr.skip()


def upload_columns(path):
    """The upload changed: offer its columns in the two pickers (blank = let the app guess)."""
    names = [""] + file_columns(path)
    return gr.update(choices=names, value=""), gr.update(choices=names, value="")


def unload(request: gr.Request) -> None:
    """demo.unload: the tab closed or reloaded; its session's models and files go now (or when its run ends)."""
    SESSIONS.close(request)


def queue_note() -> str:
    """For the status line before a press: how busy the server is."""
    n = len(QUEUE)
    return "Press **Train** to start." + (f" ({n} run{'s' if n != 1 else ''} on the server now)" if n else "")
