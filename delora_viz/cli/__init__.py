"""`delora-viz`: the command line. One module per subcommand; this file only dispatches.

delora-viz train --output_dir out/delora        # PEFT's delora_finetuning.py flags, our loop
"""

from __future__ import annotations

import argparse
import sys

from . import app, inspect, plot, space, train

SUBCOMMANDS = (train, inspect, plot, app, space)
# The exceptions we raise for bad input; anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, FileNotFoundError, NotImplementedError)


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
        print(f"delora-viz: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
