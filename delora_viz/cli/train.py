"""`delora-viz train`: PEFT's delora_finetuning.py flags, plus --method and tracking, on the shared runner.

    delora-viz train --output_dir out/delora                       # the embedded MiniLM + BBC News
    delora-viz train --base_model ./my-llama --data_path data.jsonl --method delora --rank 16 --delora_lambda 15

Writes to --output_dir: the adapter (PeftModel.from_pretrained(base_model, output_dir) loads it), the
tokenizer, delora_history.jsonl (the tracker, appended as training goes) and summary.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from pathlib import Path

from ..training.config import TASKS, TrainConfig
from ..training.methods import METHODS

# PEFT's delora_finetuning.py flag -> TrainConfig field. Defaults and help come from TrainConfig, so a
# default is written once (training/config.py); our own flags use the field name itself.
PEFT_FLAGS = {
    "base_model": "model",
    "data_path": "data",
    "batch_size": "batch_size",
    "learning_rate": "lr",
    "cutoff_len": "max_length",
    "val_set_size": "eval_examples",
    "eval_step": "eval_every",
    "save_step": "save_every",
    "device": "device",
    "rank": "r",
    "delora_lambda": "delora_lambda",
    "module_dropout": "module_dropout",
    "target_modules": "target_modules",
}
OWN_FLAGS = ("method", "track_every", "task", "max_examples", "seed", "dtype")


def _add_config_flag(parser: argparse.ArgumentParser, flag: str, name: str, **kwargs) -> None:
    """--flag for TrainConfig.<name>, with its default, type and help."""
    field = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    default = field.default
    kind = {int: int, float: float}.get(type(default), str)
    if name in ("lr", "max_examples"):  # None by default, a number when given
        kind = float if name == "lr" else int
    if name == "target_modules":
        kind = str  # comma-separated; TrainConfig splits it
    help_text = field.metadata.get("help", "")
    shown = "" if default is None else f" (default: {default})"
    parser.add_argument(f"--{flag}", dest=name, type=kind, default=default, help=help_text + shown, **kwargs)


def add_parser(sub) -> argparse.ArgumentParser:
    """`delora-viz train`: the subcommand's flags, added to the CLI's subparsers."""
    t = sub.add_parser("train", help="train one adapter (the flags of PEFT's delora_finetuning.py example, and more)")
    # --- the flags of peft/examples/delora_finetuning/delora_finetuning.py
    for flag, name in PEFT_FLAGS.items():
        _add_config_flag(t, flag, name)
    t.add_argument("--output_dir", required=True, help="where the adapter, tokenizer, history and summary go")
    t.add_argument("--num_epochs", type=float, default=None, help="epochs over the training split (sets the steps)")
    t.add_argument("--hub_model_id", default=None, help="repository to push to with --push_to_hub")
    t.add_argument("--push_to_hub", action="store_true", help="push the adapter to the Hub (needs network and a token)")
    # --- ours
    for name in OWN_FLAGS:
        kwargs = {"choices": list(METHODS)} if name == "method" else {}
        kwargs = {"choices": list(TASKS)} if name == "task" else kwargs
        _add_config_flag(t, name, name, **kwargs)
    t.add_argument("--max_steps", type=int, default=None, help="optimizer steps (default: TrainConfig.steps)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(run=run)
    return t


def run(args) -> int:
    from tqdm.auto import tqdm

    from ..training.loop import RunResult, iter_train, prepare

    if args.push_to_hub:
        _check_hub(args)
    if args.num_epochs is not None and not (math.isfinite(args.num_epochs) and args.num_epochs > 0):
        raise ValueError(f"--num_epochs must be > 0, got {args.num_epochs}")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    settings = {k: v for k, v in vars(args).items() if k in fields}
    if args.max_steps is not None:
        settings["steps"] = args.max_steps
    config = TrainConfig(**settings)
    prepared = prepare(config)
    if args.num_epochs is not None and args.max_steps is None:
        steps = max(1, math.ceil(args.num_epochs * len(prepared.data.train_texts) / config.batch_size))
        config = dataclasses.replace(config, steps=steps)
    loaded = prepared.loaded
    run = f"{config.method}, {config.steps} steps, lr {config.effective_lr():g}"
    print(f"{loaded.name} on {loaded.device} ({loaded.dtype}); {run}", file=sys.stderr)
    bar = tqdm(total=config.steps, disable=args.quiet, unit="step")
    result = None
    try:
        for event in iter_train(config, prepared):
            if isinstance(event, RunResult):
                result = event
            else:
                bar.update(1)
                bar.set_postfix(
                    loss=f"{event.loss:.3f}",
                    **({event.eval_name[:4]: f"{event.eval_metric:.3f}"} if event.eval_metric is not None else {}),
                )
    except BaseException:
        bar.close()
        history = Path(args.output_dir) / "delora_history.jsonl"
        saved = " and the last saved adapter is in --output_dir" if args.save_step else ""
        print(f"delora-viz: training stopped early; the tracker history so far is in {history}{saved}", file=sys.stderr)
        raise
    bar.close()
    prepared.loaded.tokenizer.save_pretrained(args.output_dir)
    print(json.dumps(result.final, indent=2, default=str))
    if result.status == "diverged":
        print(
            f"delora-viz: the loss became NaN/inf at step {result.diverged_at}; lower --learning_rate", file=sys.stderr
        )
        return 1
    if args.push_to_hub:
        result.model.push_to_hub(args.hub_model_id, token=os.environ.get("HF_TOKEN"))
    return 0


def _check_hub(args) -> None:
    """Fail before training, not after: pushing needs a repository, a token and the network."""
    if not args.hub_model_id:
        raise ValueError("--push_to_hub needs --hub_model_id (e.g. your-name/delora-adapter)")
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise ValueError(
            "--push_to_hub needs network access, but HF_HUB_OFFLINE is set; unset it or drop --push_to_hub"
        )
    if not os.environ.get("HF_TOKEN"):
        from huggingface_hub import get_token

        if not get_token():
            raise ValueError("--push_to_hub needs a Hugging Face token: set HF_TOKEN or run `hf auth login`")
