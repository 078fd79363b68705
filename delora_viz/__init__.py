"""delora-viz: learn, see and measure DeLoRA.

The flat API. The core (the layer and its surgery, the geometry of an update, the tracker, the
history files, PEFT interop) loads eagerly and needs only torch and peft. TrackerCallback
(transformers) and the training runner (the `[app]` extra) load on first use.
"""

import importlib

from .core import *  # noqa: F403
from .core import __all__ as _core_all

__version__ = "0.2.0"

_LAZY = {
    "TrackerCallback": "core.callback",
    "TrainConfig": "training",
    "train": "training",
    "compare": "training",
    "lr_sweep": "training",
    "iter_train": "training",
    "iter_compare": "training",
    "iter_lr_sweep": "training",
}
__all__ = [*_core_all, *_LAZY]


def __getattr__(name):  # transformers and the runner import only when asked for
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'delora_viz' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
