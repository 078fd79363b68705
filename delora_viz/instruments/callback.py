"""TrackerCallback: the Tracker inside transformers' Trainer (and so TRL's SFTTrainer).

    trainer = Trainer(model=peft_model, args=TrainingArguments(..., report_to=["tensorboard"]),
                      callbacks=[TrackerCallback(every=10)])

Records every `every` optimizer steps into <output_dir>/delora_history.jsonl (appended as it goes, and
copied into each checkpoint-N/ folder; a fresh run moves an old file aside, a run resumed from checkpoint-N
keeps the rows up to step N and continues them), and adds a summary (delora/delta_fro_mean, delora/bound_ratio_max,
delora/lambda_mean, ...) to the Trainer's logs, so TensorBoard, W&B or any report_to integration shows it.
"""

from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import CallbackHandler

from ..errors import check_int
from .history import check_suffix
from .track import Tracker


class TrackerCallback(TrainerCallback):
    def __init__(
        self, every: int = 1, filename: str = "delora_history.jsonl", prefix: str = "delora/", dtype=torch.float32
    ):
        check_int("every", every, hint=" (record every N optimizer steps)")
        check_suffix(filename)
        self.every, self.filename, self.prefix, self.dtype = every, filename, prefix, dtype
        self.tracker: Tracker | None = None
        self.latest: dict[str, float] = {}  # summary of the last record, added to the next training log
        self._warned_order = False

    # Integrations such as TensorBoardCallback write `logs` in their own on_log; our additions reach them
    # only if we run first. Trainer puts its default callbacks before the user's, so we move ourselves to
    # the front of the handler that is calling us (found one frame up), on the first event we see.
    def _run_first(self) -> None:
        frame = sys._getframe(2)
        while frame is not None and not isinstance(frame.f_locals.get("self"), CallbackHandler):
            frame = frame.f_back
        if frame is not None:
            handler = frame.f_locals["self"]
            # a new list: the handler may be iterating the old one right now
            handler.callbacks = [self] + [c for c in handler.callbacks if c is not self]
        elif not self._warned_order:
            self._warned_order = True
            warnings.warn(
                "TrackerCallback could not move itself ahead of the reporting callbacks (no CallbackHandler "
                "called it): its delora/* scalars may miss TensorBoard and other report_to loggers. Put it first "
                "yourself: trainer.callback_handler.callbacks.insert(0, ...)",
                stacklevel=3,
            )

    def on_init_end(self, args, state, control, **kwargs):
        self._run_first()

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._run_first()
        path = Path(args.output_dir) / self.filename
        # a fresh run moves an old history aside; a resumed one keeps the rows up to its checkpoint's step
        resume = state.global_step if state.global_step > 0 else None
        # Every rank builds one (the rank comes from torch.distributed): with FSDP2-sharded weights each
        # record is collective (all ranks measure, rank 0 writes); under DDP the other ranks' are inactive.
        try:
            tracker = Tracker(model, every=self.every, path=path, dtype=self.dtype, keep_rows=False, resume_step=resume)
        except (ValueError, NotImplementedError, TypeError) as err:
            self._disable(err)
            return
        if not tracker.active:
            return
        self.tracker = tracker
        if resume is None:
            self._record(0)  # the starting point, so plots begin at dW = 0

    def on_step_end(self, args, state, control, **kwargs):
        self._record(state.global_step)

    def _record(self, step: int) -> None:
        if self.tracker is None:
            return
        try:
            rows = self.tracker.step(step)
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
