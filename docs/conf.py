"""Sphinx configuration of the delora-viz site.

    sphinx-build -W -b html docs docs/_build/html      # offline; nothing is executed

The tutorials are the committed notebooks/NN_name.ipynb files with the outputs of their last full-mode run
(`python notebooks/execute.py` makes them); myst-nb renders those stored outputs and executes nothing.
So that git holds each notebook once, they are copied into docs/tutorials/ when the build starts (that
folder's copies are ignored by git). The CLI's help and the module map are generated here as well, from
the code itself, so they cannot drift from it, and CHANGELOG.md is taken in.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import pkgutil
import re
import sys
from contextlib import redirect_stdout
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # this checkout's delora_viz, whatever is pip-installed
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import delora_viz  # noqa: E402

project = "delora-viz"
author = "the delora-viz authors"
copyright = "2026, the delora-viz authors"  # noqa: A001 (Sphinx's name)
release = version = delora_viz.__version__

extensions = [
    "myst_nb",  # Markdown pages and notebooks (brings myst_parser)
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
    "sphinx_copybutton",
]
exclude_patterns = ["_build", "_generated", "scripts", "**.ipynb_checkpoints", "tutorials/runs"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist", "html_image"]
myst_heading_anchors = 3

# notebooks: render the stored outputs of the committed full-mode run, never execute at build time
nb_execution_mode = "off"
nb_merge_streams = True
# an ipywidgets slider needs a live kernel; the image drawn at its default values is shown instead
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
autodoc_mock_imports: list[str] = []

html_theme = "furo"
html_title = f"delora-viz {release}"
html_static_path: list[str] = []
copybutton_prompt_text = r"\$ |>>> "
copybutton_prompt_is_regexp = True


# ------------------------------------------------------------------------------------------------------
# generated at build time: the tutorials (copied), the CLI's help, the module map


def run_note(nb) -> str:
    """What the reader should know about the outputs on a tutorial page: which run made them, or none did."""
    stamp = nb.metadata.get("delora_viz", {}).get("execution")
    if not stamp:
        return "This notebook has not been executed yet: the page shows its code without outputs."
    when = f"{stamp.get('date', '?')[:10]} with delora-viz {stamp.get('delora_viz_version', '?')}"
    took = f"{stamp.get('seconds', 0) / 60:.1f} min on {stamp.get('machine', 'an unnamed machine')}"
    if stamp.get("mode") != "full":
        return f"These outputs come from a **fast-mode** run ({when}): its numbers are only a smoke test."
    return f"The outputs below come from a full run of the notebook on {when} ({took})."


def copy_tutorials() -> list[Path]:
    """notebooks/NN_name.ipynb -> docs/tutorials/NN_name.ipynb, with a note after the title saying which run
    made the outputs shown (from the stamp that notebooks/execute.py writes)."""
    import nbformat

    target = DOCS / "tutorials"
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    wanted = {p.name for p in notebooks}
    for stale in target.glob("[0-9][0-9]_*.ipynb"):  # a renamed notebook leaves no old page behind
        if stale.name not in wanted:
            stale.unlink()
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        source = f"notebooks/{path.with_suffix('.py').name}"
        note = f":::{{note}}\n{run_note(nb)} Source: `{source}`; to run it yourself: `jupyter lab notebooks/`.\n:::"
        nb.cells.insert(
            1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0, nbformat.v4.new_markdown_cell(note)
        )
        for cell in nb.cells:
            cell.pop("id", None)  # the inserted cell needs none; ids mean nothing on a page
        nb.nbformat_minor = min(nb.nbformat_minor, 4)
        write_if_changed(target / path.name, nbformat.writes(nb))
    return notebooks


def write_if_changed(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def cli_help() -> str:
    """Every `delora-viz` subcommand's --help, as argparse prints it, one section each."""
    from delora_viz.cli import build_parser

    os.environ["COLUMNS"] = "100"
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = ["```text", parser.format_help().rstrip(), "```", ""]
    for name, subparser in sub.choices.items():
        buf = io.StringIO()
        with redirect_stdout(buf):
            subparser.print_help()
        parts += [f"### `delora-viz {name}`", "", "```text", buf.getvalue().rstrip(), "```", ""]
    return "\n".join(parts)


def module_map() -> str:
    """A table of every module of the package and the first line of its docstring."""
    rows = ["| module | what it holds |", "|---|---|"]
    names = ["delora_viz"] + [
        m.name for m in pkgutil.walk_packages(delora_viz.__path__, "delora_viz.") if not m.name.endswith("__main__")
    ]
    for name in sorted(names):
        try:
            module = importlib.import_module(name)
        except Exception as err:  # a module whose optional extra is missing still gets its row
            first = f"(not importable here: {type(err).__name__})"
        else:
            doc = (module.__doc__ or "").strip()
            first = doc.split("\n\n")[0].replace("\n", " ").replace("|", "\\|") if doc else ""
        rows.append(f"| `{name}` | {first} |")
    return "\n".join(rows) + "\n"


def api_sections() -> str:
    """autodoc of the top-level names, `delora_viz.plots` and `delora_viz.training`; a name exported by both
    the top level and `delora_viz.training` (the runner) is documented once, under `delora_viz.training`."""
    import delora_viz.plots
    import delora_viz.training

    training = set(getattr(delora_viz.training, "__all__", ()))
    twice = sorted(training & set(delora_viz.__all__))
    parts = []
    for name, exclude in [("delora_viz", twice), ("delora_viz.plots", []), ("delora_viz.training", [])]:
        parts += [
            f"## `{name}`",
            "",
            "```{eval-rst}",
            f".. automodule:: {name}",
            "   :members:",
            "   :imported-members:",
        ]
        if exclude:
            parts.append(f"   :exclude-members: {', '.join(exclude)}")
        parts += ["```", ""]
        if exclude:
            parts += [
                f"Also importable from `delora_viz`, documented under `delora_viz.training`: `{'`, `'.join(twice)}`.",
                "",
            ]
    return "\n".join(parts)


# Docstrings here are written for a terminal (`help()`), with equations such as ||dW|| <= |lambda| max_j w_j
# that reStructuredText would read as markup. Each is shown as its summary line (inline code kept, the rest
# escaped) followed by the rest verbatim, so no docstring can break the strict (-W) build.
_RST_SPECIAL = re.compile(r"([\\*|_\[\]<>])")


def _escape(text: str) -> str:
    pieces = re.split(r"(`[^`]+`)", text)  # `code` becomes ``code``; everything else is escaped
    return "".join(f"`{p}`" if p.startswith("`") and p.endswith("`") else _RST_SPECIAL.sub(r"\\\1", p) for p in pieces)


def plain_docstring(app, what, name, obj, options, lines):
    text = "\n".join(lines).strip("\n")
    if not text:
        return
    summary, _, rest = text.partition("\n\n")
    new = [_escape(" ".join(summary.split())), ""]
    if rest.strip():
        new += (
            [".. code-block:: text", ""] + ["   " + line if line.strip() else "" for line in rest.splitlines()] + [""]
        )
    lines[:] = new


def setup(app):
    app.connect("autodoc-process-docstring", plain_docstring)


def changelog() -> str:
    """CHANGELOG.md without its own title (the page has one)."""
    path = ROOT / "CHANGELOG.md"
    if not path.exists():
        return "No `CHANGELOG.md` in this checkout yet.\n"
    lines = path.read_text().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join(lines).strip() + "\n"


GENERATED = DOCS / "_generated"
copy_tutorials()
write_if_changed(GENERATED / "cli_help.md", cli_help())
write_if_changed(GENERATED / "module_map.md", module_map())
write_if_changed(GENERATED / "api.md", api_sections())
write_if_changed(GENERATED / "changelog.md", changelog())
