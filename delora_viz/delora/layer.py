"""DeLoRALinear, written from scratch, and the model surgery around it.

    y = x W^T + b + dropout(x) dW^T,     dW = (lambda / r) B Xi A diag(w)   (geometry.delora_update)

W is frozen; A (r x in), B (out x r) and the scalar lambda are trained; w = ||W[:, j]|| is frozen at
construction. With init="peft" B starts at zero, as PEFT's DeloraLinear (the same outputs to float rounding:
tests/test_layer.py checks it against PEFT). With
init="paper" A and B both start kaiming-uniform and a frozen clone (A0, B0) is subtracted, so dW = 0
at step 0 but the gradient reaches both factors at once (the paper's Eq. 5-9). The clone is a real
copy: the authors' code shared storage between the copy and the trained weights, which keeps dW = 0
for ever on CPU.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from ..errors import DeloraVizError, check_int
from .geometry import LowRankUpdate, delora_bound, delora_bound_loose, delora_update

INITS = ("peft", "paper")
# PEFT's DeloraConfig defaults, so that add_delora and get_peft_model(DeloraConfig()) build the same update.
# ||dW||_F ~ lambda rms(w) / sqrt(r) (||dW|| / ||W|| ~ lambda / sqrt(r n) for n inputs): 15 suits 2-4k-wide
# layers; for narrow ones pass a smaller lambda (the runner's default for its small models is 5).
DEFAULT_RANK = 8
DEFAULT_LAMBDA = 15.0


def validate_delora_args(r: int, delora_lambda: float, init: str = "peft", module_dropout: float = 0.0) -> None:
    """Raise a ValueError that says what to change, for every argument DeLoRA cannot use."""
    check_int("r", r, label="r (the rank)")
    if not isinstance(delora_lambda, (int, float)) or not math.isfinite(delora_lambda) or delora_lambda <= 0:
        raise DeloraVizError(
            "delora_lambda must be a finite number > 0 (it scales and bounds ||dW||_F ~ lambda rms(w) / sqrt(r): "
            f"PEFT's {DEFAULT_LAMBDA:g} suits 2-4k-wide layers, ~5 suits 384-wide ones), got {delora_lambda!r}",
            field="delora_lambda",
        )
    if init not in INITS:
        raise DeloraVizError(f"init must be one of {INITS}, got {init!r}", field="init")
    if not 0.0 <= module_dropout < 1.0:
        raise DeloraVizError(f"module_dropout must be in [0, 1), got {module_dropout!r}", field="module_dropout")


class DeLoRALinear(nn.Module):
    """An nn.Linear with a DeLoRA update. `delta_weight()` is dW (out x in); `update()` its factors."""

    def __init__(
        self,
        base_layer: nn.Linear,
        r: int = DEFAULT_RANK,
        delora_lambda: float = DEFAULT_LAMBDA,
        init: str = "peft",
        module_dropout: float = 0.0,
    ):
        super().__init__()
        if not isinstance(base_layer, nn.Linear):
            raise TypeError(f"DeLoRALinear wraps an nn.Linear, got {type(base_layer).__name__}")
        validate_delora_args(r, delora_lambda, init, module_dropout)
        self.base_layer = base_layer
        self.r, self.init = r, init
        self.merged = False
        W = base_layer.weight  # (out, in)
        if not W.is_floating_point():
            raise TypeError(
                f"DeLoRALinear needs a floating-point base weight, got {W.dtype} (a quantized layer such as "
                f"bitsandbytes' {type(base_layer).__name__}?): its column norms would be those of integer codes"
            )
        base_layer.weight.requires_grad_(False)
        # float32 whatever W's dtype (as PEFT does): in bf16 lambda = 5 has a spacing of 1/32 and never moves
        factory = dict(device=W.device, dtype=torch.promote_types(W.dtype, torch.float32))
        self.delora_A = nn.Parameter(torch.empty(r, base_layer.in_features, **factory))  # (r, in)
        self.delora_B = nn.Parameter(torch.empty(base_layer.out_features, r, **factory))  # (out, r)
        self.delora_lambda = nn.Parameter(torch.full((1,), float(delora_lambda), **factory))
        nn.init.kaiming_uniform_(self.delora_A, a=math.sqrt(5))
        if init == "peft":
            nn.init.zeros_(self.delora_B)
        else:
            nn.init.kaiming_uniform_(self.delora_B, a=math.sqrt(5))
            self.register_buffer("delora_A0", self.delora_A.detach().clone())  # clone: own storage
            self.register_buffer("delora_B0", self.delora_B.detach().clone())
        self.register_buffer("delora_w_norm", W.detach().to(factory["dtype"]).norm(dim=0))  # (in,) frozen
        self.dropout = nn.Dropout(module_dropout) if module_dropout > 0 else nn.Identity()

    @property
    def method(self) -> str:
        """The method's name everywhere else (the runner, the Tracker's rows, the history): init="peft" is
        "delora", init="paper" is "delora-paper"."""
        return "delora-paper" if self.init == "paper" else "delora"

    @property
    def in_features(self) -> int:
        return self.base_layer.in_features

    @property
    def out_features(self) -> int:
        return self.base_layer.out_features

    @property
    def weight(self) -> Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> Tensor | None:
        return self.base_layer.bias

    def _frozen(self) -> tuple[Tensor | None, Tensor | None]:
        """(A0, B0): the paper init's frozen copy, subtracted from the update; (None, None) for PEFT's init."""
        return (self.delora_A0, self.delora_B0) if self.init == "paper" else (None, None)

    def update(self) -> LowRankUpdate:
        """dW as factors U (out, k), V (in, k): the one formula, in geometry.delora_update."""
        return delora_update(self.delora_A, self.delora_B, self.delora_lambda, self.delora_w_norm, *self._frozen())

    def delta_weight(self) -> Tensor:
        return self.update().dense()  # (out, in)

    def bound(self) -> Tensor:
        """The tight bound on ||dW||_F for the current directions of A (see geometry.delora_bound)."""
        return delora_bound(self.delora_A, self.delora_lambda, self.delora_w_norm, *self._frozen())

    def bound_loose(self) -> Tensor:
        return delora_bound_loose(self.delora_lambda, self.delora_w_norm, paper_init=self.init == "paper")

    def forward(self, x: Tensor) -> Tensor:  # x (..., in) -> (..., out)
        out = self.base_layer(x)
        if self.merged:
            return out
        # x V U^T with V = diag(w) A^T, U = B diag(d): PEFT computes ((dropout(x) * w) A^T) * d, then B^T, the
        # same products grouped otherwise (equal to rounding). In the adapter's dtype (float32 under a bf16
        # base; autocast, when on, picks the matmul dtype itself).
        x = self.dropout(x).to(self.delora_A.dtype)
        return out + self.update().apply(x).to(out.dtype)

    @torch.no_grad()
    def merge(self) -> None:
        """W <- W + dW. The update keeps training only after unmerge()."""
        if self.merged:
            warnings.warn("DeLoRALinear is already merged; nothing to do", stacklevel=2)
            return
        self.base_layer.weight.add_(self.delta_weight().to(self.base_layer.weight.dtype))
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if not self.merged:
            warnings.warn("DeLoRALinear is not merged; nothing to do", stacklevel=2)
            return
        self.base_layer.weight.sub_(self.delta_weight().to(self.base_layer.weight.dtype))
        self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, init={self.init!r}, lambda={self.delora_lambda.item():.4g}, merged={self.merged}"


# ----------------------------------------------------------------------------- model surgery
def match_module_names(model: nn.Module, target_modules: str | list[str]) -> list[str]:
    """PEFT's matching rule: a string is a full regex match; a list matches a name exactly or by
    its last dotted components ("query" matches "encoder.layer.0.attention.self.query")."""
    if isinstance(target_modules, str):
        return [name for name, _ in model.named_modules() if name and re.fullmatch(target_modules, name)]
    if not target_modules:
        raise DeloraVizError(
            "target_modules is empty: name at least one module, e.g. ['q_proj', 'v_proj']", field="target_modules"
        )
    targets = list(target_modules)
    return [
        name for name, _ in model.named_modules() if name and any(name == t or name.endswith("." + t) for t in targets)
    ]


def linear_leaf_names(model: nn.Module) -> list[str]:
    """The distinct last components of every nn.Linear in the model, for error messages."""
    return sorted({name.rsplit(".", 1)[-1] for name, mod in model.named_modules() if isinstance(mod, nn.Linear)})


def linear_targets(model: nn.Module, target_modules: str | list[str]) -> list[str]:
    """The names of the nn.Linear layers `target_modules` selects (not yet adapted by us), or a
    DeloraVizError that lists the layers there are. The runner checks every method's targets with it."""
    names = [
        n for n in match_module_names(model, target_modules) if not isinstance(model.get_submodule(n), DeLoRALinear)
    ]
    names = [n for n in names if not n.endswith(".base_layer")]
    if not names:
        raise DeloraVizError(
            f"target_modules={target_modules!r} matches no module of {type(model).__name__}; "
            f"its nn.Linear layers are named: {', '.join(linear_leaf_names(model)) or '(none)'}",
            field="target_modules",
        )
    for name in names:
        module = model.get_submodule(name)
        if not isinstance(module, nn.Linear):
            raise DeloraVizError(
                f"module '{name}' is a {type(module).__name__}, but DeLoRA adapts only nn.Linear layers; "
                f"choose among: {', '.join(linear_leaf_names(model)) or '(none)'}",
                field="target_modules",
            )
    return names


def add_delora(
    model: nn.Module,
    target_modules: str | list[str],
    r: int = DEFAULT_RANK,
    delora_lambda: float = DEFAULT_LAMBDA,
    init: str = "peft",
    module_dropout: float = 0.0,
    freeze_base: bool = True,
) -> nn.Module:
    """Wrap every matching nn.Linear in a DeLoRALinear, in place; freeze everything else. Returns model."""
    validate_delora_args(r, delora_lambda, init, module_dropout)
    names = linear_targets(model, target_modules)
    if freeze_base:
        model.requires_grad_(False)
    for name in names:
        _replace(model, name, DeLoRALinear(model.get_submodule(name), r, delora_lambda, init, module_dropout))
    return model


def delora_layers(model: nn.Module) -> dict[str, DeLoRALinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, DeLoRALinear)}


def delora_parameters(model: nn.Module) -> Iterator[nn.Parameter]:
    """Only the trainable DeLoRA parameters: A, B and lambda of every layer."""
    for layer in delora_layers(model).values():
        yield from (layer.delora_A, layer.delora_B, layer.delora_lambda)


def merge_delora(model: nn.Module) -> nn.Module:
    """Fold every update into its weight and put the plain nn.Linear back. Returns model."""
    for name, layer in delora_layers(model).items():
        if not layer.merged:
            layer.merge()
        _replace(model, name, layer.base_layer)
    return model


def remove_delora(model: nn.Module) -> nn.Module:
    """Put the original nn.Linear layers back, undoing any merge. Returns model."""
    for name, layer in delora_layers(model).items():
        if layer.merged:
            layer.unmerge()
        _replace(model, name, layer.base_layer)
    return model


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
