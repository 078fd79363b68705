"""The method, readable alone with the paper (arXiv 2503.18225, Eq. 5-9) beside it. Read in this order:

1. `geometry.py`: the update written once (dW = (lambda/r) B Xi A diag(w) as thin factors), its bounds, its
   norm and its singular values in closed form;
2. `layer.py`: DeLoRALinear (both inits), which calls it, and the surgery that puts it into a model;
3. `peft_io.py`: PEFT adapter folders, in and out.

Needs only torch, peft and safetensors."""

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
