"""Benchmarks on real training steps: tracking overhead, our DeLoRALinear vs PEFT's (scaling: scaling_bench.py).

All of them use the shared runner's own pieces (loop.prepare, steps.batches, steps.loss_of, the
method registry), so a "step" here is exactly a step of delora_viz.training.loop: autocast where the runner
uses it, AdamW, zero_grad(set_to_none=True).
"""

from __future__ import annotations

import copy

import torch
from benchlib import Timer, interleave, median, paired_ratio, ratio_ci, spread
from torch import nn

from delora_viz.delora.layer import DeLoRALinear, add_delora, delora_layers
from delora_viz.instruments.measure import build_group, num_threads, weight_products
from delora_viz.instruments.track import Tracker
from delora_viz.training.config import TrainConfig
from delora_viz.training.loop import TASK_TYPES, Prepared
from delora_viz.training.methods import DEFAULT_METHODS, build_adapted_model, get_method
from delora_viz.training.steps import batches, loss_of, param_groups


def _adapted(prepared: Prepared, config: TrainConfig, method: str) -> nn.Module:
    loaded = prepared.loaded
    torch.manual_seed(config.seed)
    model = build_adapted_model(
        copy.deepcopy(loaded.model),
        method,
        config.target_modules or loaded.default_target_modules,
        r=config.r,
        delora_lambda=config.delora_lambda,
        lora_alpha=config.lora_alpha,
        head_modules=loaded.head_modules,
        task_type=TASK_TYPES[prepared.data.task],
    )
    return model.train()


def _some_batches(prepared: Prepared, config: TrainConfig, n: int = 4) -> list[dict]:
    gen = batches(prepared.data, config, prepared.loaded)
    return [next(gen) for _ in range(n)]


def _step_functions(model, optimizer, tracker, batches, loaded):
    """The timed functions of one method (closures over one model), and the per-round batch switch."""
    state = {"batch": batches[0], "step": 0}

    def use_batch(i):  # every function of a round sees the same batch (lengths differ between batches)
        state["batch"] = batches[i % len(batches)]

    def step():
        state["step"] += 1
        loss = loss_of(model, state["batch"], loaded)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def tracked():
        step()
        tracker.step(state["step"])

    fns = {"plain": step, "tracked": tracked, "tracker_only": lambda: tracker.step(state["step"])}
    fns["gemm_only"] = lambda: record_gemms(tracker)  # the floor: what no closed form can avoid
    return fns, use_batch


def record_gemms(tracker: Tracker) -> None:
    """The W-sized work of one record alone: W @ V (W @ A^T for DoRA) of every layer, from freshly stacked
    factors, on the Tracker's threads. Everything else a record does is O((m + n) k^2) or smaller."""
    threads = torch.get_num_threads() if tracker.views[0].weight().device.type == "cpu" else None
    with torch.no_grad(), num_threads(1 if threads else None):
        for members in tracker._groups.values():
            group = build_group([tracker.views[i].params() for i in members], tracker.dtype)
            X = group.dora.A.mT if group.family == "dora" else group.update.V
            weight_products([tracker.views[i].weight() for i in members], X, threads)


# ----------------------------------------------------------------------------- 2. tracking overhead
def tracking_overhead(
    prepared: Prepared, config: TrainConfig, rounds: int, warmup: int, methods=DEFAULT_METHODS, log=print
):
    """Per method: optimizer steps with Tracker.step() after each vs without, same model, same batches.

    Three things are timed in every round, order alternating, on that round's batch: a plain step, a
    tracked step (the same plus Tracker.step()), and Tracker.step() alone. overhead = median over rounds
    of tracked_i / plain_i (adjacent in time, so load drifts cancel), with a 95% interval. The direct
    estimate 1 + median(tracker alone) / median(plain) is the same quantity (the tracked step runs the
    same code plus Tracker.step()) measured with far less noise: on a shared machine the A/B interval
    of a ~0.5 s step is several percent wide, wider than the 3% being tested.
    """
    loaded = prepared.loaded
    timer = Timer(loaded.device)
    batches = _some_batches(prepared, config)
    rows = []
    for method in methods:
        model = _adapted(prepared, config, method)
        lr = (config.lr or get_method(method).default_lr) * config.lr_multiplier
        optimizer = torch.optim.AdamW(param_groups(model, loaded.head_modules, lr, config.head_lr))
        tracker = Tracker(model)
        fns, use_batch = _step_functions(model, optimizer, tracker, batches, loaded)
        times = interleave(fns, rounds, warmup, timer, on_round=use_batch)
        plain, track, alone = (median(times[k]) for k in ("plain", "tracked", "tracker_only"))
        row = dict(
            method=method,
            layers=len(tracker.views),
            rounds=rounds,
            plain_step_ms=plain * 1e3,
            tracked_step_ms=track * 1e3,
            tracker_step_ms=alone * 1e3,
            overhead_ratio=paired_ratio(times["tracked"], times["plain"]),
            overhead_ratio_ci95=ratio_ci(times["tracked"], times["plain"]),
            overhead_ratio_of_medians=track / plain,
            direct_share=alone / plain,
            overhead_direct=1 + alone / plain,
            plain_spread=spread(times["plain"]),
            tracked_spread=spread(times["tracked"]),
            tracker_ms_per_layer=alone * 1e3 / len(tracker.views),
            gemm_ms=median(times["gemm_only"]) * 1e3,
            gemm_share=median(times["gemm_only"]) / plain,
        )
        rows.append(row)
        log(
            f"  tracking {method:6s} {row['layers']} layers: plain "
            f"{row['plain_step_ms']:.1f} ms, tracked {row['tracked_step_ms']:.1f} ms "
            f"(x{row['overhead_ratio']:.3f}), Tracker.step {row['tracker_step_ms']:.2f} "
            f"ms ({100 * row['direct_share']:.2f}% of a step)"
        )
        del model, optimizer, tracker
    return rows


# ----------------------------------------------------------------------------- 3. ours vs PEFT
def _copy_peft_into_ours(peft_model: nn.Module, ours: nn.Module) -> int:
    """Give our DeLoRALinear layers PEFT's exact parameters (B made nonzero in both), return the count."""
    from peft.tuners.delora.layer import DeloraLayer

    ours_layers = delora_layers(ours)
    n = 0
    with torch.no_grad():
        for name, module in peft_model.named_modules():
            if not isinstance(module, DeloraLayer):
                continue
            key = name.removeprefix("base_model.model.")
            mine = ours_layers[key]
            module.delora_B["default"].normal_(0, 0.02)  # trained-looking B: the same compute, a nonzero update
            mine.delora_A.copy_(module.delora_A["default"])
            mine.delora_B.copy_(module.delora_B["default"])
            mine.delora_lambda.copy_(module.delora_lambda["default"])
            mine.delora_w_norm.copy_(module.delora_w_norm["default"])
            n += 1
    return n


def ours_vs_peft_model(prepared: Prepared, config: TrainConfig, rounds: int, warmup: int, log=print) -> dict:
    """Forward + backward on the whole model: PEFT's DeloraLinear vs our DeLoRALinear, same weights."""
    loaded, timer = prepared.loaded, Timer(prepared.loaded.device)
    targets = config.target_modules or loaded.default_target_modules
    peft_model = _adapted(prepared, config, "delora")
    ours = copy.deepcopy(loaded.model)
    add_delora(ours, targets, r=config.r, delora_lambda=config.delora_lambda, init="peft")
    for name in loaded.head_modules:
        ours.get_submodule(name).requires_grad_(True)
    ours.train()
    n = _copy_peft_into_ours(peft_model, ours)
    batch = _some_batches(prepared, config, 1)[0]
    peft_model.eval(), ours.eval()
    with torch.no_grad():
        diff = (loss_of(peft_model, batch, loaded) - loss_of(ours, batch, loaded)).abs().item()
    peft_model.train(), ours.train()

    def fwd_bwd(model):
        def run():
            model.zero_grad(set_to_none=True)
            loss_of(model, batch, loaded).backward()

        return run

    times = interleave({"ours": fwd_bwd(ours), "peft": fwd_bwd(peft_model)}, rounds, warmup, timer)
    row = dict(
        level="model",
        layers=n,
        rounds=rounds,
        ours_ms=median(times["ours"]) * 1e3,
        peft_ms=median(times["peft"]) * 1e3,
        ratio=paired_ratio(times["ours"], times["peft"]),
        ratio_ci95=ratio_ci(times["ours"], times["peft"]),
        ratio_of_medians=median(times["ours"]) / median(times["peft"]),
        loss_abs_diff=diff,
        ours_spread=spread(times["ours"]),
        peft_spread=spread(times["peft"]),
    )
    log(
        f"  ours vs PEFT (model, {n} layers): ours {row['ours_ms']:.1f} "
        f"ms, PEFT {row['peft_ms']:.1f} ms, ratio {row['ratio']:.3f} "
        f"(loss diff {diff:.1e})"
    )
    return row


class _One(nn.Module):
    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.proj = linear

    def forward(self, x):
        return self.proj(x)


def ours_vs_peft_layer(
    widths,
    r: int,
    delora_lambda: float,
    rounds: int,
    warmup: int,
    device="cpu",
    dtype=torch.float32,
    batch: int = 8,
    length: int = 64,
    log=print,
) -> list[dict]:
    """One d x d layer, input (batch, length, d) that requires grad: forward + backward of each."""
    from peft import DeloraConfig, get_peft_model

    timer, rows = Timer(device), []
    for d in widths:
        torch.manual_seed(0)
        base = nn.Linear(d, d).to(device=device, dtype=dtype)
        peft_model = get_peft_model(
            _One(copy.deepcopy(base)), DeloraConfig(r=r, delora_lambda=delora_lambda, target_modules=["proj"])
        )
        ours = _One(DeLoRALinear(copy.deepcopy(base), r=r, delora_lambda=delora_lambda))
        _copy_peft_into_ours(peft_model, ours)
        x = torch.randn(batch, length, d, device=device, dtype=dtype, requires_grad=True)
        diff = (peft_model(x) - ours(x)).abs().max().item()

        def fwd_bwd(model):
            def run():
                model.zero_grad(set_to_none=True)
                x.grad = None
                model(x).float().square().mean().backward()

            return run

        times = interleave({"ours": fwd_bwd(ours), "peft": fwd_bwd(peft_model)}, rounds, warmup, timer)
        row = dict(
            level=f"layer {d}",
            width=d,
            rounds=rounds,
            ours_ms=median(times["ours"]) * 1e3,
            peft_ms=median(times["peft"]) * 1e3,
            ratio=paired_ratio(times["ours"], times["peft"]),
            ratio_ci95=ratio_ci(times["ours"], times["peft"]),
            ratio_of_medians=median(times["ours"]) / median(times["peft"]),
            out_abs_diff=diff,
            ours_spread=spread(times["ours"]),
            peft_spread=spread(times["peft"]),
        )
        rows.append(row)
        log(
            f"  ours vs PEFT (layer {d}x{d}, x {batch}x{length}): ours "
            f"{row['ours_ms']:.3f} ms, PEFT {row['peft_ms']:.3f} ms, "
            f"ratio {row['ratio']:.3f} (max diff {diff:.1e})"
        )
    return rows


def train_config(model=None, data=None, device="cpu", dtype="auto", r=8, delora_lambda=None, task=None) -> TrainConfig:
    """The benchmark's training setup: batch 8, length 64 (TrainConfig's defaults), q/v adapters."""
    kw = dict(model=model, data=data, task=task, device=device, dtype=dtype, r=r, batch_size=8, max_length=64)
    if delora_lambda is not None:
        kw["delora_lambda"] = delora_lambda
    return TrainConfig(**kw)
