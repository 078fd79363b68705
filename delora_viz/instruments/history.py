"""Tracker history files: one row per (step, layer), as CSV or JSONL, written as they are recorded.

The columns are COLUMNS; NaN where a method has no such quantity (LoRA has no bound). JSONL keeps
every float bit-exact (NaN as null, inf as "Infinity"); CSV writes repr(float), which round-trips.
The first line names the format version; a torn last line (a run killed mid-write) loads with a warning.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import time
import warnings
from pathlib import Path

from ..errors import DeloraVizError

COLUMNS = (
    "step",
    "layer",
    "method",
    "rank",
    "delta_fro",
    "w_fro",
    "rel_delta",
    "angle_delta_w_deg",
    "angle_w_prime_deg",
    "bound",
    "bound_loose",
    "bound_ratio",
    "lambda",
    "sigma_max",
    "dora_mag_drift",
    "turn_deg",
)
MEASURED = COLUMNS[4:]  # computed on the device, copied to the host once per record
OPTIONAL = ("turn_deg",)  # added after format 1: files without it load, with NaN
SUFFIXES = (".csv", ".jsonl")
# Version 2 added the first line that names the format (JSONL: {"delora_viz_history": 2}; CSV: a "#" line)
# and the turn_deg column. Files without that line are version 1 and still load.
FORMAT_VERSION = 2
CSV_MARK = "# delora_viz_history "


def summarize(rows: list[dict], prefix: str = "delora/") -> dict[str, float]:
    """{prefix + metric_mean / _max} over layers, skipping NaN; empty dict for no rows."""
    out = {}
    for key in ("delta_fro", "rel_delta", "angle_delta_w_deg", "angle_w_prime_deg", "bound_ratio", "lambda"):
        values = [float(r[key]) for r in rows if not math.isnan(float(r[key]))]
        if values:
            out[f"{prefix}{key}_mean"] = sum(values) / len(values)
            out[f"{prefix}{key}_max"] = max(values)
    return out


def append_rows(path: Path, rows: list[dict]) -> None:
    """Append rows to a .csv or .jsonl file (the format line and the header once) and flush."""
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as f:
        if path.suffix == ".jsonl":
            if new:
                f.write(json.dumps({"delora_viz_history": FORMAT_VERSION}) + "\n")
            f.writelines(json.dumps({k: _json_value(r.get(k)) for k in COLUMNS}) + "\n" for r in rows)
        else:
            writer = csv.DictWriter(f, fieldnames=list(COLUMNS), extrasaction="ignore")
            if new:
                f.write(f"{CSV_MARK}{FORMAT_VERSION}\n")
                writer.writeheader()
            writer.writerows({k: repr(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows)


def _complete_lines(path: Path) -> tuple[list[str], int]:
    """The file's lines, without a torn last one (every row is written whole, ending in a newline; a run
    killed mid-write leaves a last line without it). Returns (lines, format version); warns on a torn line."""
    text = path.read_text()
    lines = text.split("\n")
    torn = lines.pop()  # "" when the file ends with a newline
    if torn.strip():
        warnings.warn(
            f"{path}: ignoring an incomplete last line (the run was stopped while writing it); every complete "
            f"row is kept",
            stacklevel=3,
        )
    version = 1
    if lines and lines[0].startswith(CSV_MARK):
        version = int(lines.pop(0)[len(CSV_MARK) :])
    elif lines and lines[0].startswith('{"delora_viz_history"'):
        version = json.loads(lines.pop(0))["delora_viz_history"]
    if version > FORMAT_VERSION:
        raise DeloraVizError(
            f"{path} was written by a newer delora-viz (history format {version}, this one reads up to "
            f"{FORMAT_VERSION}): upgrade delora-viz to read it"
        )
    return lines, version


def load_history(path):
    import pandas as pd

    path = check_suffix(path)
    if not path.is_file():
        raise FileNotFoundError(f"no tracker history at {path}")
    try:
        lines, _ = _complete_lines(path)
        if path.suffix == ".jsonl":  # the json module, not pd.read_json: it keeps every float bit-exact
            df = pd.DataFrame([json.loads(line) for line in lines if line.strip()])
        else:
            df = pd.read_csv(io.StringIO("\n".join(lines)))  # round-trips repr(float) exactly
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        if "newer delora-viz" in str(err):
            raise
        raise DeloraVizError(
            f"{path} is not a tracker history (it does not parse as {path.suffix[1:].upper()}): {err}"
        ) from None
    missing = [c for c in COLUMNS if c not in df.columns and c not in OPTIONAL]
    if missing:
        raise DeloraVizError(f"{path} is not a tracker history: it lacks the columns {missing}")
    for column in OPTIONAL:
        if column not in df.columns:
            df[column] = float("nan")
    df = df[list(COLUMNS) + [c for c in df.columns if c not in COLUMNS]]
    df[list(MEASURED)] = df[list(MEASURED)].astype(float)
    df["layer"], df["method"] = df["layer"].astype(str), df["method"].astype(str)
    return df


def keep_steps_up_to(path: Path, step: int) -> None:
    """Rewrite the history at `path` without its rows after `step` (and without a torn last line), for a
    run resumed from the checkpoint of `step`: the rows it recorded after that checkpoint are redone."""
    df = load_history(path)
    tmp = path.with_name(f".{path.stem}.resume{path.suffix}")
    tmp.unlink(missing_ok=True)
    append_rows(tmp, df[df["step"] <= step].to_dict("records"))
    tmp.replace(path)  # atomic


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    return v


def check_suffix(path) -> Path:
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise DeloraVizError(
            f"tracker files end in {' or '.join(SUFFIXES)}; got '{path.name}'. Choose e.g. history.jsonl"
        )
    return path


def rotate_aside(path) -> Path | None:
    """Move an existing history at `path` to a new name beside it (never overwriting), so a new run
    starts a fresh file. Returns the new name, or None when there was nothing to move.

    Names are <stem>.<YYYYmmdd-HHMMSS>[.N]<suffix>; the new name is claimed with a hard link, which fails if
    it exists, so two rotations in the same second (even from two processes) never take the same name."""
    path = Path(path)
    if not path.exists():
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in itertools.count():
        target = path.with_name(f"{path.stem}.{stamp}{f'.{n}' if n else ''}{path.suffix}")
        try:
            os.link(path, target)  # atomic, and never replaces an existing file
        except FileExistsError:
            continue
        except OSError:  # a filesystem without hard links: check, then rename
            if target.exists():
                continue
            path.rename(target)
            return target
        path.unlink()
        return target
