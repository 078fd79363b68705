"""`delora-viz plot`: the app's figures from history files, several runs overlaid.

    delora-viz plot out/lora/delora_history.jsonl out/delora/delora_history.jsonl -o figures/
    delora-viz plot tracker.csv log.csv -o figures/          # the app's downloads: tracker + per-step loss

Writes update_norm.png, angles.png, lambda.png (DeLoRA runs), loss.png (when a loss is known: a loss log
given, or the trainer_state.json beside a TrackerCallback history), direction.png and heatmap_<run>.png.
Every file is checked before anything is drawn; bad ones get one line each and exit code 2. The PNGs are
written into a temporary folder beside DIR and moved in at the end, so DIR never holds half a result.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import DeloraVizError

DPI = 150


def add_parser(sub):
    p = sub.add_parser("plot", help="the app's figures from tracker history files (jsonl/csv), runs overlaid")
    p.add_argument("histories", nargs="+", metavar="HISTORY", help="delora_history.jsonl, tracker CSV, loss log")
    p.add_argument("-o", "--output_dir", required=True, metavar="DIR", help="where the PNGs go (created)")
    p.add_argument("--labels", default=None, help="comma-separated run labels, one per file (default: file names)")
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from ..plots.runs import BadInputs, load_runs, run_figures

    labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
    if labels is not None and len(labels) != len(args.histories):
        raise DeloraVizError(
            f"--labels has {len(labels)} names for {len(args.histories)} files; give one per file", field="labels"
        )
    check_output_dir(args.output_dir)
    try:
        tracker_df, loss_df = load_runs(args.histories, labels)
    except BadInputs as bad:
        return report(bad.lines)
    figs = run_figures(tracker_df, loss_df)
    runs = ", ".join(dict.fromkeys(tracker_df["run"].astype(str)))
    written = write_atomically(args.output_dir, figure_writers(figs))
    print(f"{len(written)} figures of {runs} in {args.output_dir}:", *[p.name for p in written])
    return 0


def report(lines: list[str]) -> int:
    """One `delora-viz: error:` line per bad input; exit code 2."""
    for line in lines:
        print(f"delora-viz: error: {line}", file=sys.stderr)
    return 2


def check_output_dir(directory) -> None:
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise DeloraVizError(f"-o {directory} is a file; choose a folder", field="output_dir")


def figure_writers(figs: dict) -> dict[str, Callable[[Path], None]]:
    """{"<name>.png": write(path)} for each figure; names reduced to safe file names."""
    writers = {}
    for name, fig in figs.items():
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("_") or "figure"
        writers[f"{stem}.png"] = lambda path, fig=fig: fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return writers


def write_atomically(directory, writers: dict[str, Callable[[Path], None]]) -> list[Path]:
    """Each writer writes its file into a temporary folder beside `directory`; all are moved in at the end.

    A failure (disk full, a bad figure) leaves `directory` as it was; a file of the same name is replaced."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        for name, write in writers.items():
            write(tmp / name)
        directory.mkdir(exist_ok=True)
        for name in writers:
            os.replace(tmp / name, directory / name)  # same filesystem: each move is atomic
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [directory / name for name in writers]
