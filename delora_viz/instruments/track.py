"""Tracker: per adapted layer, per step, how far the update moved, which way, and against what bound.

    with Tracker(model, path="history.jsonl").watch(optimizer) as tracker:   # records step 0 (dW = 0)
        for batch in loader:
            loss = model(**batch).loss; loss.backward(); optimizer.step(); optimizer.zero_grad()
    tracker.to_dataframe()

Each record is one row per layer with the columns in COLUMNS. Metrics use the closed forms in
geometry.py under torch.no_grad(), in float32 (or float64) whatever the model's dtype, on the model's
device, with one device->host copy per record. Nothing but the rows outlives a record.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..errors import DeloraVizError, check_int
from .adapters import AdapterView, adapter_modules, adapter_state, find_adapters, no_adapters_message
from .distributed import (
    all_reduce_sum,
    check_shardable,
    gather_params,
    is_dtensor,
    is_main_process,
    local_rows,
    reduce_group,
    warn_if_meta_fallback,
)
from .history import (
    COLUMNS,
    MEASURED,
    append_rows,
    check_suffix,
    keep_steps_up_to,
    load_history,
    rotate_aside,
    summarize,
)
from .measure import build_group, keep, metrics_from_sums, num_threads, pack, partial_sums, row_squares, unpack


class Tracker:
    """Records the geometry of every adapted layer of `model` every `track_every` steps.

    path: optional .csv or .jsonl file that each record is appended to (flushed), so a killed run keeps
    every row it recorded; an existing file there is moved aside (history.rotate_aside), unless
    resume_step=N: a run resumed from step N's checkpoint keeps the file's rows up to N and continues it.
    keep_rows=False keeps nothing in memory (for very long runs with a path).
    Distributed runs: only rank 0 keeps rows, writes and returns them. Under DDP the other ranks do
    nothing; with FSDP2-sharded weights every rank measures its own rows of each W and one all-reduce
    per record adds them up (distributed.py), so every rank must call step() (watch() does).
    """

    def __init__(
        self,
        model,
        track_every: int = 1,
        path=None,
        dtype=torch.float32,
        keep_rows: bool = True,
        resume_step: int | None = None,
    ):
        check_int("track_every", track_every, hint=" (record every N steps)")
        if dtype not in (torch.float32, torch.float64):
            raise DeloraVizError(f"dtype must be torch.float32 or torch.float64, got {dtype}", field="dtype")
        self.track_every, self.dtype, self.keep_rows = track_every, dtype, keep_rows
        self.writer = is_main_process()  # rank 0 (or no torch.distributed): keeps, writes, returns rows
        self.sharded = check_shardable(model)  # FSDP2 Shard(0) weights; other layouts raise, naming a workaround
        self.active = self.writer or self.sharded  # a sharded record is collective: every rank takes part
        self.rows: list[dict] = []
        self.path = check_suffix(path) if path is not None else None
        self._hooks: list = []
        self._optimizer_steps = self._last_step = 0
        self._started = resume_step is not None  # a resumed run's file already holds its starting point
        self._w_rows: dict[tuple, tuple] = {}  # group -> ((data_ptr, version) of each W, (L, m) row norms^2)
        self._previous: dict[tuple, dict] = {}  # group -> factors and ||dW|| of its last record (turn_deg)
        self._groups: dict[tuple, list[int]] = {}
        self._state = None
        self.views: list[AdapterView] = []
        self._reduce_group = None
        if not self.active:
            return
        self._model, self._modules = model, adapter_modules(model)
        self._refresh_views()
        if self.path is not None and self.writer:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._start_file(resume_step)
        if resume_step is not None:
            self._last_step = self._optimizer_steps = int(resume_step)

    def _start_file(self, resume_step: int | None) -> None:
        """A new run never appends to an old one: an existing file is moved aside. Resuming from the
        checkpoint of `resume_step` keeps its rows up to that step and appends after them."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        if resume_step is not None:
            keep_steps_up_to(self.path, int(resume_step))
        else:
            moved = rotate_aside(self.path)
            warnings.warn(f"{self.path} held an earlier run's history: moved it to {moved.name}", stacklevel=3)

    # ------------------------------------------------------------------ recording
    def step(self, step: int | None = None) -> list[dict]:
        """Record one row per layer if `step` is a multiple of `track_every`.

        Without `step`: the optimizer step count under watch(), else one more than the last step this
        tracker saw (so calling step() once per optimizer step records 1, 2, 3, ...)."""
        if step is None:
            step = self._optimizer_steps if self._hooks else self._last_step + 1
        step = self._last_step = int(step)
        if not self.active or step % self.track_every:
            return []
        self._started = True
        self._refresh_views()
        # On CPU the record runs on one thread: its small ops gain nothing from threads, and waking a sleeping
        # OpenMP thread for each parallel region costs more than they take (bench/RESULTS.md, "Thresholds of the
        # engine"). Only the W @ V products of large layers get the caller's threads.
        threads = torch.get_num_threads() if self.views[0].weight().device.type == "cpu" else None
        with torch.no_grad(), num_threads(1 if threads else None):
            values = self._measure_all(threads).cpu().tolist()  # (layers, metrics): the one device->host copy
        if not self.writer:
            return []  # a sharded run's other ranks: their part is in rank 0's all-reduced sums
        rows = [
            {"step": step, "layer": view.name, "method": view.method, "rank": view.rank, **dict(zip(MEASURED, vals))}
            for view, vals in zip(self.views, values)
        ]
        if self.keep_rows:
            self.rows.extend(rows)
        if self.path is not None:
            append_rows(self.path, rows)
        return rows

    def _measure_all(self, gemm_threads: int | None = None) -> torch.Tensor:
        """Every layer's MEASURED columns, (layers, metrics), in view order: same-shaped layers in one batch each.

        Sharded (FSDP2): the small parameters are gathered whole, each rank sums over its own rows of W,
        and one all-reduce of every group's packed sums completes them all before the metrics are formed."""
        out, built = None, []
        raws = [[self.views[i].params() for i in members] for members in self._groups.values()]
        if self.sharded:
            raws = gather_params(raws)  # every layer's small factors whole: ONE all-gather, never a W
        for (key, members), params in zip(self._groups.items(), raws):
            views = [self.views[i] for i in members]
            group = build_group(params, self.dtype, self._previous.get(key))
            parts = [local_rows(view.weight(), self.sharded) for view in views]  # (W_i, rows of W_i)
            weights = [W for W, _ in parts]
            sums = partial_sums(group, weights, self._row_squares(key, weights), parts[0][1], gemm_threads)
            built.append((key, members, group, sums))
        if self.sharded:  # ONE collective for every group's sums
            packed = all_reduce_sum([[pack(sums)] for *_, sums in built], self._reduce_group)
            built = [
                (key, members, group, unpack(flat, sums)) for (key, members, group, sums), (flat,) in zip(built, packed)
            ]
        for key, members, group, sums in built:
            values = metrics_from_sums(group, sums)  # (L, metrics)
            self._previous[key] = keep(group)
            if len(built) == 1 and members == list(range(len(self.views))):
                return values  # one batch of every layer, in view order (the common case)
            if out is None:
                out = values.new_empty(len(self.views), values.shape[1])
            out[torch.tensor(members, device=values.device)] = values
        return out

    def _refresh_views(self) -> None:
        """Follow set_adapter / merge changes: rebuild the views (and batches) when the active adapters change."""
        state = adapter_state(self._modules)
        if state == self._state:
            return
        self._state = state
        self.views = find_adapters(self._model, self._modules)
        if not self.views:
            raise DeloraVizError(no_adapters_message(self._model))
        self._groups = {}  # (names of the layers, their shapes) -> indices into views
        by_key: dict[tuple, list[int]] = {}
        for i, view in enumerate(self.views):
            raw = view.params()
            if raw.w_norm is not None:
                warn_if_meta_fallback(view.name, raw.w_norm)
            by_key.setdefault((raw.key(), is_dtensor(view.weight())), []).append(i)  # a batch shares its row split
        for key, members in by_key.items():
            self._groups[(key, tuple(self.views[i].name for i in members))] = members
        self._previous = {k: v for k, v in self._previous.items() if k in self._groups}
        self._reduce_group = reduce_group(view.weight() for view in self.views) if self.sharded else None

    def _row_squares(self, key, weights: list[torch.Tensor]) -> torch.Tensor:
        """(L, m) squared row norms of the group's weights, recomputed only when a W is another tensor or
        was modified in place (its _version): W is frozen, so this is usually free."""
        stamp = tuple((W.data_ptr(), W._version) for W in weights)
        cached = self._w_rows.get(key)
        if cached is None or cached[0] != stamp:
            cached = self._w_rows[key] = (stamp, torch.stack([row_squares(W, self.dtype) for W in weights]))
        return cached[1]

    def start(self) -> list[dict]:
        """Record the starting point (step 0: dW = 0 for a fresh adapter) unless this tracker has recorded
        already or resumes a run. watch() calls it; the runner and TrackerCallback too."""
        if self._started:
            return []
        return self.step(self._last_step)

    # ------------------------------------------------------------------ optimizer hook
    def watch(self, optimizer) -> Tracker:
        """Record the starting point (start()), then after every optimizer.step() (every `track_every` steps).
        Use as a context manager to detach."""
        if self.active:
            self.start()

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
