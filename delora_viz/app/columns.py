"""Column pickers for uploaded data: which column holds the text and which the label.

The readers guess common names (text, sentence, label, topic, ...); when they cannot, the user picks the
columns in the UI and the app writes the upload again as a jsonl with `text` and `label` columns, which
every reader understands, in the session's own folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..training.readers import FILE_SUFFIXES, read_file


def file_columns(path) -> list[str]:
    """Column names of an uploaded csv / json / jsonl ([] for .txt, or a file that cannot be read)."""
    if not path or Path(str(path)).suffix.lower() not in FILE_SUFFIXES or str(path).lower().endswith(".txt"):
        return []
    try:
        return list(read_file(path, "classification"))
    except Exception:  # noqa: BLE001 - the real error is shown when Train reads the file
        return []


def check_upload(path) -> None:
    """An upload that does not parse: ValueError in the UI's words, naming the file by its own name (never the
    server's upload folder) and without the parser's jargon. Text files need no parsing."""
    name, kind = Path(str(path)).name, Path(str(path)).suffix.lower().lstrip(".")
    if kind == "txt":
        return
    try:
        read_file(path, "classification")
    except Exception:  # noqa: BLE001 - whatever the parser says, the fix is the user's file
        hint = (
            "a header row, then the same number of comma-separated fields on every row"
            if kind == "csv"
            else ("one JSON object per line" if kind == "jsonl" else "a list of objects, or an object of columns")
        )
        raise ValueError(
            f"the uploaded file '{name}' could not be read as {kind} (expected {hint}, in UTF-8): fix it or upload "
            "another"
        ) from None


def with_columns(path: str, text_column: str | None, label_column: str | None, directory: Path) -> str:
    """`path` rewritten as jsonl with the chosen columns named `text` / `label` (unchanged if none chosen)."""
    text_column, label_column = (text_column or "").strip() or None, (label_column or "").strip() or None
    if not (text_column or label_column) or str(path).lower().endswith(".txt"):
        return path
    columns = read_file(path, "classification")
    for kind, name in (("text", text_column), ("label", label_column)):
        if name is not None and name not in columns:
            raise ValueError(
                f"there is no column '{name}' for the {kind}; the file's columns are: {', '.join(columns)}"
            )
    renamed = {c: v for c, v in columns.items() if c not in ("text", "label")}
    if text_column:
        renamed["text"] = columns[text_column]
    if label_column:
        renamed["label"] = columns[label_column]
    target = Path(directory) / (Path(path).stem + ".columns.jsonl")
    rows = [dict(zip(renamed, values)) for values in zip(*renamed.values())]
    target.write_text("".join(json.dumps(row, default=str) + "\n" for row in rows), encoding="utf-8")
    return str(target)
