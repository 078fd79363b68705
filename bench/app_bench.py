"""The app's default comparison, timed as a user sees it: from "Train" to the first live point and to the end.

    python bench/app_bench.py [--steps N] [--device cpu] [--model M] [--data D]   # prints one JSON line

Run in a fresh process (bench/run.py starts it as a subprocess), so nothing is warm but the OS page
cache: it imports delora_viz.training.loop, then times iter_compare(DEFAULT_METHODS, TrainConfig(...)) from
the call that prepares the data and model to the first StepEvent and to the last RunResult.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def measure(steps: int | None, device: str, model: str | None, data: str | None, eval_examples: int | None) -> dict:
    t_import = time.perf_counter()
    from delora_viz.training import RunResult, StepEvent, iter_compare, prepare
    from delora_viz.training.config import TrainConfig
    from delora_viz.training.methods import DEFAULT_METHODS

    import_s = time.perf_counter() - t_import
    kw = dict(device=device, model=model, data=data)
    if steps is not None:
        kw["max_steps"] = steps
    if eval_examples is not None:
        kw["eval_examples"] = eval_examples
    config = TrainConfig(**kw)
    t0 = time.perf_counter()
    prepared = prepare(config)  # what iter_compare does first when given no Prepared
    prepare_s = time.perf_counter() - t0
    first, first_run, ends, steps_done = None, None, {}, {}
    for event in iter_compare(DEFAULT_METHODS, config, prepared):
        now = time.perf_counter() - t0
        if isinstance(event, StepEvent) and first is None:
            first, first_run = now, event.run
        elif isinstance(event, RunResult):
            ends[event.run], steps_done[event.run] = now, event.final["steps"]
    end = max(ends.values())
    train_s = end - first
    return dict(
        methods=list(DEFAULT_METHODS),
        steps=config.max_steps,
        eval_every=config.eval_every,
        eval_examples=config.eval_examples,
        device=str(prepared.loaded.device),
        dtype=str(prepared.loaded.dtype).removeprefix("torch."),
        model=prepared.loaded.name,
        import_s=import_s,
        prepare_s=prepare_s,
        first_point_s=first,
        first_point_run=first_run,
        end_s=end,
        run_end_s=ends,
        steps_done=steps_done,
        steps_per_s_all_methods=(sum(steps_done.values()) - 1) / train_s if train_s > 0 else None,
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=None, help="steps per method (default: TrainConfig's 40)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", default=None, help="default: the app's default (embedded MiniLM)")
    p.add_argument("--data", default=None, help="default: the app's default (embedded BBC News)")
    p.add_argument("--eval-examples", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = measure(args.steps, args.device, args.model, args.data, args.eval_examples)
    sys.stdout.write("APP_BENCH " + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
