"""How a Tracker record scales: with the number of layers and their size (a fit, extrapolated to Llama-8B),
and against the one GEMM it cannot avoid (W @ V at 4096^2)."""

from __future__ import annotations

import math

import torch
from benchlib import Timer, interleave, median, paired_ratio, ratio_ci
from torch import nn

from delora_viz.instruments.track import Tracker


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
