"""Results computed once and shipped beside the tutorials, so a notebook reads them in seconds.

A shipped result is two files in one folder (by default the repository's ``notebooks/data``):

    <name>.csv    the DataFrame (floats written to 9 significant digits: small files, exact enough to plot)
    <name>.json   its stamp: {"name", "config", "delora_viz", "date", "seconds", "torch", "peft", "python", "rows"}

``load_or_compute(name, config, compute)`` returns the shipped frame when the stamp's ``config`` equals
``config`` (after a JSON round trip) and ``DELORA_VIZ_RECOMPUTE`` is not set; otherwise it calls
``compute()``, writes both files and returns the new frame. The stamp travels with the frame in
``frame.attrs["stamp"]``, so a notebook can say when and how a result was made.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

RECOMPUTE_ENV = "DELORA_VIZ_RECOMPUTE"
FLOAT_FORMAT = "%.9g"  # 9 digits: float32 metrics round-trip; a sweep stays well under 1 MB


def default_directory() -> Path:
    """notebooks/data of the repository this package sits in, else ./data (a notebook's folder)."""
    repo = Path(__file__).resolve().parents[2] / "notebooks" / "data"
    return repo if repo.parent.is_dir() else Path("data")


def _normalised(config) -> object:
    """The config as its JSON round trip: tuples become lists, keys strings, so equal configs compare equal."""
    try:
        return json.loads(json.dumps(config, sort_keys=True))
    except TypeError as err:
        message = f"a shipped result's config must be JSON-serialisable (dicts, lists, numbers, str): {err}"
        raise TypeError(message) from None


def _paths(name: str, directory) -> tuple[Path, Path]:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"a shipped result's name is a plain file stem like 'lr_sweep', got {name!r}")
    folder = Path(directory) if directory is not None else default_directory()
    return folder / f"{name}.csv", folder / f"{name}.json"


def recompute_requested() -> bool:
    return os.environ.get(RECOMPUTE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def save_shipped(frame: pd.DataFrame, name: str, config, seconds: float, directory=None) -> dict:
    """Write <name>.csv and its <name>.json stamp; return the stamp."""
    import peft
    import torch

    from .. import __version__

    csv_path, stamp_path = _paths(name, directory)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    stamp = dict(
        name=name,
        config=_normalised(config),
        delora_viz=__version__,
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        seconds=round(float(seconds), 1),
        torch=torch.__version__,
        peft=peft.__version__,
        python=platform.python_version(),
        rows=len(frame),
    )
    frame.to_csv(csv_path, index=False, float_format=FLOAT_FORMAT)
    stamp_path.write_text(json.dumps(stamp, indent=2) + "\n")
    return stamp


def load_shipped(name: str, directory=None) -> pd.DataFrame:
    """The shipped frame, with its stamp in ``.attrs["stamp"]``. FileNotFoundError names the missing file."""
    csv_path, stamp_path = _paths(name, directory)
    for path in (csv_path, stamp_path):
        if not path.is_file():
            raise FileNotFoundError(f"no shipped result {name!r}: {path} is missing")
    frame = pd.read_csv(csv_path)
    frame.attrs["stamp"] = json.loads(stamp_path.read_text())
    return frame


def shipped_matches(name: str, config, directory=None) -> bool:
    """True when <name>.csv and a readable stamp exist and the stamp's config equals ``config``."""
    csv_path, stamp_path = _paths(name, directory)
    if not (csv_path.is_file() and stamp_path.is_file()):
        return False
    try:
        stamp = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(stamp, dict) and stamp.get("config") == _normalised(config)


def load_or_compute_many(
    names: list[str], config, compute: Callable[[], dict[str, pd.DataFrame]], directory=None
) -> dict[str, pd.DataFrame]:
    """Several frames made by one computation (e.g. a sweep's table and its per-step curves), stamped alike.

    compute() returns {name: DataFrame} with exactly ``names`` as keys; it runs only when one of them is
    missing, its stamp's config differs, or DELORA_VIZ_RECOMPUTE is set."""
    names = list(names)
    if not names:
        raise ValueError("load_or_compute_many: give at least one name")
    if not recompute_requested() and all(shipped_matches(n, config, directory) for n in names):
        return {n: load_shipped(n, directory) for n in names}
    started = time.perf_counter()
    frames = compute()
    seconds = time.perf_counter() - started
    if not isinstance(frames, dict) or set(frames) != set(names):
        got = sorted(frames) if isinstance(frames, dict) else type(frames).__name__
        raise ValueError(f"load_or_compute_many: compute() must return {{name: DataFrame}} for {names}, got {got}")
    for n in names:
        frames[n].attrs["stamp"] = save_shipped(frames[n], n, config, seconds, directory)
    return {n: frames[n] for n in names}


def load_or_compute(name: str, config, compute: Callable[[], pd.DataFrame], directory=None) -> pd.DataFrame:
    """The shipped frame <name> when its stamp's config equals ``config`` and DELORA_VIZ_RECOMPUTE is unset;
    otherwise compute(), written as <name>.csv + <name>.json, and returned."""
    return load_or_compute_many([name], config, lambda: {name: compute()}, directory)[name]


# ----------------------------------------------------------------------------- the results we ship
# The learning-rate sweep of notebooks 00 and 03: every method at multiples of its recommended rate on the
# embedded MiniLM + BBC News (TrainConfig's defaults: rank 8 on query/value, batch 8, lambda 5; 48 tokens and
# 20 steps keep it to 9 short runs; the stamp says how long they took).
LR_SWEEP = dict(
    methods=["lora", "dora", "delora"],
    multipliers=[1, 10, 100],
    train=dict(max_steps=20, eval_every=20, max_length=48, eval_examples=64, seed=0),
)


def shipped_lr_sweep(spec: dict | None = None, directory=None) -> dict[str, pd.DataFrame]:
    """{"lr_sweep": one row per run (sweep_frame), "lr_sweep_steps": one row per run and step (sweep_steps_frame)},
    read from notebooks/data when shipped for ``spec`` (default LR_SWEEP), else trained (9 runs of 20 steps)."""
    from .comparisons import lr_sweep_frames
    from .config import TrainConfig

    spec = spec or LR_SWEEP
    config = TrainConfig(**spec["train"])
    return load_or_compute_many(
        ["lr_sweep", "lr_sweep_steps"],
        spec,
        lambda: lr_sweep_frames(spec["methods"], spec["multipliers"], config),
        directory,
    )
