"""`delora-viz train`: a drop-in for PEFT's examples/delora_finetuning/delora_finetuning.py, on our one loop.

    delora-viz train --output_dir out/delora                       # the embedded MiniLM + BBC News
    delora-viz train --base_model ./my-llama --data_path ./my-data --output_dir out/llama \
        --batch_size 1 --num_epochs 1 --learning_rate 3e-3 --rank 32 --delora_lambda 15 \
        --gradient_accumulation_steps 16 --report_to tensorboard

Every flag of the script keeps its meaning, with these choices (the script's quirks):
- gradient accumulation: the script hard-codes 16; here it is --gradient_accumulation_steps (default 1).
- --eval_step: the script's logging interval (it never evaluates). Here: evaluate on the held-out set every
  N optimizer steps (0: at the end); loss and the tracker's scalars are written at every step.
- --val_set_size: unused by the script. Here: the examples evaluated; with no test/validation split in the
  dataset, also how many are held out (at most 20% of the data).
- warm-up: the script's is 10% of len(DatasetDict) // batch_size, i.e. 0 steps; here --warmup_steps (0).
- --num_epochs: exact epochs in optimizer steps (the loop counts them, as Trainer does).
- the task comes from the model (a causal LM for a Llama-style checkpoint); --task overrides it.

Writes to --output_dir: the adapter (PeftModel.from_pretrained(base_model, output_dir) loads it; its config
names a preset's public Hub id, else your --base_model), the tokenizer, delora_history.jsonl, summary.json,
and with --report_to tensorboard, event files under runs/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from ..errors import DeloraVizError
from ..training.config import TASKS, TrainConfig, config_defaults
from ..training.methods import METHODS, get_method

# PEFT's delora_finetuning.py flag -> TrainConfig field. Defaults and help come from TrainConfig, so a
# default is written once (training/config.py); our own flags use the field name itself.
PEFT_FLAGS = {
    "base_model": "model",
    "data_path": "data",
    "batch_size": "batch_size",
    "num_epochs": "epochs",
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
OWN_FLAGS = ("method", "task", "max_steps", "gradient_accumulation_steps", "warmup_steps", "track_every")
OWN_FLAGS += ("max_examples", "seed", "dtype")
# field -> the flag that sets it (what an error about that field names)
FLAG_FOR = {name: f"--{flag}" for flag, name in PEFT_FLAGS.items()}
# The script's defaults where ours differ (printed once at start for the flags not given).
SCRIPT_DEFAULTS = {
    "batch_size": 1,
    "num_epochs": 1,
    "learning_rate": 3e-3,
    "cutoff_len": 512,
    "val_set_size": 500,
    "eval_step": 10,
    "save_step": 100,
    "rank": 32,
    "delora_lambda": 640,
    "module_dropout": 0.05,
    "gradient_accumulation_steps": 16,
}
# Where the CLI's meaning is more specific than TrainConfig's help.
HELP = {
    "data_path": "anything datasets.load_dataset reads: a Hub name[:config][@split], a dataset folder "
    "(train/test files), a csv/json/jsonl/txt file; None: the task's embedded data",
    "val_set_size": "examples evaluated; with no test/validation split in the dataset, also the number "
    "held out (at most 20%% of the data)",
    "eval_step": "optimizer steps between evaluations (0: at the end); the script logs at this interval",
    "max_steps": "optimizer steps (give this or --num_epochs)",
}
FLOAT_FIELDS = ("lr", "epochs", "delora_lambda", "module_dropout")
INT_FIELDS = ("max_examples",)


class _Given(argparse._StoreAction):
    """Stores the value and notes that the flag was given (so only defaults not chosen are reported)."""

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        namespace.given = getattr(namespace, "given", set()) | {self.dest}


def _add_config_flag(parser: argparse.ArgumentParser, flag: str, name: str, **kwargs) -> None:
    """--flag for TrainConfig.<name>, with its default, type and help."""
    field = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    default = field.default
    kind = {int: int, float: float}.get(type(default), str)
    kind = float if name in FLOAT_FIELDS else int if name in INT_FIELDS else kind
    shown = "" if default is None else f" (default: {default})"
    help_text = HELP.get(flag, field.metadata.get("help", ""))
    script = SCRIPT_DEFAULTS.get(flag)
    shown += f" [delora_finetuning.py: {script}]" if script is not None and "script" not in help_text else ""
    help_text += shown
    parser.add_argument(f"--{flag}", dest=name, type=kind, default=default, help=help_text, action=_Given, **kwargs)


def add_parser(sub) -> argparse.ArgumentParser:
    """`delora-viz train`: the subcommand's flags, added to the CLI's subparsers."""
    t = sub.add_parser("train", help="train one adapter (the flags of PEFT's delora_finetuning.py example, and more)")
    # --- the flags of peft/examples/delora_finetuning/delora_finetuning.py
    for flag, name in PEFT_FLAGS.items():
        _add_config_flag(t, flag, name)
    t.add_argument("--output_dir", required=True, help="where the adapter, tokenizer, history and summary go")
    t.add_argument("--hub_model_id", default=None, help="repository to push to with --push_to_hub")
    t.add_argument("--push_to_hub", action="store_true", help="push the adapter folder to the Hub (network, token)")
    # --- ours
    for name in OWN_FLAGS:
        kwargs = {"choices": list(METHODS)} if name == "method" else {}
        kwargs = {"choices": list(TASKS)} if name == "task" else kwargs
        _add_config_flag(t, name, name, **kwargs)
    t.add_argument("--text_column", default=None, help="the dataset's text column (default: found by name)")
    t.add_argument("--label_column", default=None, help="the dataset's label column, for classification")
    t.add_argument(
        "--report_to",
        default="none",
        help="tensorboard, trackio or none (comma-separated for several): the loss and the tracker's scalars",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(run=run, given=set())
    return t


def build_config(args) -> TrainConfig:
    """TrainConfig from the flags given (the rest: its defaults), with the task inferred from the model."""
    from ..training.models import infer_task

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    settings = {k: v for k, v in vars(args).items() if k in fields}
    if {"epochs", "max_steps"} <= getattr(args, "given", set()):
        raise DeloraVizError("give --num_epochs or --max_steps, not both", field="max_steps")
    config = TrainConfig(**settings)  # validates the numbers before anything loads
    return dataclasses.replace(config, task=infer_task(config.model, config.task))


def differences(args, config: TrainConfig) -> list[str]:
    """'--flag ours (script: theirs)' for the flags not given where our default differs from the script's."""
    ours = {flag: config_defaults()[name] for flag, name in PEFT_FLAGS.items()}
    ours.update(
        learning_rate=get_method(config.method).default_lr,
        gradient_accumulation_steps=config_defaults()["gradient_accumulation_steps"],
    )
    given = getattr(args, "given", set())
    out = []
    for flag, theirs in SCRIPT_DEFAULTS.items():
        name = PEFT_FLAGS.get(flag, flag)
        if name in given or (flag == "delora_lambda" and not config.method.startswith("delora")):
            continue
        if flag == "num_epochs":
            if "max_steps" not in given:
                out.append(f"--max_steps {config.max_steps} (script: --num_epochs {theirs})")
        elif ours[flag] != theirs:
            out.append(f"--{flag} {ours[flag]:g} (script: {theirs:g})")
    return out


def prepare_cli(config: TrainConfig, args):
    """The loop's Prepared, with the CLI's data choices: columns, and --val_set_size as the held-out size."""
    import torch

    from ..training.data import load_data
    from ..training.loop import Prepared
    from ..training.models import load_model, resolve_model

    torch.manual_seed(config.seed)  # as loop.prepare: the same seed, the same fresh head
    source = resolve_model(config.model)  # once, for the loader (build_config only read its config.json)
    data = load_data(
        config.data,
        config.task,
        eval_fraction=config.eval_fraction,
        max_examples=config.max_examples,
        seed=config.seed,
        text_column=args.text_column,
        label_column=args.label_column,
        eval_size=config.eval_examples,
    )
    loaded = load_model(source, data.task, num_labels=data.num_labels, device=config.device, dtype=config.dtype)
    return Prepared(loaded, data)


def run(args) -> int:
    from tqdm.auto import tqdm

    from ..training.data import describe
    from ..training.hub import model_card, name_base_model, push_adapter
    from ..training.loop import RunResult, iter_train
    from ..training.reporting import open_writers, scalars

    if args.push_to_hub:
        _check_hub(args)
    config = build_config(args)
    report_to = [name.strip() for name in args.report_to.split(",") if name.strip()]
    out = Path(args.output_dir)
    changed = differences(args, config)
    if changed:
        print(
            "delora-viz: where our defaults differ from delora_finetuning.py's: " + ", ".join(changed), file=sys.stderr
        )
    prepared = prepare_cli(config, args)
    loaded = prepared.loaded
    print(
        f"{loaded.name} ({config.task}) on {loaded.device} ({loaded.dtype}); {describe(prepared.data)}", file=sys.stderr
    )
    print(f"{config.method}, lr {config.effective_lr():g}", file=sys.stderr)
    writers = open_writers(report_to, out, out.name or config.method, dataclasses.asdict(config))
    bar = tqdm(total=config.max_steps, disable=args.quiet, unit="step")
    result = None
    try:
        for event in iter_train(config, prepared):
            if isinstance(event, RunResult):
                result = event
                continue
            bar.total = event.total_steps
            bar.update(1)
            postfix = {event.eval_name[:4]: f"{event.eval_metric:.3f}"} if event.eval_metric is not None else {}
            bar.set_postfix(loss=f"{event.loss:.3f}", **postfix)
            for writer in writers:
                writer.write(event.step, scalars(event))
    except BaseException:
        history = out / "delora_history.jsonl"
        saved = " and the last saved adapter is in --output_dir" if config.save_every else ""
        print(f"delora-viz: training stopped early; the tracker history so far is in {history}{saved}", file=sys.stderr)
        raise
    finally:
        bar.close()
        for writer in writers:
            writer.close()
    loaded.tokenizer.save_pretrained(args.output_dir)
    if (out / "adapter_config.json").is_file():  # the base model by a name that means something elsewhere
        base = name_base_model(out, config.model)
        (out / "README.md").write_text(model_card(base, config.method, result.final))
    print(json.dumps(result.final, indent=2, default=str))
    if result.status == "diverged":
        print(
            f"delora-viz: the loss became NaN/inf at step {result.diverged_at}; lower --learning_rate", file=sys.stderr
        )
        return 1
    if args.push_to_hub:
        url = push_adapter(out, args.hub_model_id, token=os.environ.get("HF_TOKEN"))
        print(f"delora-viz: pushed the adapter to {url}", file=sys.stderr)
    return 0


def _check_hub(args) -> None:
    """Fail before training, not after: pushing needs a repository, a token and the network."""
    if not args.hub_model_id:
        raise DeloraVizError("--push_to_hub needs --hub_model_id (e.g. your-name/delora-adapter)", field="hub_model_id")
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise DeloraVizError(
            "--push_to_hub needs network access, but HF_HUB_OFFLINE is set; unset it or drop --push_to_hub",
            field="push_to_hub",
        )
    if not os.environ.get("HF_TOKEN"):
        from huggingface_hub import get_token

        if not get_token():
            raise DeloraVizError(
                "--push_to_hub needs a Hugging Face token: set HF_TOKEN or run `hf auth login`", field="push_to_hub"
            )
