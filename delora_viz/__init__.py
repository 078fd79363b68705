"""delora-viz: learn, see and measure DeLoRA.

The flat API. The method (`delora_viz.delora`: the layer and its surgery, the geometry of an update, PEFT
interop) and the instruments (`delora_viz.instruments`: the Tracker, history files, inspect) load eagerly
and need only torch and peft. TrackerCallback (transformers) and the training runner (the `[app]` extra)
load on first use.
"""

import importlib

from .delora import *  # noqa: F403
from .delora import __all__ as _delora_all
from .errors import DeloraVizError
from .instruments import *  # noqa: F403
from .instruments import __all__ as _instruments_all

__version__ = "0.3.0"

_LAZY = {
    "TrackerCallback": "instruments.callback",
    "TrainConfig": "training",
    "train": "training",
    "compare": "training",
    "lr_sweep": "training",
    "iter_train": "training",
    "iter_compare": "training",
    "iter_lr_sweep": "training",
}
__all__ = ["DeloraVizError", *_delora_all, *_instruments_all, *_LAZY]


def __getattr__(name):  # transformers and the runner import only when asked for
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'delora_viz' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
