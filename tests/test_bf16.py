"""bf16 models: every Tracker column equals a float64 reference built from the SAME parameters.

Two setups, as users run them: adapters in float32 under a bf16 base (what get_peft_model and add_delora
give on a bf16 model), and the whole model cast to bf16 after the adapters were added. Each is trained a
few steps at a high learning rate so the update is far from its initial value. The references never go
through the code they check: PEFT's own merge on a float64 copy (merged W minus W), and for our layer the
paper's equation written out below; angles are arccos of float64 inner products.
"""

import copy
import math

import pytest
import torch
from builders import ToyBlock
from peft import DeloraConfig, LoraConfig, get_peft_model
from torch import nn

from delora_viz.delora.layer import add_delora, delora_layers
from delora_viz.instruments.track import Tracker

BF16 = torch.bfloat16
LAYERS = ("q_proj", "v_proj")
REL = 1e-4


def Block():  # noqa: N802 - the toy block (tests/builders.py) at this file's size
    return ToyBlock(96, 64)


def _config(kind, r=4):
    targets = list(LAYERS)
    return {
        "lora": lambda: LoraConfig(r=r, lora_alpha=8, target_modules=targets),
        "rslora": lambda: LoraConfig(r=r, lora_alpha=8, use_rslora=True, target_modules=targets),
        "dora": lambda: LoraConfig(r=r, lora_alpha=8, use_dora=True, target_modules=targets),
        "delora": lambda: DeloraConfig(r=r, delora_lambda=3, target_modules=targets, lambda_pattern={"v_proj": 1.5}),
    }[kind]()


def build(kind, setup, r=4):
    """kind: a PEFT method or ours-peft / ours-paper; setup: "fp32-adapters" or "all-bf16"."""
    torch.manual_seed(0)
    base = Block().to(BF16)  # a bf16 model, as "auto" gives on a recent GPU
    if kind.startswith("ours"):
        model = add_delora(base, list(LAYERS), r=r, delora_lambda=3.0, init=kind.split("-")[1])
    else:
        model = get_peft_model(base, _config(kind, r))
    return model.to(BF16) if setup == "all-bf16" else model


def train(model, steps, lr, tracker=None):
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    if tracker is not None:
        tracker.watch(opt)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(16, 96, generator=gen).to(BF16)).float().pow(2).mean().backward()
        opt.step()


def _modules(model):
    root = model.base_model.model if hasattr(model, "base_model") else model
    return {name: root.get_submodule(name) for name in LAYERS}


def paper_equation(A, B, lam, w, A0=None, B0=None):
    """DeLoRA, Eq. 5-9: dW = (lambda / r) (B Xi A - B0 Xi0 A0) diag(w), Xi_ii = 1 / (||b_i|| ||a_i||)."""
    r = A.shape[0]

    def term(A, B):
        xi = torch.diag(1 / (torch.linalg.norm(B, dim=0).clamp(min=1e-4) * torch.linalg.norm(A, dim=1).clamp(min=1e-4)))
        return B @ xi @ A

    core = term(A, B) if A0 is None else term(A, B) - term(A0, B0)
    return lam / r * core @ torch.diag(w)


def reference(model, kind):
    """{layer: dict of float64 columns} from the model's current parameters, never through delora_viz."""
    out = {}
    if kind.startswith("ours"):
        for name, layer in delora_layers(model).items():
            f = {k: v.detach().double() for k, v in layer.named_buffers()} | {
                k: v.detach().double() for k, v in layer.named_parameters() if k.startswith("delora")
            }
            W = layer.base_layer.weight.detach().double()
            paper = "delora_A0" in f
            frozen = (f["delora_A0"], f["delora_B0"]) if paper else (None, None)
            lam, w, A = f["delora_lambda"], f["delora_w_norm"], f["delora_A"]
            dW = paper_equation(A, f["delora_B"], lam, w, *frozen)
            out[name] = _columns(W, dW) | _delora_bounds(A, lam, w, layer.r, frozen)
        return out
    originals = {n: m.get_base_layer().weight.detach().double() for n, m in _modules(model).items()}
    merged = copy.deepcopy(model).double().merge_and_unload()  # PEFT's own merge, in float64
    for name, module in _modules(model).items():
        W = originals[name]
        dW = merged.get_submodule(name).weight.detach() - W
        out[name] = _columns(W, dW)
        if kind == "dora":  # not low rank: the tracker reports no sigma_max, but the magnitudes' drift
            del out[name]["sigma_max"]
            m = module.lora_magnitude_vector["default"].weight.detach().double()
            rows = torch.linalg.norm(W, dim=1)
            out[name]["dora_mag_drift"] = (torch.linalg.norm(m - rows) / torch.linalg.norm(rows)).item()
        if kind == "delora":
            A = module.delora_A["default"].detach().double()
            lam = module.delora_lambda["default"].detach().double()
            w = module.delora_w_norm["default"].detach().double()
            out[name] |= _delora_bounds(A, lam, w, module.r["default"], (None, None))
    return out


def _columns(W, dW):
    def angle(X, Y):  # arccos of the float64 inner product (moderate angles here: no atan2 needed)
        return math.degrees(math.acos(((X * Y).sum() / (torch.linalg.norm(X) * torch.linalg.norm(Y))).item()))

    delta, w_fro = torch.linalg.norm(dW).item(), torch.linalg.norm(W).item()
    return {
        "dW": dW,
        "delta_fro": delta,
        "w_fro": w_fro,
        "rel_delta": delta / w_fro,
        "angle_delta_w_deg": angle(dW, W),
        "angle_w_prime_deg": angle(W + dW, W),
        "sigma_max": torch.linalg.svdvals(dW)[0].item(),
    }


def _delora_bounds(A, lam, w, r, frozen):
    """(|lambda| / r) sum_i ||a_i / ||a_i|| * w||  (+ ||frozen term||_F for the paper init), and |lambda| max w."""
    tight = lam.abs().item() / r * sum(torch.linalg.norm(A[i] / torch.linalg.norm(A[i]) * w).item() for i in range(r))
    loose = lam.abs().item() * w.max().item()
    if frozen[0] is not None:
        tight += torch.linalg.norm(paper_equation(frozen[0], frozen[1], lam, w)).item()
        loose *= 2
    return {"bound": tight, "bound_loose": loose, "lambda": lam.item()}


KINDS = ["lora", "rslora", "dora", "delora", "ours-peft", "ours-paper"]
LR = {"lora": 0.05, "rslora": 0.05, "dora": 0.05, "delora": 0.3, "ours-peft": 0.3, "ours-paper": 0.3}
COMPARED = (
    "delta_fro",
    "w_fro",
    "rel_delta",
    "angle_delta_w_deg",
    "angle_w_prime_deg",
    "sigma_max",
    "dora_mag_drift",
    "bound",
    "bound_loose",
    "lambda",
)


@pytest.mark.parametrize("setup", ["fp32-adapters", "all-bf16"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_column_matches_a_float64_reference_from_the_same_parameters(kind, setup):
    model = build(kind, setup)
    tracker = Tracker(model)
    train(model, 5, LR[kind], tracker)
    before = reference(model, kind)  # dW at step 5, for turn_deg
    train(model, 1, LR[kind], tracker)
    tracker.close()
    after = reference(model, kind)
    rows = {r["layer"]: r for r in tracker.rows if r["step"] == 6}
    assert set(rows) == set(LAYERS)
    for name, ref in after.items():
        row = rows[name]
        assert row["delta_fro"] > 1e-2 * row["w_fro"]  # trained: the update is far from 0
        for column in COMPARED:
            if column in ref:
                assert row[column] == pytest.approx(ref[column], rel=REL), (name, column)
            elif column == "sigma_max" and kind == "dora":
                assert math.isnan(row[column])
        if "bound" in ref:
            assert row["bound_ratio"] == pytest.approx(ref["delta_fro"] / ref["bound"], rel=REL)
            assert row["bound_ratio"] <= 1 + 1e-6
        dW1, dW2 = before[name]["dW"], ref["dW"]
        cos = (dW1 * dW2).sum() / (torch.linalg.norm(dW1) * torch.linalg.norm(dW2))
        assert row["turn_deg"] == pytest.approx(math.degrees(math.acos(cos.item())), rel=1e-3, abs=1e-3), name
    for r in tracker.rows:  # the tracker's own numbers are float32 or better whatever the model's dtype
        assert isinstance(r["delta_fro"], float)


@pytest.mark.parametrize("kind", ["delora", "ours-peft"])
def test_rank_one_tight_bound_is_never_exceeded_on_a_bf16_model(kind):
    """r = 1: ||dW||_F equals the tight bound exactly, so rounding decides which side the ratio falls.
    Built in bf16 and cast after, a third of the rows read above 1 (up to 1.0116); cast first, never."""
    model = build(kind, "all-bf16", r=1)
    tracker = Tracker(model)
    train(model, 20, LR[kind], tracker)
    ratios = [r["bound_ratio"] for r in tracker.rows if r["step"] > 0]  # step 0: dW = 0, ratio 0
    assert len(ratios) == 40 and max(ratios) <= 1 + 1e-6
    assert min(ratios) >= 1 - 1e-5  # and it is tight


def test_lambda_learns_at_a_tenth_of_the_default_rate_on_a_bf16_model():
    """In bf16, lambda = 5 has a spacing of 1/32: Adam's ~3e-3 steps round away. Ours keeps it in float32."""
    from delora_viz.training.methods import get_method

    torch.manual_seed(0)
    model = add_delora(Block().to(BF16), list(LAYERS), r=4, delora_lambda=5.0)
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    start = [layer.delora_lambda.item() for layer in delora_layers(model).values()]
    train(model, 3, 0.1 * get_method("delora").default_lr)
    moved = [layer.delora_lambda.item() for layer in delora_layers(model).values()]
    assert all(abs(a - b) > 1e-3 for a, b in zip(start, moved)), (start, moved)


def test_our_layer_runs_a_bf16_base_with_float32_adapters_and_matches_peft():
    torch.manual_seed(0)
    layer = add_delora(nn.Sequential(nn.Linear(32, 16)).to(BF16), ["0"], r=4, delora_lambda=2.0)[0]
    nn.init.normal_(layer.delora_B)
    x = torch.randn(3, 32).to(BF16)
    y = layer(x)
    assert y.dtype == BF16 and layer.bias is layer.base_layer.bias
    dW = paper_equation(
        *(t.detach().double() for t in (layer.delora_A, layer.delora_B, layer.delora_lambda)),
        layer.delora_w_norm.double(),
    )
    expected = x.double() @ (layer.base_layer.weight.double() + dW).T + layer.base_layer.bias.double()
    torch.testing.assert_close(y.double(), expected, rtol=2e-2, atol=2e-2)
