"""The tutorials: pairs in sync, outputs current and stamped, every figure drawn, the shape of a lesson, and
each notebook runs top to bottom in fast mode, offline.

Each tutorial is a jupytext pair: NN_name.py (percent format, the source, no outputs) and NN_name.ipynb (the
outputs of a full-mode run, made and stamped by `python notebooks/execute.py`). The stamp holds the sha256 of
the code cells it ran; when a .py's code changes, its outputs are stale and the tests here say to run the
script again. Prose edits need no run: `jupytext --sync notebooks/NN_name.py` keeps outputs and stamp.
"""

import importlib.util
import re
import time
import warnings
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
jupytext = pytest.importorskip("jupytext")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
SCRIPTS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
NOTEBOOKS = [p.with_suffix(".ipynb") for p in SCRIPTS]
FAST_BUDGET_S = 60  # fast mode on an idle 2-core CPU; over it: a warning (timings drift 2-4x on shared machines)
RUN = "python notebooks/execute.py"


def _load_execute():
    spec = importlib.util.spec_from_file_location("notebooks_execute", NOTEBOOK_DIR / "execute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


execute = _load_execute()  # the script's own hash and stamp: one definition for the script and the tests


def _cells(nb) -> list[tuple[str, str, list]]:
    return [(cell.cell_type, cell.source.strip(), list(cell.metadata.get("tags", []))) for cell in nb.cells]


def _images(cell) -> list:
    return [
        out
        for out in cell.get("outputs", [])
        if out.output_type in ("display_data", "execute_result") and "image/png" in out.get("data", {})
    ]


def _figure_cells(nb) -> list:
    return [cell for cell in nb.cells if cell.cell_type == "code" and "figure" in cell.metadata.get("tags", [])]


def _has_outputs(nb) -> bool:
    return any(cell.get("outputs") or cell.get("execution_count") for cell in nb.cells if cell.cell_type == "code")


def _ids(paths):
    return [p.stem for p in paths]


def test_every_notebook_is_a_pair():
    assert SCRIPTS, "no notebooks found"
    assert sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")) == _ids(SCRIPTS)
    config = (NOTEBOOK_DIR / "jupytext.toml").read_text()
    assert 'formats = "ipynb,py:percent"' in config
    assert re.search(r'cell_metadata_filter = "tags,', config), "jupytext must keep cell tags (figure cells)"


def test_jupytext_keeps_cell_tags(tmp_path):
    """A `# %% tags=["figure"]` cell keeps its tag from .py to .ipynb and back, under notebooks/jupytext.toml."""
    (tmp_path / "jupytext.toml").write_text((NOTEBOOK_DIR / "jupytext.toml").read_text())
    script = tmp_path / "00_t.py"
    script.write_text('# %% [markdown]\n# Title\n\n# %% tags=["figure"]\nx = 1\n')
    from jupytext.cli import jupytext as jupytext_cli

    jupytext_cli(["--sync", str(script)])
    nb = nbformat.read(tmp_path / "00_t.ipynb", as_version=4)
    assert nb.cells[1].metadata.get("tags") == ["figure"]
    script.unlink()
    jupytext_cli(["--sync", str(tmp_path / "00_t.ipynb")])
    assert '# %% tags=["figure"]' in script.read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_pair_in_sync(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    script = jupytext.read(path.with_suffix(".py"))
    assert _cells(nb) == _cells(script), (
        f"{path.name} and its .py differ (cells, sources or tags): run jupytext --sync {path.with_suffix('.py')}"
    )
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_code_hash_sees_code_not_prose():
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("prose"),
            nbformat.v4.new_code_cell("x = 1\n"),
            nbformat.v4.new_code_cell("y"),
        ]
    )
    before = execute.code_hash(nb)
    nb.cells[0].source = "other prose"
    nb.cells[1].metadata["tags"] = ["figure"]
    nb.cells[1].source = "x = 1"  # trailing whitespace is not code
    assert execute.code_hash(nb) == before
    nb.cells[2].source = "y + 1"
    assert execute.code_hash(nb) != before
    nb.cells[2].source = "y"
    nb.cells[1].source, nb.cells[2].source = "x = 1\ny", ""  # the same lines in other cells: other outputs
    assert execute.code_hash(nb) != before


def _stamp_problems(path: Path) -> list[str]:
    """What is wrong with the outputs a committed .ipynb carries (nothing when it has none and no stamp)."""
    import delora_viz

    nb = nbformat.read(path, as_version=4)
    stamp = execute.stamp_of(nb)
    if stamp is None:
        return [f"{path.name} has outputs but no execution stamp: run {RUN} {path.stem}"] if _has_outputs(nb) else []
    source = jupytext.read(path.with_suffix(".py"))
    problems = []
    if stamp.get("mode") != "full":
        problems.append(f"{path.name} holds a {stamp.get('mode')}-mode run: run {RUN} {path.stem} (full mode)")
    if stamp.get("code_hash") != execute.code_hash(source):
        problems.append(
            f"{path.with_suffix('.py').name}'s code changed after its outputs were made: run {RUN} {path.stem}"
        )
    if stamp.get("delora_viz_version") != delora_viz.__version__:
        problems.append(
            f"{path.name} was run with delora_viz {stamp.get('delora_viz_version')}, this is {delora_viz.__version__}:"
            f" run {RUN} {path.stem}"
        )
    code = [cell for cell in nb.cells if cell.cell_type == "code" and cell.source.strip()]
    not_run = [i for i, cell in enumerate(code) if cell.get("execution_count") is None]
    if not_run:
        problems.append(f"{path.name}: code cells {not_run} carry no execution count: run {RUN} {path.stem}")
    errors = [out.get("ename") for cell in code for out in cell.outputs if out.output_type == "error"]
    if errors:
        problems.append(f"{path.name} stores errors {errors}")
    blank = [cell.source.splitlines()[0] for cell in _figure_cells(nb) if not _images(cell)]
    if blank:
        problems.append(f"{path.name}: figure cells without an image/png output: {blank}")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_outputs_are_current_and_stamped(path):
    """Outputs, when a notebook has any, come from a full-mode run of exactly this code and package version."""
    problems = _stamp_problems(path)
    assert not problems, "\n".join(problems)


def test_stamp_check_catches_stale_and_fast_runs(tmp_path):
    """The check above fails on a notebook whose code changed, on a fast-mode stamp, and on unstamped outputs."""
    import delora_viz

    script = tmp_path / "00_t.py"
    script.write_text('# %% [markdown]\n# Title\n\n# %% tags=["figure"]\nx = 1\n')
    nb = jupytext.read(script)
    png = {"image/png": "iVBORw0KGgo="}
    nb.cells[1].outputs = [nbformat.v4.new_output("display_data", data=png)]
    nb.cells[1].execution_count = 1
    ipynb = script.with_suffix(".ipynb")
    nbformat.write(nb, ipynb)
    assert any("no execution stamp" in p for p in _stamp_problems(ipynb))
    stamp = {"code_hash": execute.code_hash(nb), "delora_viz_version": delora_viz.__version__, "mode": "full"}
    nb.metadata[execute.STAMP_KEY] = {"execution": stamp}
    stamp = execute.stamp_of(nb)  # the notebook's own copy
    nbformat.write(nb, ipynb)
    assert _stamp_problems(ipynb) == []
    script.write_text('# %% [markdown]\n# Title\n\n# %% tags=["figure"]\nx = 2\n')
    assert any("code changed" in p and RUN in p for p in _stamp_problems(ipynb))
    script.write_text('# %% [markdown]\n# Title\n\n# %% tags=["figure"]\nx = 1\n')
    stamp["mode"] = "fast"
    nbformat.write(nb, ipynb)
    assert any("fast-mode run" in p for p in _stamp_problems(ipynb))
    stamp["mode"] = "full"
    nb.cells[1].outputs = []
    nbformat.write(nb, ipynb)
    assert any("without an image" in p for p in _stamp_problems(ipynb))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_every_notebook_is_executed(path):
    """The committed .ipynb carries a stamped full-mode run (`python notebooks/execute.py` makes it)."""
    nb = nbformat.read(path, as_version=4)
    assert execute.stamp_of(nb) is not None, f"{path.name} carries no outputs: run {RUN} {path.stem}"


# ----------------------------------------------------------------------------------------------------------
# the shape of a lesson (TEAM conventions, issue 21)

REQUIRED = {
    "What you will learn": r"What you will learn",
    "a time line (Time: ~N min to read, ~M to run)": r"Time\b\W*~?\s*\d+\s*min",
    "Takeaways": r"Takeaways",
    "Where next": r"Where next",
    "References": r"References",
    "the paper (arXiv 2503.18225)": r"2503\.18225",
    "an exercise with a hidden answer (<details>)": r"<details>",
}


def _text_lines(source: str) -> int:
    return sum(1 for line in source.splitlines() if line.strip())


@pytest.mark.parametrize("path", SCRIPTS, ids=_ids(SCRIPTS))
def test_notebook_has_the_shape_of_a_lesson(path):
    nb = jupytext.read(path)
    prose = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")
    code = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    missing = [name for name, pattern in REQUIRED.items() if not re.search(pattern, prose)]
    assert not missing, f"{path.name}'s markdown lacks: {missing}"
    assert _figure_cells(nb), f'{path.name} has no figure cell (`# %% tags=["figure"]`)'
    assert "display(Markdown" not in code, f"{path.name}: conclusions are markdown the reader sees, not code"
    prose_lines, code_lines = _text_lines(prose), _text_lines(code)
    assert prose_lines >= code_lines, f"{path.name}: {prose_lines} lines of prose against {code_lines} of code"


# ----------------------------------------------------------------------------------------------------------
# every notebook runs (fast mode), through the same script that makes the committed outputs


@pytest.mark.slow
@pytest.mark.parametrize("path", SCRIPTS, ids=_ids(SCRIPTS))
def test_notebook_runs_and_draws(path, tmp_path):
    out = tmp_path / f"{path.stem}.ipynb"
    start = time.perf_counter()
    # raises CellExecutionError, naming the cell, if any cell fails (every claim is an assert)
    execute.execute(path, out, fast=True, version="test")
    seconds = time.perf_counter() - start
    nb = nbformat.read(out, as_version=4)
    assert execute.stamp_of(nb)["mode"] == "fast"
    assert any(_images(cell) for cell in nb.cells if cell.cell_type == "code"), f"{path.name} drew no figure"
    blank = [cell.source.splitlines()[0] for cell in _figure_cells(nb) if not _images(cell)]
    assert not blank, f"{path.name}: figure cells without an image/png output: {blank}"
    if seconds > FAST_BUDGET_S:  # not a failure: load makes this 2-4x slower; the warning shows in the summary
        warnings.warn(
            f"{path.name} took {seconds:.0f} s in fast mode (budget {FAST_BUDGET_S} s on an idle machine)", stacklevel=1
        )
