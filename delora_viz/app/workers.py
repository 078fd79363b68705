"""One worker process per device: runs on different devices share no process-global state.

Why processes: the per-run RNG swap (torch.get/set_rng_state) and torch's thread count are global to a
process, so two runs training at once in one process would draw from each other's streams and fight
over the threads. A worker process per device (`--devices cuda:0,cuda:1`, or `cpu,cpu` for two CPU
slots) trains one run at a time; the app's queue admits as many runs as there are devices.

    pool = DevicePool(["cuda:0", "cuda:1"])   # spawns the workers (each imports torch once)
    items = pool.start(job)                   # runner.job_events(job) in a free worker; None = nothing yet
    pool.close()

Each item is pickled in the worker and unpickled here. A worker that dies mid-run (a crash, or the
kernel's OOM killer) ends that run with a message; a fresh worker takes its place, the server serves on.
Models come back on the CPU (Inspect and the adapter downloads use them in the server).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import queue
import threading
from dataclasses import replace

from .runner import RunEnded as WorkerDied  # the run's training process ended

POLL_S = 0.5  # how often a waiting run looks at Stop and at its worker's health
END = b"end"


def default_devices() -> list[str] | None:
    """Every visible GPU when there are several (one worker each); None: train in the server's process."""
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [f"cuda:{i}" for i in range(n)] if n > 1 else None


def parse_devices(text: str | None) -> list[str] | None:
    """--devices 'cuda:0,cuda:1' / 'cpu,cpu' / 'all' -> device names (None: the default)."""
    if text is None or not text.strip():
        return None
    import torch

    if text.strip() == "all":
        return default_devices() or ["cuda:0" if torch.cuda.is_available() else "cpu"]
    names = [p.strip() for p in text.split(",") if p.strip()]
    for name in names:
        try:
            device = torch.device(name)
        except (RuntimeError, TypeError):
            raise ValueError(f"--devices: {name!r} is not a device; use e.g. cuda:0,cuda:1 or cpu,cpu") from None
        if device.type == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if (device.index or 0) >= count:
                raise ValueError(f"--devices: {name!r} is not visible here ({count} GPU(s))")
        elif device.type != "cpu":
            raise ValueError(f"--devices takes cuda:N and cpu slots, got {name!r}")
    return names


def _serve(device: str, threads: int, jobs, results) -> None:
    """The worker's loop: each job's items, pickled, then END. Runs in the worker process."""
    import torch

    from . import runner

    if torch.device(device).type == "cpu":
        torch.set_num_threads(threads)
    else:
        torch.cuda.set_device(torch.device(device))
    while True:
        job = jobs.get()
        if job is None:
            return
        for item in runner.job_events(replace(job, config=replace(job.config, device=device))):
            try:
                data = pickle.dumps(item)
            except Exception as err:  # noqa: BLE001 - a bug: say so instead of hanging the run
                data = pickle.dumps(runner.Failed(WorkerDied(f"a training result could not be sent back: {err}")))
            results.put(data)
        results.put(END)


class Worker:
    """One process bound to one device, trained one job at a time."""

    def __init__(self, device: str, threads: int, context):
        self.device, self.threads, self.context = device, threads, context
        self.spawn()

    def spawn(self) -> None:
        self.jobs, self.results = self.context.Queue(), self.context.Queue()
        self.process = self.context.Process(
            target=_serve,
            args=(self.device, self.threads, self.jobs, self.results),
            name=f"delora-viz-{self.device}",
            daemon=True,
        )
        self.process.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.is_alive():
            self.jobs.put(None)
            self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class DevicePool:
    """A worker per device; start(job) runs the job in a free one (the admission queue keeps one free)."""

    def __init__(self, devices: list[str], context: str = "spawn"):
        if not devices:
            raise ValueError("a device pool needs at least one device")
        ctx = mp.get_context(context)  # spawn: no CUDA state or locks inherited from the server
        cpu_slots = sum(1 for d in devices if d.split(":")[0] == "cpu")
        threads = max(1, (os.cpu_count() or 1) // max(1, cpu_slots))
        self.workers = [Worker(d, threads, ctx) for d in devices]
        self._idle = list(self.workers)
        self._changed = threading.Condition()

    @property
    def devices(self) -> list[str]:
        return [w.device for w in self.workers]

    def _take(self) -> Worker:
        with self._changed:
            while not self._idle:
                self._changed.wait()
            return self._idle.pop(0)

    def _give_back(self, worker: Worker) -> None:
        with self._changed:
            self._idle.append(worker)
            self._changed.notify()

    def start(self, job):
        """The items of `job` as its worker sends them (None while nothing new arrived within POLL_S)."""
        worker = self._take()
        worker.jobs.put(job)
        return self._items(worker)

    def _items(self, worker: Worker):
        from .runner import Failed

        done = False
        try:
            while True:
                try:
                    data = worker.results.get(timeout=POLL_S)
                except queue.Empty:
                    if worker.process.is_alive():
                        yield None
                        continue
                    done = True
                    yield Failed(self._died(worker))
                    return
                if data == END:
                    done = True
                    return
                yield pickle.loads(data)
        finally:
            if not done:  # closed early (Stop, an error, the tab closed): wait until the worker is free again
                self._drain(worker)
            self._give_back(worker)

    def _drain(self, worker: Worker) -> None:
        while True:
            try:
                if worker.results.get(timeout=POLL_S) == END:
                    return
            except queue.Empty:
                if not worker.process.is_alive():
                    self._died(worker)
                    return

    def _died(self, worker: Worker) -> WorkerDied:
        """A fresh process for the device; the message for the run that was on it."""
        code = worker.process.exitcode
        worker.stop(timeout=0)
        worker.spawn()
        why = " (killed: out of memory?)" if code == -9 else ""
        return WorkerDied(
            f"the run's training process on {worker.device} ended with exit code {code}{why}; nothing else was "
            "affected: train again, perhaps with fewer methods, a smaller batch or max length"
        )

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
