"""Where a run trains: in the server's process (the default), inside a ZeroGPU call (zerogpu.py), or in a
worker process per device (workers.py). The handlers see the same two steps wherever it trains:

    prepared = runner.start(session, config, policy, public, job)   # loads the model and data
    events = runner.events(prepared, stop=session.stop.is_set)     # StepEvent ... RunResult, as iter_compare

In another process the run is a `Job` (plain values, pickled there) and `job_events(job)` trains it:
it loads the model and data, yields a `Loaded` summary (no model), then the training events with every
RunResult's model on the CPU (or dropped), so that nothing it yields holds a CUDA tensor. Its errors
come back as `Failed` items and are raised here with their type, so the handler words them as before.
Stop reaches the other process through a flag file (a path both processes see): no shared objects.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..training import Prepared, RunResult, iter_compare, iter_lr_sweep
from ..training.config import TrainConfig
from . import memory
from .policy import Policy, check_model_size, check_targets

BACKEND = None  # None: train in this process; else an object with .start(job) -> iterator of job items


def use(backend) -> None:
    """Where runs train from now on (serve.launch decides)."""
    global BACKEND
    BACKEND = backend


def remote() -> bool:
    return BACKEND is not None


@dataclass
class Job:
    """One Train / Run sweep press, as it crosses to the process that trains it (pickled: plain values)."""

    kind: str  # "compare" | "sweep"
    methods: list[str]
    config: TrainConfig | None = None  # set by start(): the resolved model and data
    lrs: dict[str, float] | None = None  # compare: {method: learning rate}
    multipliers: list[float] | None = None  # sweep: learning-rate multipliers
    policy: Policy = field(default_factory=Policy)
    public: str | None = None  # served: the Hub id the adapter configs name instead of a server folder
    keep_models: bool = True  # compare: the models come back (Inspect, adapter downloads); sweep: metrics only
    stop_path: str = ""  # the run stops when this file exists


@dataclass
class Loaded:
    """What the handler needs of the loaded model once it is in another process (no weights)."""

    name: str
    source: str
    task: str
    device: torch.device
    dtype: torch.dtype
    default_target_modules: list[str]
    head_modules: list[str]


@dataclass
class Baseline:
    """The base model's eval metric, measured in the training process (the handler reads prepared.baseline)."""

    value: float | None


class RunEnded(RuntimeError):
    """The process training a run ended without finishing it (a crash, the kernel's out-of-memory killer):
    not the user's mistake nor the app's bug; the handler shows the message and the server serves on."""


@dataclass
class Failed:
    """An exception raised in the training process (re-raised in the server with its type)."""

    error: BaseException


# ----------------------------------------------------------------------------- the training process's side
_CACHE = None  # a UiSession of the training process: its last model + data, reused when the next run matches


def job_events(job: Job, keep_cache: bool = True) -> Iterator[Loaded | Baseline | Failed | object]:
    """Train `job` here; yield Loaded, then the training events (and Baseline when it changes). Picklable.
    keep_cache: keep the loaded model for the next run in this process (a device's worker); ZeroGPU's
    worker lets it go, so nothing stays on a GPU once the call has ended."""
    global _CACHE
    import tqdm

    from .session import UiSession

    tqdm.tqdm.monitor_interval = 0  # no tqdm monitor thread (datasets' progress bars) outliving the run
    try:
        _CACHE = _CACHE or UiSession()
        prepared = _CACHE.prepare(job.config)
        loaded = prepared.loaded
        if job.public:
            loaded.source = loaded.name = job.public
        check_model_size(job.policy, loaded.model)
        check_targets(loaded.model, job.config.target_modules or loaded.default_target_modules, job.config.r)
        yield Loaded(
            loaded.name,
            str(loaded.source),
            loaded.task,
            loaded.device,
            loaded.dtype,
            list(loaded.default_target_modules),
            list(loaded.head_modules),
        )
        yield prepared.data
        stop = (lambda: os.path.exists(job.stop_path)) if job.stop_path else None
        if job.kind == "sweep":
            events = iter_lr_sweep(job.methods, job.multipliers, job.config, prepared, stop=stop)
        else:
            events = iter_compare(job.methods, job.config, prepared, stop=stop, lrs=job.lrs)
        baseline = None
        try:
            for event in events:
                if prepared.baseline != baseline:
                    baseline = prepared.baseline
                    yield Baseline(baseline)
                if isinstance(event, RunResult):
                    event.model = event.model.to("cpu") if job.keep_models and event.model is not None else None
                yield event
        finally:
            events.close()
    except Exception as err:  # noqa: BLE001 - every error goes back to the server, which words it
        yield Failed(err)
    finally:
        if not keep_cache and _CACHE is not None:
            _CACHE.free_models()  # collects, empties the CUDA cache and trims
        memory.trim()


# ----------------------------------------------------------------------------- the server's side
class RemotePrepared(Prepared):
    """The handler's `prepared` when the run trains elsewhere: the summary of the loaded model, the data,
    the baseline as the training process reports it, and the stream of that run's items."""

    def __init__(self, loaded: Loaded, data, items: Iterator, stop_path: str):
        super().__init__(loaded, data)
        self.items, self.stop_path = items, stop_path


def _next(items: Iterator, poll: bool = True):
    """The next item of the run (None: nothing yet, when `poll`); a Failed one is raised here."""
    item = next(items)
    while item is None and not poll:
        item = next(items)
    if isinstance(item, Failed):
        raise item.error
    return item


def start(session, config: TrainConfig, policy: Policy, public: str | None, job: Job) -> Prepared:
    """Load the model and data where the run will train; return what the handler calls `prepared`.
    In this process: the session's cached Prepared, checked against the policy as before."""
    if BACKEND is None:
        prepared = session.prepare(config)
        if public:  # served: the adapter configs and the status name the Hub id, never a server folder
            prepared.loaded.source = prepared.loaded.name = public
        check_model_size(policy, prepared.loaded.model)
        check_targets(prepared.loaded.model, config.target_modules or prepared.loaded.default_target_modules, config.r)
        return prepared
    stop_path = os.path.join(tempfile.mkdtemp(prefix="delora-viz-stop-"), "stop")
    job = replace(job, config=config, policy=policy, public=public, stop_path=stop_path)
    items = None
    try:
        items = BACKEND.start(job)  # ZeroGPU refuses here a run too long for one call
        loaded, data = _next(items, poll=False), _next(items, poll=False)
    except BaseException:
        _close(items, stop_path)
        raise
    return RemotePrepared(loaded, data, items, stop_path)


def events(prepared: Prepared, stop=None, **run) -> Iterator:
    """The run's training events: iter_compare / iter_lr_sweep here (run: methods, config, lrs or
    multipliers, kind), or the items of the run in the other process. Stop is forwarded as the flag file."""
    if not isinstance(prepared, RemotePrepared):
        return _local_events(prepared, stop, **run)
    return _remote_events(prepared, stop)


def _local_events(prepared: Prepared, stop, kind: str = "compare", **run) -> Iterator:
    if kind == "sweep":
        events = iter_lr_sweep(run["methods"], run["multipliers"], run["config"], prepared, stop=stop)
    else:
        events = iter_compare(run["methods"], run["config"], prepared, stop=stop, lrs=run.get("lrs"))
    try:
        yield from events
    finally:
        events.close()  # on an error or Stop: the runs' models and optimizers go now
        memory.trim()  # and the heap pages they used go back to the OS (glibc keeps them otherwise)


def _remote_events(prepared: RemotePrepared, stop) -> Iterator:
    try:
        while True:
            if stop is not None and stop() and not os.path.exists(prepared.stop_path):
                Path(prepared.stop_path).touch()  # the training process checks it before every step
            try:
                item = _next(prepared.items)
            except StopIteration:
                return
            if item is None:  # a worker's poll timed out: look at Stop again
                continue
            if isinstance(item, Baseline):
                prepared.baseline = item.value
                continue
            yield item
    finally:
        _close(prepared.items, prepared.stop_path)


def _close(items: Iterator | None, stop_path: str) -> None:
    """Stop the run in the other process (if it still goes) and wait until it has let go of its device."""
    Path(stop_path).touch()
    close = getattr(items, "close", None)
    if close is not None:
        close()
    memory.trim()
    try:
        os.remove(stop_path)
        os.rmdir(os.path.dirname(stop_path))
    except OSError:
        pass
