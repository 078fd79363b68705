"""Reading user data: local csv/json/jsonl/txt files and Hugging Face datasets, into columns, then
into (texts, labels). Column names are found from common conventions unless given explicitly."""

from __future__ import annotations

import csv
import io
import json
from itertools import repeat
from pathlib import Path

MIN_EXAMPLES = 4
TEXT_COLUMNS = ("text", "sentence", "content", "document", "review", "body")
PAIR_COLUMNS = (
    ("question", "answer"),
    ("prompt", "completion"),
    ("instruction", "output"),
    ("prompt", "response"),
    ("query", "response"),
    ("input", "output"),
    ("sentence1", "sentence2"),
)
LABEL_COLUMNS = ("label", "labels", "category", "topic", "class", "target", "sentiment")
FILE_SUFFIXES = (".csv", ".json", ".jsonl", ".txt")


def read_text(path: Path) -> str:
    """Decode UTF-8 (most BBC files), falling back to latin-1 (one BBC file) so nothing fails."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _rows_to_columns(rows: list, where: str) -> dict[str, list]:
    """List of dicts -> dict of columns (missing keys become None)."""
    if not all(isinstance(r, dict) for r in rows):
        raise ValueError(f'{where}: expected a list of objects like {{"text": ..., "label": ...}}')
    keys = list(dict.fromkeys(k for r in rows for k in r if k is not None))  # None: csv overflow
    return {k: [r.get(k) for r in rows] for k in keys}


def _read_json(path: Path) -> dict[str, list]:
    obj = json.loads(read_text(path))
    if isinstance(obj, dict):
        for key in ("data", "train", "examples"):
            if isinstance(obj.get(key), list):
                obj = obj[key]
                break
        else:
            if obj and all(isinstance(v, list) for v in obj.values()):
                return obj  # already an object of columns
    if isinstance(obj, list) and obj and all(isinstance(x, str) for x in obj):
        return {"text": obj}
    if not isinstance(obj, list):
        raise ValueError(f"{path}: expected a list of objects, or an object with a 'data' list")
    return _rows_to_columns(obj, str(path))


def _read_jsonl(path: Path) -> dict[str, list]:
    rows = []
    for i, line in enumerate(read_text(path).splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{path}, line {i}: not valid JSON ({err.msg}); a .jsonl file needs one JSON object per line"
                ) from err
    return _rows_to_columns(rows, str(path))


def read_file(path: str | Path, task: str) -> dict[str, list]:
    """Read a local data file into columns: {column name: list of values}."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        if task == "classification":
            raise ValueError(
                f"{path}: a .txt file has no labels; for classification use a .csv, "
                ".json or .jsonl file with a text column and a label column"
            )
        return {"text": [ln.strip() for ln in read_text(path).splitlines() if ln.strip()]}
    if suffix == ".csv":  # StringIO keeps newlines inside quoted cells
        return _rows_to_columns(list(csv.DictReader(io.StringIO(read_text(path)))), str(path))
    if suffix in (".json", ".jsonl"):
        return (_read_json if suffix == ".json" else _read_jsonl)(path)
    raise ValueError(f"{path}: unsupported file type '{suffix}'; use one of {', '.join(FILE_SUFFIXES)}")


def read_hf_dataset(spec: str, max_examples: int | None, seed: int) -> tuple[dict[str, list], dict]:
    """Columns of a Hugging Face dataset ``name[:config][@split]`` (default split: train/first)."""
    import datasets  # lazy: heavy import

    name, _, split = spec.partition("@")
    name, _, config = name.partition(":")
    try:
        ds = datasets.load_dataset(name, config or None, split=split or None)
    except (OSError, ConnectionError) as err:  # offline, not found (DatasetNotFoundError), no network
        raise ValueError(
            f"dataset '{spec}' is not available offline (or does not exist): pass a local "
            ".csv/.json/.jsonl/.txt path, or run once with network access"
        ) from err
    except ValueError as err:  # e.g. a wrong config or split name
        raise ValueError(f"could not load dataset '{spec}': {err}") from err
    if isinstance(ds, datasets.DatasetDict):
        ds = ds["train"] if "train" in ds else ds[next(iter(ds))]
    if max_examples is not None and len(ds) > max_examples:
        ds = ds.shuffle(seed=seed).select(range(max_examples))  # avoid listing a huge dataset
    class_names = {c: f.names for c, f in ds.features.items() if isinstance(f, datasets.ClassLabel)}
    return {c: ds[c] for c in ds.column_names}, class_names


# ---------------------------------------------------------------- columns -> examples


def _is_textual(values: list) -> bool:
    """A column of mostly non-numeric strings."""
    strs = [v for v in values if isinstance(v, str) and v.strip()]
    if len(strs) < max(1, len(values) // 2):
        return False
    return not all(_as_int(v) is not None or _is_float(v) for v in strs)


def _is_float(v) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def _as_int(v) -> int | None:
    """An integer-valued label (int, integral float, or a string of one) -> int, else None."""
    if isinstance(v, bool) or not _is_float(v):
        return None
    f = float(v)
    return int(f) if f.is_integer() else None


def pick_columns(
    columns: dict[str, list], task: str, text_column: str | None = None, label_column: str | None = None
) -> tuple[list[str], str | None]:
    """(text column(s), label column or None), explicit names first, then common names."""
    found = ", ".join(columns) or "none"
    lower = {c.lower(): c for c in columns}
    for given in (text_column, label_column):
        if given is not None and given not in columns:
            raise ValueError(f"column '{given}' not found; the columns are: {found}")
    label = label_column
    if task == "classification" and label is None:
        label = next((lower[c] for c in LABEL_COLUMNS if c in lower), None)
        if label is None:
            raise ValueError(
                f"no label column found (looked for {', '.join(LABEL_COLUMNS)}); "
                f"pass label_column=... , one of: {found}"
            )
    if text_column is not None:
        return [text_column], label
    for name in TEXT_COLUMNS:
        if name in lower:
            return [lower[name]], label
    for first, second in PAIR_COLUMNS:
        if first in lower and second in lower:
            return [lower[first], lower[second]], label
    textual = [c for c in columns if c != label and _is_textual(columns[c])]
    if len(textual) == 1:
        return textual, label
    raise ValueError(
        f"no text column found (looked for {', '.join(TEXT_COLUMNS)} or pairs like "
        f"question+answer); pass text_column=... , one of: {found}"
    )


def _join(values: list, names: list[str]) -> str | None:
    """One text from one column, or 'Question: q\\nAnswer: a' from a pair of columns."""
    if any(not isinstance(v, str) or not v.strip() for v in values):
        return None  # missing or non-text cell: drop the row
    if len(values) == 1:
        return values[0].strip()
    return "\n".join(f"{n.title()}: {v.strip()}" for n, v in zip(names, values))


def encode_labels(values: list, class_names: list[str] | None = None) -> tuple[list[int], list[str]]:
    """Labels -> (ids in 0..K-1, names). Integers keep their order (names str(int)); strings sort."""
    if class_names is not None:  # a datasets ClassLabel: ids already index its names
        return [int(v) for v in values], list(class_names)
    if any(isinstance(v, (list, dict)) for v in values):
        raise TypeError(
            "the label column holds lists (multi-label?); pass label_column=... naming a column with one class per row"
        )
    ints = [_as_int(v) for v in values]
    if all(i is not None for i in ints):
        uniq = sorted(set(ints))
        index = {v: i for i, v in enumerate(uniq)}
        return [index[v] for v in ints], [str(v) for v in uniq]
    if all(_is_float(v) for v in values):
        raise ValueError(
            "the label column holds non-integer numbers (a regression target?); "
            "classification needs class labels (strings or integers)"
        )
    names = sorted({str(v).strip() for v in values})
    index = {n: i for i, n in enumerate(names)}
    return [index[str(v).strip()] for v in values], names


def to_examples(columns, task, text_column=None, label_column=None, class_names=None):
    """Columns -> (texts, label ids or None, label names or None); drops rows with empty cells."""
    if not any(len(v) for v in columns.values()):
        raise ValueError(f"found 0 examples (empty data); need at least {MIN_EXAMPLES}")
    text_cols, label_col = pick_columns(columns, task, text_column, label_column)
    class_names = (class_names or {}).get(label_col)
    rows = zip(*(columns[c] for c in text_cols), columns[label_col] if label_col else repeat(None))
    texts, raw = [], []
    for *values, label in rows:
        text = _join(values, text_cols)
        missing = label_col and (label in (None, "") or class_names is not None and label < 0)
        if text is not None and not missing:  # ClassLabel -1 marks unlabeled rows (GLUE test)
            texts.append(text)
            raw.append(label)
    if task == "causal_lm":
        return texts, None, None
    return (texts, *encode_labels(raw, class_names))
