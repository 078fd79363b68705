"""One browser session's state (its stop flag, loaded model + data, last results, files) and the registry
that frees it when the tab closes or the session sits idle.

Why a registry and not gr.State's delete_callback: in Gradio 6 that callback fires only for a State that
has been an event *output*, and a State that is only an input never is, so nothing was ever freed.
Here the server keeps one UiSession per Gradio session hash; `demo.unload` closes it when the tab
closes, and `reap()` closes sessions idle for longer than the time-to-live.

    sessions = Sessions(ttl_s=3600)
    session = sessions.get(request)      # in a handler (request: gr.Request)
    sessions.close(request)              # demo.unload
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
import threading
import time
import weakref
from pathlib import Path

from ..training.config import TrainConfig
from ..training.loop import Prepared, RunResult, prepare
from . import memory

LIVE: weakref.WeakSet = weakref.WeakSet()  # every UiSession not yet garbage-collected (tests count them)


class UiSession:
    """One browser session: a stop flag (either tab's Stop ends whatever it runs), a cached model + data,
    the last comparison's results and a folder for its downloads."""

    def __init__(self, prepare_fn=None):
        self.stop = threading.Event()  # Stop (on either tab): ends this session's comparison or sweep
        self.results: dict[str, RunResult] = {}
        self.prepared: Prepared | None = None
        self.busy = 0  # runs of this session admitted or waiting (a closed session frees when it reaches 0)
        self.closed = False
        self.last_used = time.monotonic()
        self._key = None
        self._dir: Path | None = None
        self._prepare = prepare_fn or prepare
        LIVE.add(self)

    def __deepcopy__(self, memo):  # a "copy" is a fresh, empty session: nothing may leak between sessions
        return UiSession()

    def touch(self) -> None:
        self.last_used = time.monotonic()

    def prepare(self, config: TrainConfig) -> Prepared:
        """Load model + data, reusing the last ones when nothing that affects them changed."""
        stamp = os.stat(config.data).st_mtime_ns if config.data and os.path.isfile(config.data) else None
        key = (
            config.model,
            config.data,
            stamp,
            config.task,
            config.device,
            config.dtype,
            config.seed,
            config.eval_fraction,
            config.max_examples,
        )
        if key != self._key:
            self.prepared = self._key = None  # let the old model go before loading the next
            _free_accelerator()
            self.prepared, self._key = self._prepare(config), key
        self.prepared.baseline = None  # evaluation settings may have changed: evaluate the base model again
        return self.prepared

    def output_dir(self, name: str) -> Path:
        """A fresh folder for one run's downloads (earlier downloads stay valid)."""
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="delora-viz-"))
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self._dir))

    @property
    def directory(self) -> Path | None:
        return self._dir

    def free_models(self) -> None:
        """Drop the trained models (keep their metrics) and the loaded base model; empty the GPU cache."""
        for result in self.results.values():
            result.model = None
        self.prepared, self._key = None, None
        _free_accelerator()

    def close(self) -> None:
        """Stop its runs; free models and files now, or when its running handler ends (it calls release())."""
        self.closed = True
        self.stop.set()
        if self.busy == 0:
            self._free()

    def release(self) -> None:
        """A handler of this session ended: free everything if the session was closed meanwhile."""
        self.busy = max(0, self.busy - 1)
        self.touch()
        if self.closed and self.busy == 0:
            self._free()

    def _free(self) -> None:
        self.results = {}
        self.free_models()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _free_accelerator() -> None:
    """Collect dropped models now, hand cached GPU memory back to the driver (others may need it) and free
    heap pages back to the OS (memory.trim: glibc keeps them otherwise, and the server's RSS grows per run)."""
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    memory.trim()


class Sessions:
    """UiSessions by Gradio session hash, closed on tab close (`close`) or after `ttl_s` idle (`reap`)."""

    def __init__(self, ttl_s: float = 3600.0):
        self.ttl_s = ttl_s
        self._by_hash: dict[str, UiSession] = {}
        self._lock = threading.Lock()
        self._reaper: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self._by_hash)

    def get(self, request) -> UiSession:
        """The session of this request (made on first use). Without a request (direct calls): a fresh one."""
        key = getattr(request, "session_hash", None)
        if key is None:
            return UiSession()
        with self._lock:
            session = self._by_hash.get(key)
            if session is None or session.closed:
                session = self._by_hash[key] = UiSession()
        session.touch()
        return session

    def close(self, request) -> None:
        """demo.unload: the tab closed (or reloaded)."""
        with self._lock:
            session = self._by_hash.pop(getattr(request, "session_hash", None), None)
        if session is not None:
            session.close()

    def reap(self, now: float | None = None) -> int:
        """Close the sessions idle for longer than ttl_s (a running or waiting one is never idle)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            idle = [k for k, s in self._by_hash.items() if s.busy == 0 and now - s.last_used > self.ttl_s]
            gone = [self._by_hash.pop(k) for k in idle]
        for session in gone:
            session.close()
        return len(gone)

    def start_reaper(self, every_s: float = 60.0) -> None:
        """A daemon thread that reaps every `every_s` seconds (started by launch, once)."""
        if self._reaper is not None:
            return

        def loop():
            while True:
                time.sleep(every_s)
                self.reap()

        self._reaper = threading.Thread(target=loop, name="delora-viz-reaper", daemon=True)
        self._reaper.start()

    def close_all(self) -> None:
        with self._lock:
            sessions, self._by_hash = list(self._by_hash.values()), {}
        for session in sessions:
            session.close()
