"""Tracker: per adapted layer, per step, how far the update moved, which way, and against what bound.

    with Tracker(model, path="history.jsonl").watch(optimizer) as tracker:
        for batch in loader:
            loss = model(**batch).loss; loss.backward(); optimizer.step(); optimizer.zero_grad()
    tracker.to_dataframe()

Each record is one row per layer with the columns in COLUMNS. Metrics use the closed forms in
geometry.py under torch.no_grad(), in float32 (or float64) whatever the model's dtype, on the model's
device, with one device->host copy per record. Nothing but the rows outlives a record.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .adapters import AdapterView, find_adapters, no_adapters_message, parameters_are_sharded
from .checks import check_int
from .geometry import DoraUpdate, dora_update_stats, singular_values, update_geometry, weight_fro_sq
from .history import COLUMNS, MEASURED, append_rows, check_suffix, load_history, summarize

# A CPU record of layers up to this many weights runs on one thread: its ~100 small ops per layer gain
# nothing from threads, and each BLAS call that needs a second OpenMP thread costs ~0.1 ms to wake it
# (tens of ms when other processes keep the cores busy and the threads spin). Larger layers keep them.
ONE_THREAD_MAX_WEIGHTS = 1 << 22
NAN = float("nan")


def is_main_process() -> bool:
    """False on every rank but 0 of an initialised torch.distributed group (DDP, torchrun, accelerate)."""
    return (
        not (torch.distributed.is_available() and torch.distributed.is_initialized())
        or torch.distributed.get_rank() == 0
    )


class Tracker:
    """Records the geometry of every adapted layer of `model` every `every` steps.

    path: optional .csv or .jsonl file that each record is appended to (flushed), so a killed run keeps
    every row it recorded. keep_rows=False keeps nothing in memory (for very long runs with a path).
    On ranks other than 0 of a distributed run the tracker records and writes nothing.
    """

    def __init__(self, model, every: int = 1, path=None, dtype=torch.float32, keep_rows: bool = True):
        check_int("every", every, hint=" (record every N steps)")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.every, self.dtype, self.keep_rows = every, dtype, keep_rows
        self.active = is_main_process()
        self.rows: list[dict] = []
        self.path = check_suffix(path) if path is not None else None
        self._hooks: list = []
        self._optimizer_steps = 0
        self._w_sq: dict[str, tuple] = {}  # layer -> ((data_ptr, version) of W, ||W||_F^2): W is frozen
        self.views: list[AdapterView] = []
        if not self.active:
            return
        if parameters_are_sharded(model):
            raise NotImplementedError(
                "the model's weights are sharded (FSDP or DeepSpeed ZeRO-3): delora-viz does not gather them yet, "
                "and measuring a shard would give wrong numbers. Track with DDP / a single device, or after "
                "gathering the full state dict."
            )
        self.views = find_adapters(model)
        if not self.views:
            raise ValueError(no_adapters_message(model))
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ recording
    def step(self, step: int | None = None) -> list[dict]:
        """Record one row per layer if `step` is a multiple of `every` (default: count optimizer steps)."""
        step = self._optimizer_steps if step is None else int(step)
        if not self.active or step % self.every:
            return []
        with torch.no_grad(), _one_thread_if(self._small_on_cpu()):
            values = torch.stack([self._measure(view) for view in self.views]).cpu().tolist()  # (layers, metrics)
        rows = [
            {"step": step, "layer": view.name, "method": view.method, "rank": view.rank, **dict(zip(MEASURED, vals))}
            for view, vals in zip(self.views, values)
        ]
        if self.keep_rows:
            self.rows.extend(rows)
        if self.path is not None:
            append_rows(self.path, rows)
        return rows

    def _measure(self, view: AdapterView) -> torch.Tensor:
        W = view.weight().detach()
        update = view.update()
        lam = bound = loose = sigma = drift = NAN
        if isinstance(update, DoraUpdate):
            update = DoraUpdate(
                update.A.detach().to(self.dtype),
                update.B.detach().to(self.dtype),
                update.scaling,
                update.magnitude.detach().to(self.dtype),
            )
            geo, _, row_norms = dora_update_stats(W, update)
            # how far the learned magnitudes moved from W's own row norms (their value at init)
            drift = torch.linalg.vector_norm(update.magnitude - row_norms) / torch.linalg.vector_norm(row_norms)
        else:
            update = update.to(self.dtype)
            geo = update_geometry(W, update, self._weight_fro_sq(view.name, W))
            sigma = singular_values(update)[0]
        if view.delora_lambda is not None:
            lam = view.delora_lambda().detach().to(self.dtype).squeeze()
            bound = view.bound().detach().to(self.dtype)
            loose = view.bound_loose().detach().to(self.dtype)
        ratio = geo.delta_fro / bound if view.bound is not None else NAN
        degrees = 180.0 / math.pi
        values = (
            geo.delta_fro,
            geo.w_fro,
            geo.rel_delta,
            geo.angle_delta_w * degrees,
            geo.angle_w_prime * degrees,
            bound,
            loose,
            ratio,
            lam,
            sigma,
            drift,
        )
        return torch.stack([torch.as_tensor(v, dtype=self.dtype, device=W.device).reshape(()) for v in values])

    def _small_on_cpu(self) -> bool:
        weights = [view.weight() for view in self.views]
        return (
            all(W.device.type == "cpu" for W in weights) and max(W.numel() for W in weights) <= ONE_THREAD_MAX_WEIGHTS
        )

    def _weight_fro_sq(self, name: str, W: torch.Tensor) -> torch.Tensor:
        """||W||_F^2, recomputed only when W is another tensor or was modified in place (its _version)."""
        key = (W.data_ptr(), W._version)
        cached = self._w_sq.get(name)
        if cached is None or cached[0] != key:
            cached = self._w_sq[name] = (key, weight_fro_sq(W, self.dtype))
        return cached[1]

    # ------------------------------------------------------------------ optimizer hook
    def watch(self, optimizer) -> Tracker:
        """Record after every optimizer.step() (every `every` steps). Use as a context manager to detach."""
        if self.active:

            def after_step(opt, args, kwargs):
                self._optimizer_steps += 1
                self.step(self._optimizer_steps)

            self._hooks.append(optimizer.register_step_post_hook(after_step))
        return self

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ export
    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    def summary(self, rows: list[dict] | None = None, prefix: str = "delora/") -> dict[str, float]:
        """Mean and max over layers of the last record (or of `rows`), as Python floats for loggers."""
        if rows is None:
            last = self.rows[-1]["step"] if self.rows else None
            rows = [r for r in self.rows if r["step"] == last]
        return summarize(rows, prefix)

    def save(self, path) -> Path:
        """Write every kept row to a .csv or .jsonl file (replacing it)."""
        path = check_suffix(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # same suffix: same format
        tmp.unlink(missing_ok=True)
        append_rows(tmp, self.rows)
        tmp.replace(path)  # atomic: an interrupted save never leaves half a file
        return path

    @staticmethod
    def load(path):
        """Read a history written by save() or by a tracker's path= (CSV or JSONL) into a DataFrame."""
        return load_history(path)


# ----------------------------------------------------------------------------- pure helpers
class _one_thread_if:
    """torch.set_num_threads(1) inside the block when `enabled`; the previous count restored after."""

    def __init__(self, enabled: bool):
        self.enabled, self.threads = enabled, None

    def __enter__(self):
        if self.enabled and torch.get_num_threads() > 1:
            self.threads = torch.get_num_threads()
            torch.set_num_threads(1)

    def __exit__(self, *exc):
        if self.threads is not None:
            torch.set_num_threads(self.threads)
