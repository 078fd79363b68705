"""Interop with PEFT's adapter directories for models adapted with our DeLoRALinear.

- `save_peft_delora`: init="peft" layers -> a PEFT DeLoRA adapter directory
  (`PeftModel.from_pretrained(base, path)` reproduces the outputs).
- `load_peft_delora`: a PEFT DeLoRA adapter directory -> our DeLoRALinear layers.
- `save_peft_lora`: any of our layers (both inits) -> an exact LoRA adapter of rank k (r, or 2r for
  the paper init) with scaling 1: lora_B = U, lora_A = V^T, so B_lora A_lora = dW. PEFT's DeLoRA
  format has no place for the paper init's frozen (A0, B0) term, so this is how the paper init travels.
  Beside it goes METADATA_NAME (`delora_viz.json`): the method, rank r and, per layer, lambda and the
  bounds at export time, so `delora-viz inspect` labels the LoRA-shaped adapter as DeLoRA with its bound.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import DeloraVizError
from .layer import DeLoRALinear, add_delora, delora_layers

PREFIX = "base_model.model."  # PEFT's key prefix in adapter_model.safetensors
WEIGHTS_NAME = "adapter_model.safetensors"
CONFIG_NAME = "adapter_config.json"
METADATA_NAME = "delora_viz.json"  # what a LoRA-shaped export really is: {"method", "rank", "layers": {...}}


def save_peft_delora(
    model: nn.Module,
    path: str | Path,
    base_model_name_or_path: str | None = None,
    task_type: str | None = None,
    modules_to_save: list[str] | None = None,
) -> Path:
    """Write `model`'s DeLoRA layers (and `modules_to_save`, e.g. a classifier head) as a PEFT DeLoRA adapter."""
    from peft import DeloraConfig

    layers = _require_layers(model)
    paper = [n for n, layer in layers.items() if layer.init == "paper"]
    if paper:
        raise DeloraVizError(
            f"{len(paper)} layer(s) use init='paper' (e.g. '{paper[0]}'): PEFT's DeLoRA format cannot hold the "
            "frozen (A0, B0) term. Use save_peft_lora(model, path), which writes the same update as an exact "
            "rank-2r LoRA adapter, or train with init='peft'."
        )
    ranks = {n: layer.r for n, layer in layers.items()}
    r = max(set(ranks.values()), key=list(ranks.values()).count)
    config = DeloraConfig(
        r=r,
        delora_lambda=next(iter(layers.values())).delora_lambda.item(),  # weights carry each layer's learned lambda
        target_modules=sorted(layers),
        rank_pattern={_exact(n): k for n, k in ranks.items() if k != r},
        module_dropout=_dropout_p(next(iter(layers.values()))),
        modules_to_save=modules_to_save,
        base_model_name_or_path=base_model_name_or_path,
        task_type=task_type,
    )
    tensors = {}
    for name, layer in layers.items():
        for key in ("delora_A", "delora_B", "delora_lambda", "delora_w_norm"):
            tensors[f"{PREFIX}{name}.{key}"] = getattr(layer, key).detach()
    tensors.update(_module_tensors(model, modules_to_save))
    return _write(path, config, tensors)


def load_peft_delora(model: nn.Module, path: str | Path) -> nn.Module:
    """Adapt `model` (the base model) with the DeLoRA adapter at `path`, as our DeLoRALinear layers, ready to
    train on: every layer's A, B and lambda and the modules saved with it train, the rest is frozen (as PEFT's
    from_pretrained(..., is_trainable=True))."""
    config, tensors = _read(path)
    if config.get("peft_type") != "DELORA":
        raise DeloraVizError(f"{path} holds a {config.get('peft_type')} adapter, not a DeLoRA one")
    names = sorted(k[len(PREFIX) : -len(".delora_A")] for k in tensors if k.endswith(".delora_A"))
    if not names:
        raise DeloraVizError(f"{path}/{WEIGHTS_NAME} has no delora_A tensors")
    model.requires_grad_(False)
    for name in names:  # one at a time: the ranks may differ per layer
        A = tensors[f"{PREFIX}{name}.delora_A"]
        dropout = config.get("module_dropout", 0.0)
        add_delora(model, [name], r=A.shape[0], delora_lambda=1.0, module_dropout=dropout, freeze_base=False)
        layer = model.get_submodule(name)
        with torch.no_grad():
            for key in ("delora_A", "delora_B", "delora_lambda", "delora_w_norm"):
                target = getattr(layer, key)
                target.copy_(tensors[f"{PREFIX}{name}.{key}"].to(target.dtype))
    _load_modules(model, tensors, config.get("modules_to_save") or [])
    return model


def save_peft_lora(
    model: nn.Module,
    path: str | Path,
    base_model_name_or_path: str | None = None,
    task_type: str | None = None,
    modules_to_save: list[str] | None = None,
) -> Path:
    """Write every DeLoRALinear's current update as an exact LoRA adapter (rank k, scaling 1)."""
    from peft import LoraConfig

    layers = _require_layers(model)
    tensors, ranks = {}, {}
    for name, layer in layers.items():
        update = layer.update()  # dW = U V^T, U (out, k), V (in, k)
        tensors[f"{PREFIX}{name}.lora_A.weight"] = update.V.T.detach().contiguous()  # (k, in)
        tensors[f"{PREFIX}{name}.lora_B.weight"] = update.U.detach().contiguous()  # (out, k)
        ranks[name] = update.U.shape[1]
    tensors.update(_module_tensors(model, modules_to_save))
    k = max(set(ranks.values()), key=list(ranks.values()).count)
    config = LoraConfig(
        r=k,
        lora_alpha=k,  # scaling alpha / r = 1, so B_lora A_lora is exactly dW
        target_modules=sorted(layers),
        rank_pattern={_exact(n): v for n, v in ranks.items() if v != k},
        alpha_pattern={_exact(n): v for n, v in ranks.items() if v != k},
        modules_to_save=modules_to_save,
        base_model_name_or_path=base_model_name_or_path,
        task_type=task_type,
        lora_dropout=0.0,
    )
    path = _write(path, config, tensors)
    (path / METADATA_NAME).write_text(json.dumps(export_metadata(layers), indent=1))
    return path


def export_metadata(layers: dict[str, DeLoRALinear]) -> dict:
    """{"method", "rank", "layers": {name: {"method", "rank", "lambda", "bound", "bound_loose"}}}.

    Values in float32, as the Tracker records them. The LoRA export keeps dW exactly but not A, A0, B0,
    from which the bound is computed: so the bound itself is stored."""
    with torch.no_grad():
        per_layer = {
            name: {
                "method": layer.method,
                "rank": layer.r,
                "lambda": layer.delora_lambda.detach().float().item(),
                "bound": layer.bound().detach().float().item(),
                "bound_loose": layer.bound_loose().detach().float().item(),
            }
            for name, layer in layers.items()
        }
    methods, ranks = [v["method"] for v in per_layer.values()], [v["rank"] for v in per_layer.values()]
    return {
        "format": "delora-viz adapter metadata 1",
        "method": max(set(methods), key=methods.count),
        "rank": max(set(ranks), key=ranks.count),
        "layers": per_layer,
    }


def read_metadata(path: str | Path) -> dict | None:
    """The METADATA_NAME file of an adapter folder (None when there is none); ValueError when unreadable."""
    file = Path(path) / METADATA_NAME
    if not file.is_file():
        return None
    try:
        meta = json.loads(file.read_text())
        if not isinstance(meta.get("layers"), dict):
            raise DeloraVizError("no 'layers' mapping")
    except (ValueError, AttributeError) as err:
        raise DeloraVizError(f"{file} is not delora-viz adapter metadata ({err}); delete it or re-export") from None
    return meta


# ----------------------------------------------------------------------------- helpers
def _require_layers(model: nn.Module) -> dict[str, DeLoRALinear]:
    layers = delora_layers(model)
    if not layers:
        raise DeloraVizError(
            "the model has no DeLoRALinear layers: add them with add_delora(model, target_modules, ...)"
        )
    return layers


def _exact(name: str) -> str:
    return "^" + name.replace(".", r"\.") + "$"


def _dropout_p(layer: DeLoRALinear) -> float:
    return layer.dropout.p if isinstance(layer.dropout, nn.Dropout) else 0.0


def _module_tensors(model: nn.Module, modules_to_save: list[str] | None) -> dict[str, torch.Tensor]:
    tensors = {}
    for module_name in modules_to_save or []:
        try:
            module = model.get_submodule(module_name)
        except AttributeError:
            raise DeloraVizError(
                f"modules_to_save names '{module_name}', which {type(model).__name__} does not have"
            ) from None
        for key, value in module.state_dict().items():
            tensors[f"{PREFIX}{module_name}.{key}"] = value.detach()
    return tensors


def _load_modules(model: nn.Module, tensors: dict, modules_to_save: list[str]) -> None:
    for module_name in modules_to_save:
        prefix = f"{PREFIX}{module_name}."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        if state:
            model.get_submodule(module_name).load_state_dict(state)
            model.get_submodule(module_name).requires_grad_(True)


def _write(path: str | Path, config, tensors: dict) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(path))
    save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(path / WEIGHTS_NAME))
    return path


def _read(path: str | Path) -> tuple[dict, dict]:
    path = Path(path)
    if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"{path} is not a PEFT adapter directory: it needs {CONFIG_NAME} and {WEIGHTS_NAME}")
    return json.loads((path / CONFIG_NAME).read_text()), load_file(str(path / WEIGHTS_NAME))
