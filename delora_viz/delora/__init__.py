"""The method: DeLoRA's layer and its surgery (`layer.py`); the update written once, with its bounds, its
norm and its singular values in closed form (`geometry.py`); PEFT adapter folders (`peft_io.py`). Needs only
torch, peft and safetensors; read it with the paper (arXiv 2503.18225, Eq. 5-9) beside it."""

from .geometry import (
    DoraUpdate,
    LowRankUpdate,
    delora_bound,
    delora_bound_loose,
    delora_update,
    lora_update,
    singular_values,
)
from .layer import DeLoRALinear, add_delora, delora_layers, delora_parameters, merge_delora, remove_delora
from .peft_io import load_peft_delora, save_peft_delora, save_peft_lora

__all__ = [
    "DeLoRALinear",
    "DoraUpdate",
    "LowRankUpdate",
    "add_delora",
    "delora_bound",
    "delora_bound_loose",
    "delora_layers",
    "delora_parameters",
    "delora_update",
    "load_peft_delora",
    "lora_update",
    "merge_delora",
    "remove_delora",
    "save_peft_delora",
    "save_peft_lora",
    "singular_values",
]
