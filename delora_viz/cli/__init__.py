"""`delora-viz`: the command line. One module per subcommand; this file only dispatches.

delora-viz train --output_dir out/delora        # PEFT's delora_finetuning.py flags, our loop
"""

from __future__ import annotations

import argparse
import sys

from ..errors import DeloraVizError
from . import app, inspect, plot, space, train

SUBCOMMANDS = (train, inspect, plot, app, space)
# Bad input: our DeloraVizError, and FileNotFoundError for a path the user typed. Anything else is a bug
# (ours or the environment's) and keeps its traceback.
USER_ERRORS = (DeloraVizError, FileNotFoundError)


def flag_for(field: str) -> str:
    """The CLI flag of a library knob (a TrainConfig field or an argument name): `lr` -> `--learning_rate`."""
    return train.FLAG_FOR.get(field, f"--{field}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="delora-viz", description="Fine-tune with LoRA, DoRA or DeLoRA and track the update."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in SUBCOMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except USER_ERRORS as err:
        field = getattr(err, "field", None)
        where = f"{flag_for(field)}: " if field and flag_for(field) not in str(err) else ""
        print(f"delora-viz: error: {where}{err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
