"""Every image the READMEs show exists in the repository (docs/make_figures.py writes them)."""

import re
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


def test_the_readme_shows_the_update_norm_vs_bound_figure():
    assert "docs/update_norm_vs_bound.png" in images((ROOT / "README.md").read_text())
