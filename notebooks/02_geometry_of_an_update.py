# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     notebook_metadata_filter: kernelspec,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · The geometry of an update
#
# **What you will learn**
#
# 1. How big LoRA, DoRA and DeLoRA updates get, and which way they point, on one real pretrained
#    layer (the query projection of all-MiniLM-L6-v2's first block, 384 × 384).
# 2. Why the closed forms in `delora_viz.delora.geometry` give the same numbers as the dense matrices, and
#    what they save (timed here on a 4096 × 4096 layer).
# 3. Why angles are computed with `atan2` rather than `arccos`.
# 4. The angle-vs-strength picture: every method's update is nearly orthogonal to $W$; what
#    differs is how far it may go.
#
# **Time:** under a minute in fast mode, about two minutes in full mode, on 2 CPU cores.

# %% [markdown]
# `FAST` is set when the environment variable `DELORA_VIZ_FAST=1` (the tests set it): fewer steps
# and smaller sizes, so the notebook runs in CI in seconds. Leave it unset for the real picture.
# `%matplotlib inline` lets Jupyter draw the `matplotlib.figure.Figure` objects that
# `delora_viz.plots.figures` returns (they never touch pyplot's global state).

# %%
# %matplotlib inline
import copy
import math
import os
import time
from collections import OrderedDict

import pandas as pd
import torch
from IPython.display import display
from torch import nn

from delora_viz import LowRankUpdate, Tracker, dora_update_stats, find_adapters, plots, singular_values, update_geometry
from delora_viz.delora.geometry import fro_norm
from delora_viz.instruments.dense import dense_geometry
from delora_viz.training.methods import METHODS, build_adapted_model
from delora_viz.training.models import load_model

FAST = os.environ.get("DELORA_VIZ_FAST") == "1"
_ = torch.manual_seed(0)

# %% [markdown]
# ## 1. Three updates on one layer
#
# We take one pretrained weight $W$ and let each method fit the same small task: reproduce the
# layer's outputs after a random rank-4 change $E$ of 10% of $\|W\|_F$. Each method runs through PEFT
# (`build_adapted_model` builds the `LoraConfig` / `DeloraConfig`) at its recommended learning rate,
# rank 8, and DeLoRA's $\lambda = 5$; a `Tracker` records the geometry after every step.

# %%
minilm = load_model("minilm")
query = minilm.model.get_submodule("bert.encoder.layer.0.attention.self.query")
W = query.weight.detach().clone()  # (384, 384), frozen
m, n = W.shape

E = torch.randn(m, 4) @ torch.randn(4, n)
E = E / E.norm() * 0.1 * W.norm()  # the change to learn: rank 4, 10% of ||W||_F
X = 0.5 * torch.randn(2048, n)
Y = X @ (W + E).T + query.bias.detach()
STEPS = 40 if FAST else 200


def fit(method):
    """Adapt a copy of the layer with `method` and fit the target; return (model, tracker rows)."""
    torch.manual_seed(0)
    one_layer = nn.Sequential(OrderedDict(proj=copy.deepcopy(query)))
    model = build_adapted_model(one_layer, method, ["proj"], r=8, delora_lambda=5.0)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=METHODS[method].default_lr)
    batches = torch.Generator().manual_seed(0)
    with Tracker(model).watch(opt) as tracker:  # records step 0, then after every opt.step()
        for _ in range(STEPS):
            idx = torch.randint(0, len(X), (64,), generator=batches)
            loss = (model(X[idx]) - Y[idx]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model, tracker.to_dataframe()


models, frames = {}, {}
for method in ("lora", "dora", "delora"):
    models[method], frames[method] = fit(method)
history = pd.concat(frames.values(), ignore_index=True)
last = history[history["step"] == STEPS].set_index("method")
print(f"||E||_F = {E.norm():.3f}   ||W||_F = {W.norm():.3f}")
last[["delta_fro", "rel_delta", "angle_delta_w_deg", "angle_w_prime_deg", "bound", "lambda"]].round(3)

# %% [markdown]
# DeLoRA's update jumps to most of its final size at the first step (PEFT's initialisation, as in
# notebook 01), then $\lambda$ adjusts it; LoRA's and DoRA's grow step by step from zero. Only DeLoRA
# has a bound to draw (dashed).

# %%
assert (frames["delora"]["delta_fro"] <= frames["delora"]["bound"] * (1 + 1e-5)).all()  # DeLoRA: bounded
at = lambda method, step: frames[method].set_index("step").loc[step, "delta_fro"]
print("||dW|| after step 1 / after the last step:", {k: round(at(k, 1) / at(k, STEPS), 3) for k in frames})
if not FAST:  # empirical (training dynamics): asserted in full mode
    assert at("delora", 1) > 0.5 * at("delora", STEPS)  # DeLoRA (PEFT init) jumps at step 1 ...
    assert at("lora", 1) < 0.2 * at("lora", STEPS) and at("dora", 1) < 0.2 * at("dora", STEPS)  # ... the others grow
assert last.loc[["lora", "dora"], "bound"].isna().all()  # LoRA and DoRA have no bound to report
plots.plot_update_norm(history, show_worst_layer=False)  # one layer: the mean is the layer


# %% [markdown]
# ## 2. Closed forms = dense matrices
#
# The tracker never builds the $m \times n$ update. LoRA's and DeLoRA's are low rank, so it keeps
# them as two thin factors $\Delta W = U V^\top$ ($k$ columns each: $U = sB,\ V = A^\top$ for LoRA;
# $U = B\,\mathrm{diag}(d),\ V = \mathrm{diag}(w) A^\top$ for DeLoRA) and uses
#
# $$\|\Delta W\|_F^2 = \textstyle\sum (U^\top U) \odot (V^\top V) \quad O((m+n)k^2), \qquad
#   \langle \Delta W, W\rangle_F = \sum U \odot (W V) \quad O(mnk)\ \text{time},\ O((m+n)k)\ \text{memory}.$$
#
# With $p = \langle \Delta W, W\rangle / \|W\|$ (the part of $\Delta W$ along $W$) and
# $q = \sqrt{\|\Delta W\|^2 - p^2}$ (the part orthogonal to it):
# $\angle(\Delta W, W) = \mathrm{atan2}(q, p)$ and $\angle(W + \Delta W, W) = \mathrm{atan2}(q, \|W\| + p)$.
#
# DoRA rescales whole output rows, $W' = \mathrm{diag}(g)(W + sBA)$, so its update is not low rank;
# it has a per-row closed form instead (`dora_update_stats`: three row sums
# $P_k = \|W_k\|^2$, $Q_k = \langle B_k, (WA^\top)_k \rangle$, $T_k = \langle (BAA^\top)_k, B_k\rangle$).
#
# First the formulas by hand on DeLoRA's factors, against the dense update that PEFT itself
# produces when it merges the adapter:


# %%
def dense_update(model):
    """W' - W, with W' from PEFT merging the adapter into a copy of the layer (m x n)."""
    return copy.deepcopy(model).merge_and_unload().proj.weight.detach() - W


U, V = (t.detach() for t in find_adapters(models["delora"])[0].update().__dict__.values())  # (m, k), (n, k)
norm_sq = ((U.T @ U) * (V.T @ V)).sum()  # ||U V^T||_F^2 from two k x k Gram matrices
inner = (U * (W @ V)).sum()  # <U V^T, W>_F through the thin product W V
dW = dense_update(models["delora"])
torch.testing.assert_close(norm_sq, dW.pow(2).sum(), rtol=1e-4, atol=1e-6)
torch.testing.assert_close(inner, (dW * W).sum(), rtol=1e-3, atol=1e-4)
print(
    f"||dW||^2: closed form {norm_sq:.6f}, dense {dW.pow(2).sum():.6f};  <dW, W>: {inner:.6f} vs {(dW * W).sum():.6f}"
)


# %% [markdown]
# Then every method's tracked numbers (closed forms, float32) against dense float64 formulas:


# %%
def deg(x):
    return math.degrees(float(x))


rows = []
for method, model in models.items():
    dW = dense_update(model).double()
    W64 = W.double()
    turned = W64 + dW
    dense = dict(
        delta_fro=dW.norm().item(),
        angle_delta_w_deg=deg(torch.arccos((dW * W64).sum() / (dW.norm() * W64.norm()))),
        angle_w_prime_deg=deg(torch.arccos((turned * W64).sum() / (turned.norm() * W64.norm()))),
    )
    for key, value in dense.items():
        rows.append(dict(method=method, metric=key, closed_form=last.loc[method, key], dense_float64=value))
check = pd.DataFrame(rows)
check["rel_error"] = (check["closed_form"] - check["dense_float64"]).abs() / check["dense_float64"].abs()
assert (check["rel_error"] < 1e-4).all(), check
display(check)

# %% [markdown]
# DoRA's per-row form against the dense matrix too, and the rank: LoRA's and DeLoRA's updates have
# at most $r = 8$ non-zero singular values (computed from the $k \times k$ core of two thin QRs), while
# DoRA's row rescaling $\mathrm{diag}(g - 1)\,W$ makes its update full rank:

# %%
view = find_adapters(models["dora"])[0]
geo, g, row_norms = dora_update_stats(W, view.update())
reference = dense_geometry(W.double(), dense_update(models["dora"]).double())
torch.testing.assert_close(geo.delta_fro.double(), reference.delta_fro, rtol=1e-4, atol=1e-6)

svals = {method: singular_values(find_adapters(models[method])[0].update()).detach() for method in ("lora", "delora")}
svals["dora"] = torch.linalg.svdvals(dense_update(models["dora"]).double())  # no low-rank form: dense SVD
ranks = {k: int((s > 1e-6 * s[0]).sum()) for k, s in svals.items()}
print("numerical rank of dW:", ranks)
assert ranks["lora"] <= 8 and ranks["delora"] <= 8 < ranks["dora"]
plots.plot_singular_values({k: s[:40] for k, s in svals.items()})


# %% [markdown]
# ### What the closed forms save
#
# On a 4096 × 4096 layer with $k = 16$ (an LLM-sized projection): first the accuracy of both
# float32 routes against a float64 dense computation, then the time, best of a few runs, of all the
# metrics from the factors, of the norm alone, and of the dense route (build the $m \times n$
# update, then norms and angles), all on one CPU thread.


# %%
def best_of(fn, repeats=5 if FAST else 10):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


M, K = 4096, 16
W_big = torch.randn(M, M) / M**0.5
big = LowRankUpdate(1e-2 * torch.randn(M, K), torch.randn(M, K))
exact = dense_geometry(W_big.double(), big.dense().double())  # float64, dense: the reference
routes = {"closed form, float32": update_geometry(W_big, big), "dense, float32": dense_geometry(W_big, big.dense())}
accuracy = pd.DataFrame(
    {
        route: {
            metric: abs(getattr(geo, metric).item() / getattr(exact, metric).item() - 1)
            for metric in ("delta_fro", "angle_delta_w", "angle_w_prime")
        }
        for route, geo in routes.items()
    }
)
assert (accuracy["closed form, float32"] < 1e-4).all()  # the closed form matches float64
print("relative error against dense float64:")
print(accuracy.to_string(float_format="%.1e"))
del exact

threads = torch.get_num_threads()
torch.set_num_threads(1)  # timed on one thread: the same for every route, and steadier on a busy machine
try:
    t_all = best_of(lambda: update_geometry(W_big, big))
    t_norm = best_of(lambda: fro_norm(big))
    t_dense = best_of(lambda: dense_geometry(W_big, big.dense()))
finally:
    torch.set_num_threads(threads)
timing = pd.DataFrame(
    {
        "seconds": [t_all, t_norm, t_dense],
        "extra memory (MiB)": [(2 * M * K + M * K) * 4 / 2**20, 2 * K * K * 4 / 2**20, M * M * 4 / 2**20],
    },
    index=["closed form, all metrics", "closed form, norm only", "dense"],
)
timing["x faster than dense"] = t_dense / timing["seconds"]
print(timing.round(4))
if not FAST:  # timings depend on the machine and its load: asserted in full mode only
    assert t_dense / t_all > 2 and t_dense / t_norm > 20

# %% [markdown]
# The norm needs only two $k \times k$ Gram matrices; the inner product with $W$ needs one thin
# product $WV$ ($O(mnk)$, the same order as building the update, but without writing an
# $m \times n$ result: the 64 MiB of the dense route become less than one). That is what lets the tracker
# measure every layer of a model after every step.
#
# ## 3. Why `atan2` and not `arccos`
#
# Early in training the update is tiny next to $W$. The angle by which it turns $W$ is then about
# $\|\Delta W\| / \|W\|$, but $\arccos$ reads it from a cosine of $1 - \theta^2/2$, and in float32
# $1 - \theta^2/2$ is just 1 once $\theta \lesssim 10^{-4}$. `atan2(q, ||W|| + p)` takes the
# orthogonal part $q$ directly and keeps full relative precision:

# %%
torch.manual_seed(1)
direction = LowRankUpdate(torch.randn(m, 8), torch.randn(n, 8))
rows = []
for size in (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6):
    scale = size * W.norm() / fro_norm(direction)
    tiny = LowRankUpdate(direction.U * scale, direction.V)  # ||dW|| / ||W|| = size, in float32
    truth = dense_geometry(W.double(), tiny.dense().double()).angle_w_prime.item()  # float64 reference
    turned = W + tiny.dense()
    by_arccos = torch.arccos(((turned * W).sum() / (turned.norm() * W.norm())).clamp(-1, 1)).item()
    by_atan2 = update_geometry(W, tiny).angle_w_prime.item()
    rows.append(
        dict(
            size=size,
            truth_rad=truth,
            arccos_fp32=by_arccos,
            atan2_fp32=by_atan2,
            arccos_rel_error=abs(by_arccos - truth) / truth,
            atan2_rel_error=abs(by_atan2 - truth) / truth,
        )
    )
angles = pd.DataFrame(rows)
assert (angles["atan2_rel_error"] < 1e-3).all()  # atan2: accurate at every size
assert (angles.query("size <= 1e-4")["arccos_rel_error"] > 0.5).all()  # arccos: wrong for small updates
display(angles.style.format("{:.3g}"))

# %% [markdown]
# (The closed form has its own limit, the other way round: when $\Delta W$ is nearly *parallel* to
# $W$, $q$ comes from a subtraction. Trained updates are nearly orthogonal to $W$, as the next
# section shows; for the rare parallel case, `Tracker(model, dtype=torch.float64)` measures in float64.)
#
# ## 4. Angle versus strength
#
# The paper's title in one picture: the polar angle is $\angle(\Delta W, W)$, the radius is
# $\|\Delta W\|_F / \|W\|_F$, each path runs from the first step to the last (dot), and the dashed arc
# is DeLoRA's bound on the radius. All three updates point almost exactly orthogonally to $W$ (within
# a few degrees of 90°: in $384^2$ dimensions almost every direction is); what distinguishes the
# methods is the radius, and only DeLoRA's has a ceiling, the arc set by $\lambda$.

# %%
final_angles = last["angle_delta_w_deg"]
print("angle(dW, W) at the last step, degrees:", final_angles.round(2).to_dict())
if not FAST:  # empirical: asserted in full mode
    assert (final_angles - 90).abs().max() < 5  # nearly orthogonal to W, for every method
delora = frames["delora"]
assert (delora["rel_delta"] <= delora["bound"] / delora["w_fro"] * (1 + 1e-5)).all()  # inside the arc
plots.plot_angle_strength(history)

# %%
plots.plot_angles(history)

# %% [markdown]
# ## 5. Try it: the angles as the update grows
#
# What an optimizer does to the factors is make them bigger. Take one set of random factors on the same
# pretrained layer and scale $B = \sigma \hat B$ ($\sigma = 1$: LoRA's update is as large as $W$ itself):
#
# * **LoRA** grows with $\sigma$ without limit: $W + \Delta W$ turns towards 90° away from $W$.
# * **DoRA** keeps each output row's length (its magnitudes are still at their start), so the rows of
#   $W'$ only rotate: $\|\Delta W\|$ saturates, and $\angle(\Delta W, W)$ opens beyond 90°, as a chord
#   of a circle does.
# * **DeLoRA** divides the factors' scale away: $\sigma$ changes nothing (a flat line), and only $\lambda$
#   moves the update, always under its bound (dashed).
#
# Move $\sigma$ (the vertical line; the title gives the angles there), $\lambda$ and $r$.
# (`explore.plot_angle_explorer`; `tests/test_explore.py` checks its numbers against PEFT's merged weights.)

# %%
import ipywidgets as widgets

from delora_viz.plots import explore

explore.show_interactive(
    lambda **values: explore.plot_angle_explorer(W, **values),
    sigma=widgets.FloatLogSlider(value=0.1, base=10, min=-3, max=1, step=0.1, description="sigma"),
    delora_lambda=widgets.FloatSlider(value=5.0, min=0.5, max=30.0, step=0.5, description="lambda"),
    r=widgets.IntSlider(value=8, min=1, max=32, description="r"),
)
sweep_defaults = explore.angle_table(W, r=8, delora_lambda=5.0)
assert sweep_defaults[["rel_delta", "angle_delta_w_deg", "angle_w_prime_deg"]].notna().all().all()
delora_sweep = sweep_defaults[sweep_defaults["method"] == "delora"]
assert (delora_sweep["rel_delta"] <= delora_sweep["bound_rel"] * (1 + 1e-9)).all()  # under the bound at any sigma

# %% [markdown]
# **Where next:** `03_tracking_your_training.ipynb` attaches the same tracker to your own training
# loop, to `transformers.Trainer` and to TRL's `SFTTrainer`.
