"""delora-viz: learn, see and measure DeLoRA.

The flat API: the layer and its surgery, the geometry of an update, the tracker and its callback,
and the training runner the app, the notebooks and the CLI share. Heavy modules load on first use.
"""
from .geometry import LowRankUpdate, delora_bound, delora_update, dora_update_stats, singular_values, update_geometry
from .layer import DeLoRALinear, add_delora, delora_layers, delora_parameters, merge_delora, remove_delora
from .peft_io import load_peft_delora, save_peft_delora, save_peft_lora
from .track import Tracker, load_history

__version__ = "0.1.0"

_LAZY = {
    "TrackerCallback": "hf",
    "find_adapters": "adapters",
}


def __getattr__(name):  # transformers and friends import only when asked for
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'delora_viz' has no attribute {name!r}")
