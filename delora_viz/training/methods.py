"""The method registry: lora, rslora, dora, delora, delora-fixed-lambda, delora-paper; how each is built, its defaults.

Every method the Tracker measures is here (names.TRACKED), plus
delora-fixed-lambda (DeLoRA with lambda frozen at its init; the Tracker records it as "delora"). LoRA, rsLoRA
and DoRA are PEFT LoraConfigs, DeLoRA is PEFT's DeloraConfig, and the paper's initialisation (which PEFT
does not offer) is our DeLoRALinear with init="paper" (the Tracker and the history call it "delora-paper").
The learning rates are the ones we measured on the embedded default (MiniLM + BBC News, AdamW, 40 steps
of 8, head at 5e-3): LoRA 0.94 accuracy at 2e-3 (0.85 at 1e-2); DeLoRA (lambda 5) 0.89-0.91 anywhere from
1e-2 to 1e-1. DeLoRA's rate is ~15x LoRA's because its factors are normalised away: lambda (with W's
column norms) sets the scale and the ceiling |lambda| max_j ||W[:, j]||, and a step on A or B moves the
update's direction and where its norm sits below that ceiling (how aligned its r unit terms are), so it
takes bigger steps to move it as far.

The runner's lambda is its own, for its small models (PEFT's and add_delora's default is 15). Rule of
thumb (notebook 04, section 2): ||dW||_F ~ lambda rms(w) / sqrt(r), i.e. ||dW|| / ||W|| ~ lambda / sqrt(r n) for a
layer with n inputs. At r = 8, PEFT's 15 gives ~0.08 of ||W|| on 4096-wide layers but ~0.27 on MiniLM's
384-wide ones, where it hurts accuracy at high rates; 5 gives ~0.09 there.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .. import names
from ..delora.layer import DEFAULT_RANK, add_delora, linear_targets
from ..errors import DeloraVizError

DEFAULT_LAMBDA = 5.0  # the runner's lambda (see above): ||dW|| ~ 0.09 ||W|| on 384-wide layers at r = 8


@dataclass(frozen=True)
class Method:
    name: str  # names.LABELS' key: the one vocabulary
    description: str  # one line for the app and the notebooks
    default_lr: float
    peft_type: str  # the adapter format train() saves: "LORA" or "DELORA"

    @property
    def label(self) -> str:  # for legends and tables
        return names.label(self.name)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "lora",
            "dW = (alpha/r) B A: unbounded; its norm grows with the learning rate and the steps.",
            2e-3,
            "LORA",
        ),
        Method(
            "rslora",
            "LoRA with s = alpha/sqrt(r) instead of alpha/r (rank-stabilised): the same update, scaled up by sqrt(r).",
            7e-4,  # LoRA's 2e-3 / sqrt(8): Adam's step on B is ~lr whatever s is, and s is sqrt(r) x LoRA's
            "LORA",
        ),
        Method("dora", "LoRA on the direction of each output row, with a learned magnitude per row.", 2e-3, "LORA"),
        Method(
            "delora",
            "dW = (lambda/r) B Xi A diag(||W_j||): normalised rank-1 terms, so ||dW||_F <= |lambda| max_j ||W_j|| "
            "(PEFT init, B = 0).",
            3e-2,
            "DELORA",
        ),
        Method(
            "delora-fixed-lambda",
            "DeLoRA with lambda frozen at its init: only A and B train, so the ceiling |lambda| max_j ||W_j|| stays "
            "put and ||dW|| moves below it as the rank-1 terms align.",
            3e-2,
            "DELORA",
        ),
        Method(
            "delora-paper",
            "DeLoRA with the paper's init: A, B random, their frozen copy subtracted, so dW grows smoothly from 0.",
            3e-2,
            "LORA",
        ),
    )
}
DEFAULT_METHODS = ("lora", "dora", "delora")


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise DeloraVizError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}", field="method")
    return METHODS[name]


def build_adapted_model(
    model: nn.Module,
    method: str,
    target_modules: list[str],
    r: int = DEFAULT_RANK,
    delora_lambda: float = DEFAULT_LAMBDA,
    lora_alpha: float | None = None,
    module_dropout: float = 0.0,
    head_modules: list[str] | None = None,
    task_type: str | None = None,
) -> nn.Module:
    """Adapt `model` in place with `method`; the adapter and the head modules train, nothing else."""
    from peft import DeloraConfig, LoraConfig, get_peft_model

    get_method(method)
    linear_targets(model, list(target_modules))  # a clear error before PEFT's, for every method
    head_modules = list(head_modules or [])
    if method in ("lora", "rslora", "dora"):
        config = LoraConfig(
            r=r,
            lora_alpha=lora_alpha if lora_alpha is not None else 2 * r,
            lora_dropout=module_dropout,
            use_rslora=method == "rslora",
            use_dora=method == "dora",
            target_modules=list(target_modules),
            modules_to_save=head_modules or None,
            task_type=task_type,
        )
        return get_peft_model(model, config)
    if method in ("delora", "delora-fixed-lambda"):
        config = DeloraConfig(
            r=r,
            delora_lambda=delora_lambda,
            module_dropout=module_dropout,
            target_modules=list(target_modules),
            modules_to_save=head_modules or None,
            task_type=task_type,
        )
        model = get_peft_model(model, config)
        if method == "delora-fixed-lambda":  # lambda stays at its init: A and B alone move ||dW||
            for name, p in model.named_parameters():
                if ".delora_lambda." in name:
                    p.requires_grad_(False)
        return model
    add_delora(
        model, list(target_modules), r=r, delora_lambda=delora_lambda, init="paper", module_dropout=module_dropout
    )
    for name in head_modules:
        model.get_submodule(name).requires_grad_(True)
    return model


def save_adapter(model: nn.Module, method: str, path, base_model_name_or_path=None, task_type=None, head_modules=None):
    """Write a directory that `PeftModel.from_pretrained(base_model, path)` loads."""
    from ..delora.peft_io import save_peft_lora

    if method == "delora-paper":  # PEFT's DeLoRA format cannot hold the frozen term: exact LoRA instead
        return save_peft_lora(model, path, base_model_name_or_path, task_type, modules_to_save=head_modules)
    model.peft_config["default"].base_model_name_or_path = base_model_name_or_path
    model.save_pretrained(str(path))
    return path
