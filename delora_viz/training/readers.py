"""Reading user data through `datasets.load_dataset`, then choosing the text and label columns.

Loading is datasets' job: a local .csv/.json/.jsonl/.txt file (its csv/json/text builders), a dataset
folder (e.g. train.jsonl + test.jsonl), or a Hub name ``name[:config][@split]``; with a row cap, Hub
datasets stream, so only the rows used are read. What stays ours: which columns hold the text and the
label (found from common names unless given), and turning labels into class ids.
"""

from __future__ import annotations

from itertools import repeat
from pathlib import Path

from ..errors import DeloraVizError

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
BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".txt": "text"}  # datasets' packaged builders
FILE_SUFFIXES = tuple(BUILDERS)
EVAL_SPLITS = ("test", "validation", "valid", "dev", "eval")  # a dataset's own held-out split, first found
STREAM_BUFFER = 10_000  # rows shuffled in memory when a capped Hub dataset streams


def read_text(path: Path) -> str:
    """Decode UTF-8 (most BBC files), falling back to latin-1 (one BBC file) so nothing fails."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# ---------------------------------------------------------------- loading (datasets)


def load_splits(spec: str, task: str, max_examples: int | None = None, seed: int = 0):
    """(name, {split: datasets.Dataset}) for a file, a folder or a Hub ``name[:config][@split]``.

    max_examples caps each split (a seeded shuffle, then the first rows); a capped Hub dataset
    streams, so a big one is never downloaded whole."""
    path = Path(spec).expanduser()
    if path.is_dir():
        name, args, kwargs = path.name, (str(path),), {}
    elif path.suffix.lower() in BUILDERS or path.exists() or spec.startswith((".", "/", "~")):
        name, args, kwargs = path.name, _file_builder(path, task), {"data_files": str(path)}
    else:  # a Hub dataset
        hub, _, split = spec.partition("@")
        hub, _, config = hub.partition(":")
        name, args, kwargs = (
            spec,
            (hub, config or None),
            {"split": split or None, "streaming": max_examples is not None},
        )
    loaded = _load(spec, args, kwargs)
    splits = dict(loaded) if hasattr(loaded, "keys") else {"train": loaded}  # a DatasetDict, or one split
    if args[0] == "json" and len(splits) == 1:
        splits = {"train": _one_json_object(splits["train"], kwargs)}
    return name, splits


def _file_builder(path: Path, task: str) -> tuple[str]:
    if not path.is_file():
        raise FileNotFoundError(f"data file or folder not found: {path}")
    builder = BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise DeloraVizError(
            f"{path}: unsupported file type '{path.suffix}'; use one of {', '.join(FILE_SUFFIXES)}, "
            "or a folder that datasets.load_dataset reads (e.g. train.jsonl + test.jsonl)",
            field="data",
        )
    if builder == "text" and task == "classification":
        raise DeloraVizError(
            f"{path}: a .txt file has no labels; for classification use a .csv, .json or .jsonl file "
            "with a text column and a label column, or train a causal LM (task causal_lm)",
            field="data",
        )
    return (builder,)


def _load(spec: str, args: tuple, kwargs: dict):
    """datasets.load_dataset with our messages; a text/csv file that is not UTF-8 is read as latin-1."""
    import datasets  # lazy: heavy import
    from datasets.exceptions import DatasetGenerationError

    try:
        try:
            return datasets.load_dataset(*args, **kwargs)
        except DatasetGenerationError as err:
            if args[0] in ("text", "csv") and isinstance(err.__cause__, UnicodeDecodeError):
                return datasets.load_dataset(*args, **kwargs, encoding="latin-1")
            raise
    except DatasetGenerationError as err:
        kind = "JSON Lines (one object per line) or a JSON list" if args[0] == "json" else args[0]
        why = str(err.__cause__ or err).strip().splitlines()[0]  # one line: the parser's first words say it
        raise DeloraVizError(f"{spec}: datasets could not read it as {kind}: {why}", field="data") from err
    except (ConnectionError, FileNotFoundError) as err:  # offline, not found, a folder without data files
        if Path(spec).expanduser().exists():
            raise DeloraVizError(f"{spec}: datasets.load_dataset found no data in it ({err})", field="data") from err
        raise DeloraVizError(
            f"dataset '{spec}' is not available offline (or does not exist): pass a local .csv/.json/.jsonl/.txt "
            "file or a dataset folder, or run once with network access",
            field="data",
        ) from err
    except ValueError as err:  # an empty file, a wrong config or split name
        if "corresponds to no data" in str(err):
            raise DeloraVizError(
                f"{spec}: found 0 examples (empty data); need at least {MIN_EXAMPLES}", field="data"
            ) from err
        raise DeloraVizError(f"could not load dataset '{spec}': {err}", field="data") from err


def _one_json_object(ds, kwargs):
    """A .json file holding one object: {"data"|"train"|"examples": [rows]} or {column: [values]}."""
    import datasets

    if len(ds) != 1 or not all(isinstance(f, datasets.List) for f in ds.features.values()):
        return ds
    (column, *others) = ds.column_names
    if not others and column in ("data", "train", "examples"):  # the rows sit under one key
        return datasets.load_dataset("json", **kwargs, field=column, split="train")
    return datasets.Dataset.from_dict(ds[0])  # an object of columns


def read_file(path: str | Path, task: str) -> dict[str, list]:
    """{column: values} of a local data file (its first split), read through load_splits."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    _, splits = load_splits(str(path), task)
    columns, _ = columns_of(next(iter(splits.values())), None, 0)
    return columns


def columns_of(ds, max_examples: int | None, seed: int) -> tuple[dict[str, list], dict[str, list[str]]]:
    """({column: values}, {column: class names of a ClassLabel}) of one split, capped at max_examples rows."""
    import datasets

    if isinstance(ds, datasets.IterableDataset):  # streamed: read only the rows we keep
        rows = list(ds.shuffle(seed=seed, buffer_size=STREAM_BUFFER).take(max_examples or STREAM_BUFFER))
        ds = datasets.Dataset.from_list(rows, features=ds.features)
    elif max_examples is not None and len(ds) > max_examples:
        ds = ds.shuffle(seed=seed).select(range(max_examples))
    class_names = {c: f.names for c, f in (ds.features or {}).items() if isinstance(f, datasets.ClassLabel)}
    return ds.to_dict(), class_names


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
            raise DeloraVizError(f"column '{given}' not found; the columns are: {found}", field="text_column")
    label = label_column
    if task == "classification" and label is None:
        label = next((lower[c] for c in LABEL_COLUMNS if c in lower), None)
        if label is None:
            raise DeloraVizError(
                f"no label column found for classification (looked for {', '.join(LABEL_COLUMNS)}); "
                f"name the label column, one of: {found}; or train a causal LM on the text "
                "(task causal_lm)",
                field="label_column",
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
    raise DeloraVizError(
        f"no text column found (looked for {', '.join(TEXT_COLUMNS)} or pairs like "
        f"question+answer); name the text column, one of: {found}",
        field="text_column",
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
        raise DeloraVizError(
            "the label column holds lists (multi-label?); name a column with one class per row",
            field="label_column",
        )
    ints = [_as_int(v) for v in values]
    if all(i is not None for i in ints):
        uniq = sorted(set(ints))
        index = {v: i for i, v in enumerate(uniq)}
        return [index[v] for v in ints], [str(v) for v in uniq]
    if all(_is_float(v) for v in values):
        raise DeloraVizError(
            "the label column holds non-integer numbers (a regression target?); "
            "classification needs class labels (strings or integers)",
            field="label_column",
        )
    names = sorted({str(v).strip() for v in values})
    index = {n: i for i, n in enumerate(names)}
    return [index[str(v).strip()] for v in values], names


def text_and_raw_labels(columns, task, text_column=None, label_column=None, class_names=None):
    """Columns -> (texts, raw labels or Nones, the label column's class names); drops rows with empty cells."""
    if not any(len(v) for v in columns.values()):
        raise DeloraVizError(f"found 0 examples (empty data); need at least {MIN_EXAMPLES}", field="data")
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
    return texts, raw, class_names


def to_examples(columns, task, text_column=None, label_column=None, class_names=None):
    """Columns -> (texts, label ids or None, label names or None); drops rows with empty cells."""
    texts, raw, names = text_and_raw_labels(columns, task, text_column, label_column, class_names)
    if task == "causal_lm":
        return texts, None, None
    return (texts, *encode_labels(raw, names))
