"""The README and the site: every image they show exists, and the Sphinx site builds strictly (-W), offline,
with every tutorial page rendering the figures its notebook stores."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
READMES = [ROOT / "README.md", ROOT / "notebooks" / "README.md"]
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)[^)]*\)|<img[^>]*\bsrc=[\"']([^\"']+)[\"']")


def images(markdown: str) -> list[str]:
    """Local image paths of a Markdown text (![alt](path) and <img src="path">), web addresses left out."""
    found = [a or b for a, b in IMAGE.findall(markdown)]
    return [p for p in found if not re.match(r"[a-z]+://", p)]


def test_images_finds_markdown_and_html_images():
    text = '![a](docs/x.png) and ![b](https://example.org/y.png "t") <img src="docs/z.png" width=3>'
    assert images(text) == ["docs/x.png", "docs/z.png"]


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_image_a_readme_shows_exists(readme):
    paths = images(readme.read_text())
    missing = [p for p in paths if not (readme.parent / p).is_file()]
    assert not missing, f"{readme.name} shows images that do not exist: {missing} (run python docs/make_figures.py)"


def test_the_readme_shows_two_images():
    assert len(images((ROOT / "README.md").read_text())) >= 2


def _stored_images(notebook: Path) -> int:
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    return sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    )


@pytest.mark.slow
def test_site_builds_strictly_and_shows_the_notebooks_outputs(tmp_path):
    pytest.importorskip("myst_nb")
    out = tmp_path / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "docs", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    for page in ["index", "install", "tutorials/index", "app", "guide", "cli", "api", "many_gpus", "benchmarks"]:
        assert (out / f"{page}.html").is_file(), page
    for page in ["changelog", "cite", "development"]:
        assert (out / f"{page}.html").is_file(), page
    assert "automodule" not in (out / "api.html").read_text()  # autodoc ran
    assert (
        'class="py function"' in (out / "api.html").read_text() or 'class="py class"' in (out / "api.html").read_text()
    )
    for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        html = (out / "tutorials" / f"{notebook.stem}.html").read_text()
        shown = len(re.findall(r"<img[^>]+src=\"[^\"]*_images/", html))
        assert shown >= _stored_images(notebook), f"{notebook.stem}: the page shows {shown} of its stored figures"
