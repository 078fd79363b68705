"""The hooks people import: `pip install delora-viz` (torch, peft, pandas). Nothing here imports
gradio, matplotlib, datasets or the embedded model/data packages; `callback` imports transformers."""

from .adapters import AdapterView, find_adapters
from .geometry import (
    DoraUpdate,
    LowRankUpdate,
    delora_bound,
    delora_bound_loose,
    delora_update,
    dora_update_stats,
    lora_update,
    singular_values,
    update_geometry,
)
from .history import COLUMNS, load_history
from .layer import DeLoRALinear, add_delora, delora_layers, delora_parameters, merge_delora, remove_delora
from .peft_io import load_peft_delora, save_peft_delora, save_peft_lora
from .track import Tracker

__all__ = [
    "COLUMNS",
    "AdapterView",
    "DeLoRALinear",
    "DoraUpdate",
    "LowRankUpdate",
    "Tracker",
    "add_delora",
    "delora_bound",
    "delora_bound_loose",
    "delora_layers",
    "delora_parameters",
    "delora_update",
    "dora_update_stats",
    "find_adapters",
    "load_history",
    "load_peft_delora",
    "lora_update",
    "merge_delora",
    "remove_delora",
    "save_peft_delora",
    "save_peft_lora",
    "singular_values",
    "update_geometry",
]
