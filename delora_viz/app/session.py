"""One browser session's state: its stop flag, its loaded model + data, its last results, its files."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

from ..training.config import TrainConfig
from ..training.loop import Prepared, RunResult, prepare


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
