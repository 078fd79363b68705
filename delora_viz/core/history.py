"""Tracker history files: one row per (step, layer), as CSV or JSONL, written as they are recorded.

The columns are COLUMNS; NaN where a method has no such quantity (LoRA has no bound). JSONL keeps
every float bit-exact (NaN as null, inf as "Infinity"); CSV writes repr(float), which round-trips.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import time
from pathlib import Path

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
SUFFIXES = (".csv", ".jsonl")


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
    """Append rows to a .csv (header once) or .jsonl file and flush."""
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as f:
        if path.suffix == ".jsonl":
            f.writelines(json.dumps({k: _json_value(r.get(k)) for k in COLUMNS}) + "\n" for r in rows)
        else:
            writer = csv.DictWriter(f, fieldnames=list(COLUMNS), extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerows({k: repr(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows)


def load_history(path):
    import pandas as pd

    path = check_suffix(path)
    if not path.is_file():
        raise FileNotFoundError(f"no tracker history at {path}")
    try:
        if path.suffix == ".jsonl":  # the json module, not pd.read_json: it keeps every float bit-exact
            df = pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()])
        else:
            df = pd.read_csv(path, float_precision="round_trip")
    except (ValueError, pd.errors.ParserError) as err:
        raise ValueError(
            f"{path} is not a tracker history (it does not parse as {path.suffix[1:].upper()}): {err}"
        ) from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} is not a tracker history: it lacks the columns {missing}")
    df = df[list(COLUMNS) + [c for c in df.columns if c not in COLUMNS]]
    df[list(MEASURED)] = df[list(MEASURED)].astype(float)
    df["layer"], df["method"] = df["layer"].astype(str), df["method"].astype(str)
    return df


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    return v


def check_suffix(path) -> Path:
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise ValueError(f"tracker files end in {' or '.join(SUFFIXES)}; got '{path.name}'. Choose e.g. history.jsonl")
    return path


def rotate_aside(path) -> Path | None:
    """Move an existing history at `path` to a new name beside it (never overwriting), so a new run
    starts a fresh file. Returns the new name, or None when there was nothing to move."""
    path = Path(path)
    if not path.exists():
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in itertools.count():  # two runs in the same second get .1, .2, ...
        target = path.with_name(f"{path.stem}.{stamp}{f'.{n}' if n else ''}{path.suffix}")
        if not target.exists():
            path.rename(target)
            return target
