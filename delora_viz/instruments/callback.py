"""TrackerCallback: the Tracker inside transformers' Trainer (and so TRL's SFTTrainer).

    trainer = Trainer(model=peft_model, args=TrainingArguments(..., report_to=["tensorboard"]))
    TrackerCallback.attach(trainer, track_every=10)          # first in line, ahead of the report_to loggers
    trainer.train()

Records every `track_every` optimizer steps into <output_dir>/delora_history.jsonl (appended as it goes, and
copied into each checkpoint-N/ folder; a fresh run moves an old file aside, a run resumed from checkpoint-N
keeps the rows up to step N and continues them), and adds a summary (delora/delta_fro_mean, delora/bound_ratio_max,
delora/lambda_mean, ...) to the Trainer's logs, so TensorBoard, W&B or any report_to integration shows it.

Why attach: a logger such as TensorBoardCallback writes `logs` in its own on_log, so our additions reach it
only if we run first, and Trainer puts its default callbacks (the report_to loggers among them) before the
user's. `callbacks=[TrackerCallback()]` still records the history and trainer_state.json's log_history;
it warns when report_to loggers would miss the scalars.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import torch
from transformers import TrainerCallback

from ..errors import check_int
from .history import check_suffix
from .track import Tracker


class TrackerCallback(TrainerCallback):
    def __init__(
        self, track_every: int = 1, filename: str = "delora_history.jsonl", prefix: str = "delora/", dtype=torch.float32
    ):
        check_int("track_every", track_every, hint=" (record every N optimizer steps)")
        check_suffix(filename)
        self.track_every, self.filename, self.prefix, self.dtype = track_every, filename, prefix, dtype
        self.tracker: Tracker | None = None
        self.latest: dict[str, float] = {}  # summary of the last record, added to the next training log
        self._first = False  # put ahead of the loggers by attach()

    @classmethod
    def attach(cls, trainer, **kwargs) -> TrackerCallback:
        """A TrackerCallback(**kwargs) put first in `trainer`'s callbacks, ahead of the report_to loggers
        (TensorBoard, Trackio, W&B), so that their on_log sees its delora/* scalars. Returns it."""
        callback = cls(**kwargs)
        callbacks = trainer.callback_handler.callbacks
        callbacks[:] = [callback] + [c for c in callbacks if c is not callback]
        callback._first = True
        return callback

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        loggers = [name for name in (args.report_to or []) if name != "none"]
        if loggers and not self._first:
            warnings.warn(
                f"TrackerCallback runs after the report_to loggers ({', '.join(loggers)}), so they miss its delora/* "
                "scalars (the history file and trainer_state.json keep them): add it with "
                "TrackerCallback.attach(trainer, track_every=...) instead of callbacks=[...]",
                stacklevel=2,
            )
        path = Path(args.output_dir) / self.filename
        # a fresh run moves an old history aside; a resumed one keeps the rows up to its checkpoint's step
        resume = state.global_step if state.global_step > 0 else None
        # Every rank builds one (the rank comes from torch.distributed): with FSDP2-sharded weights each
        # record is collective (all ranks measure, rank 0 writes); under DDP the other ranks' are inactive.
        try:
            tracker = Tracker(
                model, track_every=self.track_every, path=path, dtype=self.dtype, keep_rows=False, resume_step=resume
            )
        except (ValueError, NotImplementedError, TypeError) as err:
            self._disable(err)
            return
        if not tracker.active:
            return
        self.tracker = tracker
        self._record(None)  # the starting point (not when resuming), so plots begin at dW = 0

    def on_step_end(self, args, state, control, **kwargs):
        self._record(state.global_step)

    def _record(self, step: int | None) -> None:
        """Record `step` (None: the tracker's starting point), keep its summary for the next log."""
        if self.tracker is None:
            return
        try:
            rows = self.tracker.start() if step is None else self.tracker.step(step)
        except (ValueError, NotImplementedError) as err:  # e.g. set_adapter to an adapter we cannot read
            self._disable(err)
            return
        if rows:
            self.latest = self.tracker.summary(rows, prefix=self.prefix)

    def _disable(self, err: Exception) -> None:
        """Monitoring must never end the user's training: warn, stop tracking, let the Trainer go on."""
        if self.tracker is not None:
            self.tracker.close()
        self.tracker, self.latest = None, {}
        warnings.warn(f"TrackerCallback stops tracking (training goes on): {err}", stacklevel=3)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None and self.latest and "loss" in logs:  # training logs only, not eval's
            logs.update(self.latest)
            if state.log_history and state.log_history[-1].get("step") == state.global_step:
                state.log_history[-1].update(self.latest)  # Trainer logged a copy: keep it in trainer_state.json too

    def on_save(self, args, state, control, **kwargs):
        if self.tracker is None or not self.tracker.writer or not self.tracker.path.exists():
            return
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if checkpoint.is_dir():
            shutil.copy2(self.tracker.path, checkpoint / self.filename)

    def on_train_end(self, args, state, control, **kwargs):
        if self.tracker is not None:
            self.tracker.close()
