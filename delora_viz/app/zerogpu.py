"""ZeroGPU (Hugging Face Spaces): each run trains inside a `@spaces.GPU` call, which attaches a GPU only
while it runs, in a worker process forked by `spaces`.

What that asks of the app, and where it is done:
- arguments and yields are pickled: the call gets a runner.Job (plain values) and yields runner.job_events
  items, whose RunResults carry their model on the CPU (or none), so no CUDA tensor crosses;
- no thread may outlive the call: the training loop runs in the call's own thread and starts none;
- a call has a duration, requested up front: `duration(job)` estimates it from the run's size
  (steps x runs x a per-step estimate + loading and evaluations), capped at the platform's limit; a run
  estimated above the cap is refused before it starts, with a message that says what to lower;
- the platform queues GPU calls itself: the app's own queue lets them through (CONCURRENCY).

Detection is the one `spaces` itself uses: its Config.zero_gpu, set from SPACES_ZERO_GPU. Off ZeroGPU
`spaces.GPU` returns the function unchanged, and the app does not use this module's backend at all.
"""

from __future__ import annotations

import math
import os

from . import runner

try:  # the Space's app file imports spaces first (before torch initialises CUDA); elsewhere it is optional
    import spaces
    from spaces.config import Config as _SpacesConfig

    ACTIVE = bool(_SpacesConfig.zero_gpu)
except ImportError:  # pragma: no cover - spaces is installed with the Space's requirements
    spaces = None
    ACTIVE = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")

MAX_DURATION_S = int(os.environ.get("DELORA_VIZ_ZEROGPU_MAX_S", 300))  # the longest call the platform grants
SECONDS_PER_STEP = float(os.environ.get("DELORA_VIZ_ZEROGPU_STEP_S", 0.5))  # a small model's step + tracking
OVERHEAD_S = 30  # attaching the GPU, moving the model, loading, evaluating the base model
SECONDS_PER_EVAL = 2.0
CONCURRENCY = 16  # runs the app lets through at once; ZeroGPU's scheduler queues them for its GPUs


def estimate_s(job: runner.Job) -> float:
    """Seconds a run should take on a ZeroGPU device: every run's steps and evaluations, plus loading."""
    config = job.config
    runs = len(job.methods) * (len(job.multipliers or ()) if job.kind == "sweep" else 1)
    evals = math.ceil(config.max_steps / config.eval_every) + 1 if config.eval_every else 1
    return OVERHEAD_S + runs * (config.max_steps * SECONDS_PER_STEP + evals * SECONDS_PER_EVAL)


def duration(job: runner.Job) -> int:
    """The duration requested for `job`'s call: its estimate, whole seconds, never above the cap."""
    return int(min(MAX_DURATION_S, math.ceil(estimate_s(job))))


def check_fits(job: runner.Job) -> None:
    """A run that cannot finish within one call is refused before it starts (ZeroGPU would abort it)."""
    need = estimate_s(job)
    if need > MAX_DURATION_S:
        raise ValueError(
            f"this run needs about {need:.0f} s of GPU time; this Space grants at most {MAX_DURATION_S} s per "
            "run: lower the steps, or tick fewer methods (or fewer learning-rate multipliers)"
        )


def _train_on_gpu(job: runner.Job):
    """The @spaces.GPU function: a run, start to end, in ZeroGPU's worker."""
    yield from runner.job_events(job, keep_cache=False)  # nothing stays on the GPU after the call


train_on_gpu = spaces.GPU(duration=duration)(_train_on_gpu) if spaces is not None else _train_on_gpu


class ZeroGpuBackend:
    """runner's backend on ZeroGPU: each job is one call of train_on_gpu."""

    def start(self, job: runner.Job):
        check_fits(job)
        return train_on_gpu(job)
