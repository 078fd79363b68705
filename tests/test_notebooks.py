"""The tutorials: each notebook runs top to bottom in fast mode, offline, and draws at least one figure.

Each tutorial is a jupytext pair: NN_name.py (percent format, the source) and NN_name.ipynb (committed
without outputs); the two must hold the same cells (`jupytext --sync notebooks/*.py` after an edit).
"""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
jupytext = pytest.importorskip("jupytext")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT = 300  # seconds, per cell
ENV = {
    "DELORA_VIZ_FAST": "1",  # the notebooks shrink steps and sizes
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "MPLBACKEND": "Agg",
    "TOKENIZERS_PARALLELISM": "false",
}


def _cells(nb) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in nb.cells]


def test_every_notebook_is_a_pair():
    scripts = sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
    assert len(NOTEBOOKS) == 5 and [p.stem for p in NOTEBOOKS] == scripts
    assert not (NOTEBOOK_DIR / "_build.py").exists()  # the .py files are the source now
    assert 'formats = "ipynb,py:percent"' in (NOTEBOOK_DIR / "jupytext.toml").read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_pair_in_sync_and_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    script = jupytext.read(path.with_suffix(".py"))
    assert _cells(nb) == _cells(script), (
        f"{path.name} and its .py differ: run jupytext --sync {path.with_suffix('.py')}"
    )
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has outputs: clear them"
    assert nb.metadata["kernelspec"]["name"] == "python3"


def _images(nb) -> list:
    return [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type in ("display_data", "execute_result") and "image/png" in out.get("data", {})
    ]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_draws(path, tmp_path, monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    # the kernel imports delora_viz from this checkout even when it is not pip-installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=CELL_TIMEOUT, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails (every claim is an assert)
    assert _images(nb), f"{path.name} produced no figure (image/png output)"
