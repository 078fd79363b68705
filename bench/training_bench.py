"""Benchmarks on real training steps: tracking overhead, our DeLoRALinear vs PEFT's, tracker scaling.

All of them use the shared runner's own pieces (train.prepare, train._batches, train._loss, the
method registry), so a "step" here is exactly a step of delora_viz.training.loop: autocast where the runner
uses it, AdamW, zero_grad(set_to_none=True).
"""

from __future__ import annotations

import copy
import math

import torch
from benchlib import Timer, interleave, median, paired_ratio, ratio_ci, spread
from torch import nn

from delora_viz.core.layer import DeLoRALinear, add_delora, delora_layers
from delora_viz.core.measure import build_group, num_threads, weight_products
from delora_viz.core.track import Tracker
from delora_viz.training.config import TrainConfig
from delora_viz.training.loop import TASK_TYPES, Prepared, _batches, _loss, _param_groups
from delora_viz.training.methods import DEFAULT_METHODS, build_adapted_model, get_method


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
    gen = _batches(prepared.data, config, prepared.loaded)
    return [next(gen) for _ in range(n)]


def _step_functions(model, optimizer, tracker, batches, loaded):
    """The timed functions of one method (closures over one model), and the per-round batch switch."""
    state = {"batch": batches[0], "step": 0}

    def use_batch(i):  # every function of a round sees the same batch (lengths differ between batches)
        state["batch"] = batches[i % len(batches)]

    def step():
        state["step"] += 1
        loss = _loss(model, state["batch"], loaded)
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
            X = group.dora.A.mT if group.kind == "dora" else group.update.V
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
        optimizer = torch.optim.AdamW(_param_groups(model, loaded.head_modules, lr, config.head_lr))
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
        diff = (_loss(peft_model, batch, loaded) - _loss(ours, batch, loaded)).abs().item()
    peft_model.train(), ours.train()

    def fwd_bwd(model):
        def run():
            model.zero_grad(set_to_none=True)
            _loss(model, batch, loaded).backward()

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


# ----------------------------------------------------------------------------- 5. scaling
class _Stack(nn.Module):
    """Independent linear layers of given (out, in) shapes: something for the tracker to measure."""

    def __init__(self, shapes):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(n, m, bias=False) for m, n in shapes)


def _tracker_ms(shapes, r: int, repeats: int, warmup: int, device, dtype) -> float:
    from peft import DeloraConfig, get_peft_model

    torch.manual_seed(0)
    model = _Stack(shapes).to(device=device, dtype=dtype)
    model = get_peft_model(model, DeloraConfig(r=r, delora_lambda=15.0, target_modules=r"layers\.\d+"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "delora_B" in name:
                p.normal_(0, 0.02)
    tracker = Tracker(model, keep_rows=False)
    times = interleave({"track": tracker.step}, repeats, warmup, Timer(device))
    return median(times["track"]) * 1e3


def closed_form_vs_gemm(d: int, r: int, rounds: int, warmup: int, device="cpu", dtype=torch.float32, log=print):
    """Tracker.step() on one d x d PEFT DeLoRA layer of rank r, against the one GEMM it cannot avoid,
    W @ V with V (d, r): <dW, W> = sum(U * (W V)) needs it, everything else is O((m + n) r^2) or cached.
    Timed interleaved; ratio = median over rounds of tracker_i / gemm_i (target ~1.3 at 4096, r = 16)."""
    from peft import DeloraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(
        _Stack([(d, d)]).to(device=device, dtype=dtype),
        DeloraConfig(r=r, delora_lambda=15.0, target_modules=r"layers\.\d+"),
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "delora_B" in name:
                p.normal_(0, 0.02)
    tracker = Tracker(model, keep_rows=False)
    W = model.base_model.model.layers[0].get_base_layer().weight.detach()
    V = torch.randn(d, r, device=device, dtype=torch.float32 if dtype != torch.float64 else dtype)
    Wc = W if W.dtype == V.dtype else W.to(V.dtype)  # what the tracker multiplies (bf16 W: cast blocks)
    times = interleave({"tracker": tracker.step, "gemm": lambda: Wc @ V}, rounds, warmup, Timer(device))
    row = dict(
        width=d,
        rank=r,
        dtype=str(dtype).removeprefix("torch."),
        tracker_ms=median(times["tracker"]) * 1e3,
        gemm_ms=median(times["gemm"]) * 1e3,
        ratio=paired_ratio(times["tracker"], times["gemm"]),
        ratio_ci95=ratio_ci(times["tracker"], times["gemm"]),
    )
    log(
        f"  closed form vs its GEMM ({d}x{d}, r={r}): Tracker.step {row['tracker_ms']:.2f} ms, W @ V "
        f"{row['gemm_ms']:.2f} ms, ratio {row['ratio']:.2f}"
    )
    return row


def _fit_cost(rows):
    """Non-negative least squares for T = c0 + a L + b sum(m n) over measured records, weighted by 1/T
    (relative errors); returns (c0, a, b) in ms. With three unknowns, trying every subset is enough."""
    import itertools

    X = torch.tensor(
        [[1.0, row["layers"], row["layers"] * row["out"] * row["inp"]] for row in rows], dtype=torch.float64
    )
    y = torch.tensor([row["tracker_ms"] for row in rows], dtype=torch.float64)
    Xw, yw = X / y[:, None], torch.ones_like(y)
    best, best_err = (0.0, 0.0, 0.0), math.inf
    for keep in itertools.chain.from_iterable(itertools.combinations(range(3), k) for k in (1, 2, 3)):
        cols = list(keep)
        sol = torch.linalg.lstsq(Xw[:, cols], yw[:, None]).solution.squeeze(1)
        if (sol < 0).any():
            continue
        coef = [0.0, 0.0, 0.0]
        for c, v in zip(cols, sol.tolist()):
            coef[c] = v
        err = float(((Xw @ torch.tensor(coef, dtype=torch.float64)) - yw).square().sum())
        if err < best_err:
            best, best_err = tuple(coef), err
    return best


# Llama-3-8B: 32 decoder layers, each with these 7 nn.Linear (out, in) shapes.
LLAMA_8B = {
    "q_proj": (4096, 4096),
    "k_proj": (1024, 4096),
    "v_proj": (1024, 4096),
    "o_proj": (4096, 4096),
    "gate_proj": (14336, 4096),
    "up_proj": (14336, 4096),
    "down_proj": (4096, 14336),
}
LLAMA_8B_LAYERS = 32


def scaling(
    widths,
    layer_counts,
    r: int,
    repeats: int,
    warmup: int,
    device="cpu",
    dtype=torch.float32,
    extra_shapes=(),
    log=print,
) -> dict:
    """Tracker.step() time vs the number of adapted layers (at the smallest width) and vs width (4 layers).

    Model: one record costs T = c0 + sum over layers of (a + b m n) ms, fitted to all measurements
    (non-negative least squares on relative errors); extra (non-square) shapes check the prediction,
    and the fit is extrapolated to the 224 linear layers of Llama-3-8B."""
    w0 = min(widths)
    by_count, by_width = [], []
    for L in layer_counts:
        ms = _tracker_ms([(w0, w0)] * L, r, repeats, warmup, device, dtype)
        by_count.append(dict(layers=L, width=w0, out=w0, inp=w0, tracker_ms=ms, ms_per_layer=ms / L))
        log(f"  scaling: {L:3d} layers of {w0}x{w0}: Tracker.step {ms:8.2f} ms ({ms / L:.3f} ms/layer)")
    per_shape = 4
    for d in widths:
        ms = _tracker_ms([(d, d)] * per_shape, r, repeats, warmup, device, dtype)
        by_width.append(dict(layers=per_shape, width=d, out=d, inp=d, tracker_ms=ms, ms_per_layer=ms / per_shape))
        log(f"  scaling: {per_shape:3d} layers of {d}x{d}: Tracker.step {ms:8.2f} ms ({ms / per_shape:.3f} ms/layer)")
    c0, a, b = _fit_cost(by_count + by_width)
    predict = lambda m, n: a + b * m * n  # noqa: E731  ms per layer
    checks = []
    for m, n in extra_shapes:
        ms = _tracker_ms([(m, n)] * per_shape, r, repeats, warmup, device, dtype)
        predicted = c0 + per_shape * predict(m, n)
        checks.append(dict(out=m, inp=n, layers=per_shape, tracker_ms=ms, predicted_ms=predicted))
        log(
            f"  scaling: check {per_shape} layers of {m}x{n}: Tracker.step "
            f"{ms:.2f} ms measured, {predicted:.2f} ms predicted"
        )
    all_modules = LLAMA_8B_LAYERS * sum(predict(m, n) for m, n in LLAMA_8B.values()) + c0
    qv = LLAMA_8B_LAYERS * (predict(*LLAMA_8B["q_proj"]) + predict(*LLAMA_8B["v_proj"])) + c0
    extrapolation = dict(
        model="Llama-3-8B (32 layers x q,k,v,o,gate,up,down)",
        rank=r,
        all_linear_modules=LLAMA_8B_LAYERS * len(LLAMA_8B),
        all_linear_ms=all_modules,
        q_v_modules=LLAMA_8B_LAYERS * 2,
        q_v_ms=qv,
    )
    log(
        f"  scaling: fit per layer = {a:.3f} ms + {b * 1e6:.3f} ms per 1e6 weights; per record {c0:.2f} ms; "
        f"Llama-8B all 224 linear {all_modules / 1e3:.2f} s/record, q+v only {qv / 1e3:.2f} s/record"
    )
    return dict(
        rank=r,
        dtype=str(dtype).removeprefix("torch."),
        by_layers=by_count,
        by_width=by_width,
        checks=checks,
        fit=dict(per_record_ms=c0, per_layer_ms=a, per_million_weights_ms=b * 1e6),
        llama_8b=extrapolation,
    )


def train_config(model=None, data=None, device="cpu", dtype="auto", r=8, delora_lambda=None, task=None) -> TrainConfig:
    """The benchmark's training setup: batch 8, length 64 (TrainConfig's defaults), q/v adapters."""
    kw = dict(model=model, data=data, task=task, device=device, dtype=dtype, r=r, batch_size=8, max_length=64)
    if delora_lambda is not None:
        kw["delora_lambda"] = delora_lambda
    return TrainConfig(**kw)
