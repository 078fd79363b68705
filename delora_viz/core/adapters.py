"""One view over every adapted linear layer the tracker understands.

For each layer a view gives the frozen weight W (out x in) and the update in a form geometry.py can
measure without materialising it: low-rank factors (LoRA, rsLoRA, DeLoRA) or the per-row DoRA form.

    PEFT LoraLayer (nn.Linear base)    -> "lora" | "rslora" | "dora"   (each active adapter)
    PEFT DeloraLayer                   -> "delora"                      (lambda_pattern, rank_pattern)
    our DeLoRALinear                   -> "delora" | "delora-paper"

Anything else that looks like an adapter (any PEFT tuner layer) is skipped with one warning naming it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .geometry import DoraUpdate, LowRankUpdate, delora_bound, delora_bound_loose, delora_update, lora_update
from .layer import DeLoRALinear

METHODS = ("lora", "rslora", "dora", "delora", "delora-paper")


@dataclass
class AdapterView:
    """How to read one adapted layer. Callables, so every call reads the current parameters."""

    name: str  # module path, with ":adapter" appended when several adapters are active
    method: str  # one of METHODS
    rank: int
    weight: Callable[[], Tensor]  # frozen W (out, in), as stored (any dtype)
    update: Callable[[], LowRankUpdate | DoraUpdate]  # in the parameters' dtype
    delora_lambda: Callable[[], Tensor] | None = None  # (1,) for DeLoRA, else None
    bound: Callable[[], Tensor] | None = None  # tight DeLoRA bound on ||dW||_F
    bound_loose: Callable[[], Tensor] | None = None  # |lambda| max_j ||W[:, j]|| (x2 paper init)


def find_adapters(model: nn.Module) -> list[AdapterView]:
    """Every adapted linear layer of `model` (wrappers such as DDP or PeftModel are fine)."""
    views, skipped = [], {}
    for name, module in model.named_modules():
        name = _clean(name)
        if isinstance(module, DeLoRALinear):
            views.append(_ours(name, module))
        elif _is_peft_delora(module):
            views.extend(_peft_delora(name, module, skipped))
        elif _is_peft_lora(module):
            views.extend(_peft_lora(name, module, skipped))
        elif _is_peft_tuner_layer(module):
            skipped.setdefault(type(module).__name__, name)
    if skipped:
        listed = ", ".join(f"{kind} (e.g. '{name}')" for kind, name in skipped.items())
        warnings.warn(f"delora-viz does not track these adapter layers and skips them: {listed}", stacklevel=2)
    return views


def no_adapters_message(model: nn.Module) -> str:
    return (
        f"{type(model).__name__} has no adapted layers to track. Add adapters first, e.g. "
        "peft.get_peft_model(model, DeloraConfig(r=8, delora_lambda=15, target_modules=['q_proj', 'v_proj'])) "
        "or delora_viz.add_delora(model, ['q_proj', 'v_proj'], r=8, delora_lambda=15)"
    )


# ----------------------------------------------------------------------------- our layer
def _ours(name: str, layer: DeLoRALinear) -> AdapterView:
    def weight():
        W = layer.base_layer.weight
        return W - layer.delta_weight().to(W.dtype) if layer.merged else W  # merged: recover the frozen W

    return AdapterView(
        name=name,
        method="delora-paper" if layer.init == "paper" else "delora",
        rank=layer.r,
        weight=weight,
        update=layer.update,
        delora_lambda=lambda: layer.delora_lambda,
        bound=layer.bound,
        bound_loose=layer.bound_loose,
    )


# ----------------------------------------------------------------------------- PEFT
def _is_peft_tuner_layer(module) -> bool:
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(module, BaseTunerLayer)


def _is_peft_delora(module) -> bool:
    try:
        from peft.tuners.delora.layer import DeloraLayer
    except ImportError:  # older PEFT without DeLoRA
        return False
    return isinstance(module, DeloraLayer)


def _is_peft_lora(module) -> bool:
    from peft.tuners.lora.layer import LoraLayer

    return isinstance(module, LoraLayer)


def _active(module, store) -> list[str]:
    return [a for a in module.active_adapters if a in store]


def _label(name: str, adapter: str, adapters: list[str]) -> str:
    return name if len(adapters) == 1 else f"{name}:{adapter}"


def _peft_delora(name: str, module, skipped: dict) -> list[AdapterView]:
    base = module.get_base_layer()
    if module.merged:
        skipped.setdefault("merged DeloraLinear (call unmerge_adapter() to track it)", name)
        return []
    views = []
    adapters = _active(module, module.delora_A)
    for adapter in adapters:

        def parts(adapter=adapter):
            return (
                module.delora_A[adapter],
                module.delora_B[adapter],
                module.delora_lambda[adapter],
                module.delora_w_norm[adapter],
            )

        views.append(
            AdapterView(
                name=_label(name, adapter, adapters),
                method="delora",
                rank=module.r[adapter],
                weight=lambda: base.weight,
                update=lambda parts=parts: delora_update(*parts()),
                delora_lambda=lambda parts=parts: parts()[2],
                bound=lambda parts=parts: delora_bound(parts()[0], parts()[2], parts()[3]),
                bound_loose=lambda parts=parts: delora_bound_loose(parts()[2], parts()[3]),
            )
        )
    return views


def _peft_lora(name: str, module, skipped: dict) -> list[AdapterView]:
    base = module.get_base_layer()
    if not isinstance(base, nn.Linear) and type(base).__name__ != "Conv1D":
        skipped.setdefault(f"LoRA on {type(base).__name__}", name)
        return []
    if module.merged:
        skipped.setdefault("merged LoRA/DoRA layers (call unmerge_adapter() to track them)", name)
        return []
    fan_in_fan_out = getattr(module, "fan_in_fan_out", False)  # GPT-2's Conv1D stores W as (in, out)

    def weight():
        return base.weight.T if fan_in_fan_out else base.weight

    views = []
    adapters = _active(module, module.lora_A)
    for adapter in adapters:
        A = lambda adapter=adapter: module.lora_A[adapter].weight  # (r, in)
        B = lambda adapter=adapter: module.lora_B[adapter].weight  # (out, r)
        scaling = lambda adapter=adapter: module.scaling[adapter]
        if module.use_dora.get(adapter, False):
            magnitude = lambda adapter=adapter: module.lora_magnitude_vector[adapter].weight  # (out,)
            method = "dora"
            update = lambda A=A, B=B, s=scaling, g=magnitude: DoraUpdate(A(), B(), s(), g())
        else:
            method = "rslora" if module.use_rslora.get(adapter, False) else "lora"
            update = lambda A=A, B=B, s=scaling: lora_update(A(), B(), s())
        views.append(AdapterView(_label(name, adapter, adapters), method, module.r[adapter], weight, update))
    return views


def _clean(name: str) -> str:
    """Drop wrapper prefixes (DDP's "module.", PeftModel's "base_model.model.") from layer names."""
    for prefix in ("module.", "base_model.model.", "_orig_mod."):
        while name.startswith(prefix):
            name = name[len(prefix) :]
    return name


def parameters_are_sharded(model: nn.Module) -> bool:
    """FSDP flat/DTensor parameters or DeepSpeed ZeRO-3 partitions: W is not fully on this process."""
    for p in model.parameters():
        if hasattr(p, "ds_id") or type(p).__name__ in ("FlatParameter", "DTensor"):
            return True
        if isinstance(p, torch.Tensor) and hasattr(p, "_local_tensor"):
            return True
    return any(type(m).__name__ == "FullyShardedDataParallel" for m in model.modules())
