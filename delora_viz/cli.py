"""`delora-viz train`: PEFT's delora_finetuning.py flags, plus --method and tracking, on the shared runner.

    delora-viz train --output_dir out/delora                       # the embedded MiniLM + BBC News
    delora-viz train --base_model ./my-llama --data_path data.jsonl --method delora --rank 16 --delora_lambda 15

Writes to --output_dir: the adapter (PeftModel.from_pretrained(base_model, output_dir) loads it), the
tokenizer, delora_history.jsonl (the tracker, appended as training goes) and summary.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from .methods import METHODS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="delora-viz", description="Fine-tune with LoRA, DoRA or DeLoRA and track the update.")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one adapter (the flags of PEFT's delora_finetuning.py example, and more)")
    # --- the flags of peft/examples/delora_finetuning/delora_finetuning.py
    t.add_argument("--base_model", default=None, help="HF model id or local directory; default: the embedded MiniLM ('minilm'); 'smollm2' for the offline causal-LM preset")
    t.add_argument("--data_path", default=None, help="HF dataset name or a local csv/json/jsonl/txt file; default: the embedded data for the task")
    t.add_argument("--output_dir", required=True, help="where the adapter, tokenizer, history and summary go")
    t.add_argument("--batch_size", type=int, default=8)
    t.add_argument("--num_epochs", type=float, default=None, help="epochs over the training split (sets the steps unless --max_steps is given)")
    t.add_argument("--learning_rate", type=float, default=None, help="default: the method's recommended rate")
    t.add_argument("--cutoff_len", type=int, default=64, help="tokens per example")
    t.add_argument("--val_set_size", type=int, default=96, help="held-out examples evaluated at each evaluation")
    t.add_argument("--eval_step", type=int, default=20, help="evaluate every N steps (0: only at the end)")
    t.add_argument("--save_step", type=int, default=0, help="save the adapter every N steps (0: only at the end)")
    t.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cuda, cuda:1, mps or cpu")
    t.add_argument("--rank", type=int, default=8)
    t.add_argument("--delora_lambda", type=float, default=5.0, help="the bound on ||dW||_F is |lambda| max_j ||W[:, j]||; 5 suits MiniLM, 10-15 LLMs (PEFT: 15)")
    t.add_argument("--module_dropout", type=float, default=0.0)
    t.add_argument("--target_modules", default=None, help="comma-separated, e.g. q_proj,v_proj; default: the model's query/value projections")
    t.add_argument("--hub_model_id", default=None, help="repository to push to with --push_to_hub")
    t.add_argument("--push_to_hub", action="store_true", help="push the adapter to the Hugging Face Hub (needs network and HF_TOKEN)")
    # --- ours
    t.add_argument("--method", default="delora", choices=list(METHODS))
    t.add_argument("--max_steps", type=int, default=None, help="optimizer steps (default 40 when --num_epochs is not given)")
    t.add_argument("--track_every", type=int, default=1, help="record the update's geometry every N steps")
    t.add_argument("--task", choices=["classification", "causal_lm"], default=None)
    t.add_argument("--max_examples", type=int, default=None, help="cap the dataset size")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--dtype", default="auto", help="auto (bf16 on capable GPUs, else fp32), float32, bfloat16")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _train(args)
    except (ValueError, TypeError, FileNotFoundError, NotImplementedError) as err:
        print(f"delora-viz: error: {err}", file=sys.stderr)
        return 2


def _train(args) -> int:
    from tqdm.auto import tqdm

    from .config import TrainConfig
    from .train import RunResult, iter_train, prepare

    if args.push_to_hub:
        _check_hub(args)
    if args.num_epochs is not None and not (math.isfinite(args.num_epochs) and args.num_epochs > 0):
        raise ValueError(f"--num_epochs must be > 0, got {args.num_epochs}")
    config = TrainConfig(
        method=args.method, model=args.base_model, data=args.data_path, task=args.task, steps=args.max_steps or 40,
        batch_size=args.batch_size, max_length=args.cutoff_len, lr=args.learning_rate, eval_every=args.eval_step,
        eval_examples=args.val_set_size, save_every=args.save_step, device=args.device, r=args.rank,
        delora_lambda=args.delora_lambda, module_dropout=args.module_dropout, target_modules=args.target_modules,
        track_every=args.track_every, max_examples=args.max_examples, seed=args.seed, dtype=args.dtype,
        output_dir=args.output_dir,
    )  # fmt: skip
    prepared = prepare(config)
    if args.num_epochs is not None and args.max_steps is None:
        steps = max(1, math.ceil(args.num_epochs * len(prepared.data.train_texts) / config.batch_size))
        config = TrainConfig(**{**config.__dict__, "steps": steps})
    print(f"{prepared.loaded.name} on {prepared.loaded.device} ({prepared.loaded.dtype}); {config.method}, {config.steps} steps, lr {config.effective_lr():g}", file=sys.stderr)
    bar = tqdm(total=config.steps, disable=args.quiet, unit="step")
    result = None
    try:
        for event in iter_train(config, prepared):
            if isinstance(event, RunResult):
                result = event
            else:
                bar.update(1)
                bar.set_postfix(loss=f"{event.loss:.3f}", **({event.eval_name[:4]: f"{event.eval_metric:.3f}"} if event.eval_metric is not None else {}))
    except BaseException:
        bar.close()
        print(f"delora-viz: training stopped early; the tracker history so far is in {Path(args.output_dir) / 'delora_history.jsonl'}"
              + (" and the last saved adapter is in --output_dir" if args.save_step else ""), file=sys.stderr)  # fmt: skip
        raise
    bar.close()
    prepared.loaded.tokenizer.save_pretrained(args.output_dir)
    print(json.dumps(result.final, indent=2, default=str))
    if result.status == "diverged":
        print(f"delora-viz: the loss became NaN/inf at step {result.diverged_at}; lower --learning_rate", file=sys.stderr)
        return 1
    if args.push_to_hub:
        result.model.push_to_hub(args.hub_model_id, token=os.environ.get("HF_TOKEN"))
    return 0


def _check_hub(args) -> None:
    """Fail before training, not after: pushing needs a repository, a token and the network."""
    if not args.hub_model_id:
        raise ValueError("--push_to_hub needs --hub_model_id (e.g. your-name/delora-adapter)")
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise ValueError("--push_to_hub needs network access, but HF_HUB_OFFLINE is set; unset it or drop --push_to_hub")
    if not os.environ.get("HF_TOKEN"):
        from huggingface_hub import get_token

        if not get_token():
            raise ValueError("--push_to_hub needs a Hugging Face token: set HF_TOKEN or run `hf auth login`")


if __name__ == "__main__":
    sys.exit(main())
