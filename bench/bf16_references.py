"""Float64 references for bench/gpu_check.py: the Tracker's columns computed densely from the same parameters.

PEFT layers: PEFT's own merge on a float64 copy of the model, dW = W' - W. Our DeLoRALinear: the paper's
Eq. 5-9 written out here (not the library's formula). Angles from arccos of float64 inner products (not the
tracker's atan2 expression).
"""

from __future__ import annotations

import copy
import math

import torch


def references(model) -> dict[str, dict]:
    """Per adapted layer, the tracker's columns computed densely in float64 from the same parameters."""
    refs = {}
    ours = {n: m for n, m in model.named_modules() if type(m).__name__ == "DeLoRALinear"}
    if ours:
        for name, layer in ours.items():
            refs[_clean(name)] = _with_ratio(_ours_reference(layer))
        return refs
    from peft.tuners.tuners_utils import BaseTunerLayer

    model64 = copy.deepcopy(model).to(torch.float64)  # PEFT's own merge on a float64 copy
    for name, module in model64.named_modules():
        if not isinstance(module, BaseTunerLayer):
            continue
        W = module.get_base_layer().weight.detach().clone()
        module.merge()
        dW = module.get_base_layer().weight.detach() - W
        ref = _dense(W, dW)
        if hasattr(module, "delora_lambda"):
            (adapter,) = module.active_adapters
            A, lam = module.delora_A[adapter], module.delora_lambda[adapter]
            ref.update(_delora_bounds(A, lam, module.delora_w_norm[adapter], None))
        if getattr(module, "use_dora", {}).get(module.active_adapters[0], False):
            mag = module.lora_magnitude_vector[module.active_adapters[0]].weight.detach()
            rows = W.norm(dim=1)
            ref["dora_mag_drift"] = ((mag - rows).norm() / rows.norm()).item()
            ref["sigma_max"] = math.nan  # DoRA's update is not low rank: the tracker reports no sigma_max
        refs[_clean(name)] = _with_ratio(ref)
    del model64
    return refs


def _ours_reference(layer) -> dict:
    """The paper's Eq. 5-9 written out: dW = (lambda/r) (B Xi A - B0 Xi0 A0) diag(w), Xi = diag(1/(|b_i||a_i|))."""
    d = torch.float64
    A, B, lam = layer.delora_A.detach().to(d), layer.delora_B.detach().to(d), layer.delora_lambda.detach().to(d)
    w, r = layer.delora_w_norm.detach().to(d), A.shape[0]

    def term(A, B):
        xi = 1.0 / (A.norm(dim=1).clamp(min=1e-4) * B.norm(dim=0).clamp(min=1e-4))  # (r,)
        return (lam / r) * (B * xi) @ A * w  # (m, n)

    paper = layer.init == "paper"
    A0 = layer.delora_A0.detach().to(d) if paper else None
    dW = term(A, B) - (term(A0, layer.delora_B0.detach().to(d)) if paper else 0)
    ref = _dense(layer.base_layer.weight.detach().to(d), dW)
    ref.update(_delora_bounds(A, lam, w, term(A0, layer.delora_B0.detach().to(d)) if paper else None))
    return ref


def _delora_bounds(A, lam, w, frozen_term) -> dict:
    A, lam, w = A.detach().double(), lam.detach().double().reshape(()), w.detach().double()
    r = A.shape[0]
    tight = lam.abs() / r * sum((A[i] / A[i].norm().clamp(min=1e-4) * w).norm() for i in range(r))
    loose = lam.abs() * w.max()
    if frozen_term is not None:
        tight, loose = tight + frozen_term.norm(), 2 * loose
    return {"bound": tight.item(), "bound_loose": loose.item(), "lambda": lam.item()}


def _with_ratio(ref: dict) -> dict:
    if "bound" in ref:
        ref["bound_ratio"] = ref["delta_fro"] / ref["bound"]
    return ref


def _dense(W, dW) -> dict:
    """Norms from the full matrices; angles from arccos of float64 inner products (not the tracker's atan2)."""
    W, dW = W.double(), dW.double()
    w, delta = W.norm(), dW.norm()
    cos_d = ((dW * W).sum() / (delta * w)).clamp(-1, 1)
    Wp = W + dW
    cos_p = ((Wp * W).sum() / (Wp.norm() * w)).clamp(-1, 1)
    return {
        "delta_fro": delta.item(),
        "w_fro": w.item(),
        "rel_delta": (delta / w).item(),
        "angle_delta_w_deg": math.degrees(torch.arccos(cos_d).item()),
        "angle_w_prime_deg": math.degrees(torch.arccos(cos_p).item()),
        "sigma_max": torch.linalg.svdvals(dW)[0].item(),
    }


def _clean(name: str) -> str:
    for prefix in ("base_model.model.",):
        name = name[len(prefix) :] if name.startswith(prefix) else name
    return name


def rel_err(x: float, ref: float) -> float:
    if math.isnan(x) and math.isnan(ref):
        return 0.0
    if math.isnan(x) or math.isnan(ref):
        return math.inf
    return abs(x - ref) / max(abs(ref), 1e-30)
