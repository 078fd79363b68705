"""One view over every adapted linear layer the tracker understands.

For each layer a view gives the frozen weight W (out x in) and the update in a form geometry.py can
measure without materialising it: low-rank factors (LoRA, rsLoRA, DeLoRA) or the per-row DoRA form.

    PEFT LoraLayer (nn.Linear base)    -> "lora" | "rslora" | "dora"   (each active adapter)
    PEFT DeloraLayer                   -> "delora"                      (lambda_pattern, rank_pattern)
    our DeLoRALinear                   -> "delora" | "delora-paper"

Anything else that looks like an adapter (any PEFT tuner layer), and any adapter on a quantized base
(bitsandbytes 8/4-bit: W holds integer codes), is skipped with one warning naming it. Views hand out the
raw parameters (`params()`), so the tracker casts them before it builds anything from them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..delora.geometry import DoraUpdate, LowRankUpdate
from ..delora.layer import DeLoRALinear
from ..names import FAMILY
from .measure import RawParams


@dataclass
class AdapterView:
    """How to read one adapted layer. Callables, so every call reads the current parameters."""

    name: str  # module path, with ":adapter" appended when several adapters are active
    method: str  # one of names.TRACKED
    rank: int
    weight: Callable[[], Tensor]  # frozen W (out, in), as stored (any dtype)
    params: Callable[[], RawParams]  # the raw parameters, as stored: cast them before building anything

    def update(self, dtype: torch.dtype | None = None) -> LowRankUpdate | DoraUpdate:
        """dW's factors (or DoRA's form), built after casting the parameters to dtype (default: as stored)."""
        raw = self.params()
        return (raw.cast(dtype) if dtype is not None else raw).update()


def adapter_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(clean name, module) of every adapter layer in the model, tracked or not."""
    return [
        (_unwrapped_name(name), module)
        for name, module in model.named_modules()
        if isinstance(module, DeLoRALinear) or _is_peft_tuner_layer(module)
    ]


def adapter_state(modules: list[tuple[str, nn.Module]]) -> tuple:
    """What decides which views exist: each PEFT layer's active adapters and merged flag (set_adapter, merge)."""
    return tuple(
        (tuple(getattr(m, "active_adapters", ())), bool(getattr(m, "merged", False)))
        for _, m in modules
        if not isinstance(m, DeLoRALinear)
    )


def find_adapters(model: nn.Module, modules: list[tuple[str, nn.Module]] | None = None) -> list[AdapterView]:
    """Every adapted linear layer of `model` (wrappers such as DDP or PeftModel are fine)."""
    views, skipped = [], {}
    for name, module in adapter_modules(model) if modules is None else modules:
        base = module.base_layer if isinstance(module, DeLoRALinear) else _base_of(module)
        if base is not None and _is_quantized(base):
            skipped.setdefault(f"{type(module).__name__} on a quantized {type(base).__name__}", name)
        elif isinstance(module, DeLoRALinear):
            views.append(_ours(name, module))
        elif _is_peft_delora(module):
            views.extend(_peft_delora(name, module, skipped))
        elif _is_peft_lora(module):
            views.extend(_peft_lora(name, module, skipped))
        else:
            skipped.setdefault(type(module).__name__, name)
    if skipped:
        listed = ", ".join(f"{kind} (e.g. '{name}')" for kind, name in skipped.items())
        warnings.warn(f"delora-viz does not track these adapter layers and skips them: {listed}", stacklevel=2)
    return views


def _base_of(module) -> nn.Module | None:
    get = getattr(module, "get_base_layer", None)
    return get() if callable(get) else None


def _is_quantized(base: nn.Module) -> bool:
    """bitsandbytes Linear8bitLt / Linear4bit (or any layer whose weight holds integer codes): W is not
    readable as numbers without dequantising, so measuring it would be silently wrong."""
    weight = getattr(base, "weight", None)
    quantized = type(base).__name__ in ("Linear8bitLt", "Linear4bit", "Params4bit", "Int8Params")
    return quantized or (isinstance(weight, Tensor) and not weight.is_floating_point())


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

    def params():
        paper = layer.init == "paper"
        return RawParams(
            FAMILY[layer.method],
            layer.delora_A,
            layer.delora_B,
            delora_lambda=layer.delora_lambda,
            w_norm=layer.delora_w_norm,
            A0=layer.delora_A0 if paper else None,
            B0=layer.delora_B0 if paper else None,
        )

    method = layer.method
    return AdapterView(name=name, method=method, rank=layer.r, weight=weight, params=params)


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

        def params(adapter=adapter):
            return RawParams(
                FAMILY["delora"],
                module.delora_A[adapter],
                module.delora_B[adapter],
                delora_lambda=module.delora_lambda[adapter],
                w_norm=module.delora_w_norm[adapter],
            )

        name_ = _label(name, adapter, adapters)
        views.append(AdapterView(name_, "delora", module.r[adapter], lambda: base.weight, params))
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
        dora = module.use_dora.get(adapter, False)
        method = "dora" if dora else "rslora" if module.use_rslora.get(adapter, False) else "lora"

        def params(adapter=adapter, dora=dora, family=FAMILY[method]):
            return RawParams(
                family,
                module.lora_A[adapter].weight,  # (r, in)
                module.lora_B[adapter].weight,  # (out, r)
                scaling=module.scaling[adapter],
                magnitude=module.lora_magnitude_vector[adapter].weight if dora else None,  # (out,)
            )

        views.append(AdapterView(_label(name, adapter, adapters), method, module.r[adapter], weight, params))
    return views


def _unwrapped_name(name: str) -> str:
    """Drop wrapper prefixes (DDP's "module.", PeftModel's "base_model.model.") from layer names."""
    for prefix in ("module.", "base_model.model.", "_orig_mod."):
        while name.startswith(prefix):
            name = name[len(prefix) :]
    return name
