# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
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
# # 02 · The geometry of an update: angle and strength
#
# DeLoRA's paper is called *Decoupling Angles and Strength in Low-rank Adaptation*. This notebook
# draws what those two words mean for a weight update $\Delta W$, and shows the decoupling happen
# while three methods train on the same pretrained layer.
#
# **What you will learn**
#
# - How any update splits into a **strength** $\|\Delta W\|_F$ and a **direction** $\Delta W / \|\Delta W\|_F$
#   (for DeLoRA the paper's "angle" is the direction of the normalised $B\,\Xi A$), and how LoRA, DoRA and DeLoRA each
#   write their update in those terms.
# - What making the factors bigger does to each method, and why it does nothing to DeLoRA.
# - How to *see* the decoupling in training: DeLoRA's direction keeps turning while its strength stays flat
#   under its ceiling.
# - Why the angle between $\Delta W$ and $W$ sits near 90° for almost every update, and which wiggles are noise.
#
# **Time:** ~15 min to read, ~1 min to run (full mode, 2 CPU cores).
#
# The internals (the closed forms that measure all this without building $\Delta W$, their timing, why
# angles use `atan2`) are in the appendix, `99_appendix_internals`.

# %% [markdown]
# `FAST` is set when the environment variable `DELORA_VIZ_FAST=1` (the tests set it): fewer training steps,
# so the notebook runs in seconds; its numbers are then only a smoke test. Leave it unset for the real picture.
# Every figure comes from a function in `delora_viz.plots` that returns a matplotlib `Figure`.

# %%
# %matplotlib inline
import copy
import os
from collections import OrderedDict

import pandas as pd
import torch
from torch import nn

from delora_viz import Tracker
from delora_viz.plots import angle_explorer, figures, sliders
from delora_viz.training.methods import METHODS, build_adapted_model
from delora_viz.training.models import load_model

FAST = os.environ.get("DELORA_VIZ_FAST") == "1"
STEPS = 40 if FAST else 200
_ = torch.manual_seed(0)

# %% [markdown]
# ## 1. Three ways to write an update
#
# Take one pretrained weight $W$ of shape $m \times n$ (PyTorch's `nn.Linear` layout: out × in). Its
# **column norms** are $w_j = \|W_{:,j}\|$, one per input feature. Every method here learns two thin
# factors, $A$ ($r \times n$, rows $a_i$) and $B$ ($m \times r$, columns $b_i$), with a small rank $r$.
# Like any vector, an update has a length and a direction:
#
# $$\Delta W = \underbrace{\|\Delta W\|_F}_{\text{strength}}
#   \cdot \underbrace{\frac{\Delta W}{\|\Delta W\|_F}}_{\text{direction}} .$$
#
# - **LoRA** (Hu et al., 2021): $\Delta W = s\,BA$ with the fixed scaling $s = \alpha / r$. Both the
#   strength and the direction come from $B$ and $A$: double $B$ and the update doubles. Nothing limits it.
# - **DoRA** (Liu et al., 2024): $W' = \mathrm{diag}(g)\,(W + sBA)$ with $g_k = m_k / \|(W + sBA)_{k,:}\|$
#   for each output row $k$. A learned magnitude $m_k$ per row is split off from the direction of
#   $W + sBA$; the update $\Delta W = W' - W$ itself has no limit.
# - **DeLoRA** (Bini et al., 2025) normalises each rank-one term and puts the strength in one learned
#   scalar $\lambda$:
#
# $$\Delta W = \frac{\lambda}{r} \sum_{i=1}^{r} \frac{b_i\, a_i^\top}{\|b_i\|\,\|a_i\|}\,\mathrm{diag}(w)
#   \;=\; B\,\mathrm{diag}(d)\,A\,\mathrm{diag}(w), \qquad d_i = \frac{\lambda}{r\,\|a_i\|\,\|b_i\|}.$$
#
# The paper's "angle" is the direction of the normalised product $B \Xi A$ ($\Xi$ the diagonal matrix of
# $1 / (\|b_i\|\,\|a_i\|)$): rescaling $A$ or $B$ changes nothing. Each normalised term has norm 1, so the
# $r$ terms, weighted by $w$ and by $\lambda / r$, add up to at most the **ceiling**
#
# $$\|\Delta W\|_F \;\le\; |\lambda| \max_j w_j .$$
#
# So $\lambda$ (with $W$'s column norms) sets the scale and the ceiling, and the ceiling moves when $\lambda$
# learns. $A$ and $B$ set the direction *and* where the norm sits below the ceiling: $r$ unit terms pointing
# different ways partly cancel, $r$ aligned ones add up. (That is PEFT's variant, with $B = 0$ at the start.
# The paper's own initialisation subtracts a frozen copy of the starting term, and its ceiling is
# $2|\lambda| \max_j w_j$; notebook 01 draws both.)
#
# ### Try it: make the factors bigger
#
# An optimizer's steps make the factors larger. Below, $A$ and $\hat B$ are fixed random factors on a real
# pretrained layer (the query projection of all-MiniLM-L6-v2's first block, $384 \times 384$) and
# $B = \sigma \hat B$; at $\sigma = 1$ LoRA's update is as large as $W$ itself ($s = 2$). The left panel is
# the strength $\|\Delta W\|_F / \|W\|_F$ on a fixed log axis, with DeLoRA's ceiling dashed; the right panel is
# how far the adapted weight has turned away from $W$, $\angle(W + \Delta W, W)$, on a fixed 0-90° axis.
# Move $\sigma$, $\lambda$ and $r$: the bars move, the axes do not.

# %%
minilm = load_model("minilm")
query = minilm.model.get_submodule("bert.encoder.layer.0.attention.self.query")
W = query.weight.detach().clone()  # (384, 384), frozen
w = W.norm(dim=0)  # (384,) column norms w_j
print(f"||W||_F = {W.norm():.2f},  max_j w_j = {w.max():.3f},  rms of w_j = {w.pow(2).mean().sqrt():.3f}")

# %% tags=["figure"]
import ipywidgets as widgets

sliders.show_interactive(
    lambda **values: angle_explorer.plot_angle_explorer(W, **values),
    sigma=widgets.FloatLogSlider(value=0.1, base=10, min=-3, max=1, step=0.1, description="sigma"),
    delora_lambda=widgets.FloatSlider(value=5.0, min=0.5, max=30.0, step=0.5, description="lambda"),
    r=widgets.IntSlider(value=8, min=1, max=32, description="r"),
)

# %% [markdown]
# A static page cannot move a slider, so here is the same picture at four settings, side by side, on the
# same axes. Read it left to right: growing $\sigma$ a hundredfold grows LoRA's update a hundredfold and
# turns $W$ by 45° at $\sigma = 1$; DoRA's follows until its rows, which keep their length, can only rotate;
# DeLoRA's bar does not move with $\sigma$ at all. Only the last panel, where $\lambda$ goes from 5 to 20,
# moves DeLoRA's bar and its ceiling, by the same factor of 4. (Here the directions of $A$ and $B$ stay
# fixed; turning them moves DeLoRA's norm below the ceiling too, as exercise 2 at the end shows.)

# %% tags=["figure"]
angle_explorer.plot_angle_small_multiples(W, settings=((0.01, 5.0), (0.1, 5.0), (1.0, 5.0), (1.0, 20.0)), r=8)

# %% [markdown]
# The numbers behind the bars (float64 closed forms; `tests/test_explore.py` checks them against PEFT's own
# layers, merged):

# %%
table = angle_explorer.angle_table(W, r=8, delora_lambda=5.0, sigmas=[0.01, 0.1, 1.0])
wide = table.pivot(index="sigma", columns="method", values="rel_delta")
print("||dW|| / ||W|| at lambda = 5:\n", wide.round(4).to_string())
delora_rows = table[table["method"] == "delora"]
assert delora_rows["rel_delta"].max() / delora_rows["rel_delta"].min() < 1 + 1e-9  # sigma divides away
assert (delora_rows["rel_delta"] <= delora_rows["bound_rel"]).all()  # under the ceiling
x20 = (
    angle_explorer.angle_table(W, r=8, delora_lambda=20.0, sigmas=[1.0]).set_index("method").loc["delora", "rel_delta"]
)
assert abs(x20 / delora_rows["rel_delta"].iloc[0] - 4) < 1e-9  # lambda 5 -> 20: exactly 4x

# %% [markdown]
# ## 2. The decoupling, in training
#
# Bigger factors are only half the story: during training the factors also *turn*. To watch both, we need a
# way to measure how much the direction moves. The `Tracker` records, after every optimizer step and for
# every adapted layer, the strength $\|\Delta W\|_F$ and `turn_deg`: the angle between $\Delta W$ at this step
# and $\Delta W$ at the previous one. Summed over the steps, `turn_deg` says how far the direction has
# travelled (a direction that swings back and forth adds up too, so read it as distance, not displacement).
#
# The task: all three methods adapt the same layer so that its outputs match those of $W + E$, where $E$ is a
# random rank-4 change of 10% of $\|W\|_F$. Each runs through PEFT at rank $r = 8$ with its own default
# learning rate (LoRA and DoRA $2 \cdot 10^{-3}$, DeLoRA $3 \cdot 10^{-2}$), DeLoRA with $\lambda = 5$, on the
# same batches.

# %%
torch.manual_seed(0)
m, n = W.shape
E = torch.randn(m, 4) @ torch.randn(4, n)
E = E / E.norm() * 0.1 * W.norm()  # the change to learn: rank 4, 10% of ||W||_F
X = 0.5 * torch.randn(2048, n)
Y = X @ (W + E).T + query.bias.detach()


def fit(method):
    """Adapt a fresh copy of the layer with `method` and fit the target; returns (model, tracked rows)."""
    torch.manual_seed(0)
    one_layer = nn.Sequential(OrderedDict(proj=copy.deepcopy(query)))
    model = build_adapted_model(one_layer, method, ["proj"], r=8, delora_lambda=5.0)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=METHODS[method].default_lr)
    batches = torch.Generator().manual_seed(0)
    with Tracker(model).watch(opt) as tracker:  # records step 0 (dW = 0), then after every opt.step()
        for _ in range(STEPS):
            idx = torch.randint(0, len(X), (64,), generator=batches)
            loss = (model(X[idx]) - Y[idx]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()  # the tracker records here
    return model, tracker.to_dataframe()


models, frames = {}, {}
for method in ("lora", "dora", "delora"):
    models[method], frames[method] = fit(method)
history = pd.concat(frames.values(), ignore_index=True)
print(f"||E|| / ||W|| = {E.norm() / W.norm():.3f}; {STEPS} steps per method")

# %% [markdown]
# Two panels, one style per method (LoRA's and DoRA's lines lie almost on top of each other here, so each
# has its own dash and marker). **Left:** how far each direction has turned. **Right:** each strength, as a
# fraction of $\|W\|_F$, with DeLoRA's ceiling $|\lambda| \max_j w_j$ dashed.
#
# What to notice: all three keep turning, by a similar amount. LoRA's and DoRA's strength climbs step by
# step from zero while they turn: both come from the same factors. DeLoRA's strength is at its working size
# from the first step (PEFT's zero-initialised $B$ jumps in one step, as notebook 01 explains) and then stays
# nearly flat, well under its ceiling, while its direction goes on turning: that is the decoupling.

# %% tags=["figure"]
figures.plot_direction_and_strength(
    history, title="DeLoRA keeps turning at a flat strength; LoRA and DoRA grow while they turn"
)

# %% [markdown]
# The numbers behind the figure. For DeLoRA the flat quantity is $\|\Delta W\|_F$ over its ceiling. The
# ceiling itself moves because $\lambda$ learns: here $\lambda$ drifts down from 5 by about a fifth, and the
# ceiling with it (both printed).

# %%
table = figures.direction_strength_table(history).set_index(["method", "step"])
picks = [s for s in (1, 10, STEPS // 2, STEPS) if s <= STEPS]
summary = pd.DataFrame(
    {
        method: {
            **{f"turned by step {s} (deg)": table.loc[(method, s), "turned_deg"] for s in picks},
            **{f"||dW||/||W|| at step {s}": table.loc[(method, s), "rel_delta"] for s in picks},
        }
        for method in ("lora", "dora", "delora")
    }
)
print(summary.round(3).to_string())
delora = table.loc["delora"]
after_first = delora.loc[1:, "to_ceiling"]
lam = frames["delora"].set_index("step")["lambda"]
ceiling = delora["ceiling_rel"]
print(
    f"DeLoRA ||dW|| / ceiling over steps 1..{STEPS}: {after_first.min():.3f} to {after_first.max():.3f}; "
    f"lambda {lam.iloc[0]:.2f} -> {lam.iloc[-1]:.2f}; ceiling / ||W|| {ceiling.iloc[0]:.3f} -> {ceiling.iloc[-1]:.3f}"
)
assert (frames["delora"]["delta_fro"] <= frames["delora"]["bound_loose"] * (1 + 1e-5)).all()  # the ceiling holds
if not FAST:  # training dynamics: asserted in full mode only
    assert after_first.max() / after_first.min() < 1.5  # DeLoRA: flat strength relative to its ceiling ...
    assert delora.loc[STEPS, "turned_deg"] > 90  # ... while its direction turns by more than a right angle
    for method in ("lora", "dora"):  # LoRA and DoRA grow while they turn
        assert table.loc[(method, 10), "rel_delta"] < 0.3 * table.loc[(method, STEPS), "rel_delta"]

# %% [markdown]
# The app's results tab draws the same view for any run it trains (its "turn vs strength" figure).
#
# ## 3. The angle against $W$ says little on its own
#
# The tracker also records $\angle(\Delta W, W)$, the angle between the update and the pretrained weight.
# It is tempting to read it as "the angle", but in $384 \times 384 = 147{,}456$ dimensions almost every
# direction is nearly orthogonal to any given matrix. To know what counts as a signal, draw random rank-8
# directions $\Delta W = BA$ with Gaussian factors and see where their angle to this $W$ lands:

# %%
band = angle_explorer.random_angle_band(W, r=8, samples=100 if FAST else 400)
print(f"99% of random rank-8 directions: {band[0]:.2f} to {band[1]:.2f} degrees")
assert band[0] < 90 < band[1] and band[1] - band[0] < 2

# %% [markdown]
# The grey strip below is that band. The axis spans 45° to 135° on purpose: zoomed to one degree, the
# wiggles of a few tenths of a degree would look like trends. What to notice: all three methods sit at
# about 90°. LoRA and DeLoRA stay in or next to the strip. DoRA sits up to about two degrees above it,
# because its update also rescales the rows of $W$ (the $\mathrm{diag}(g)$ in its formula), which adds a
# small component along $W$: a degree or two, not a trend. The learned direction shows in `turn_deg`
# (section 2), not here.

# %% tags=["figure"]
figures.plot_angle_to_w(history, random_band=band)

# %%
final_angle = history[history["step"] == STEPS].set_index("method")["angle_delta_w_deg"]
print("angle(dW, W) at the last step, degrees:", final_angle.round(2).to_dict())
sized = history[history["rel_delta"] >= figures.NO_SIZE]  # dW of rounding size has no direction
largest = (sized["angle_delta_w_deg"] - 90).abs().groupby(sized["method"]).max()
print("largest distance from 90 degrees over training:", largest.round(2).to_dict())
if not FAST:  # empirical: asserted in full mode
    assert largest.max() < 3 and (final_angle - 90).abs().max() < 2

# %% [markdown]
# ## 4. Predict, then run
#
# **Exercise 1.** Take the trained DeLoRA layer and multiply its $B$ by 3. Then do the same to the trained
# LoRA layer. By what factor does each $\|\Delta W\|_F$ change, and does either direction change?
#
# <details><summary>Answer</summary>
#
# DeLoRA: by a factor of 1, nothing changes; each column $b_i$ is divided by its own norm $\|b_i\|$, so its
# scale cancels (as long as $\|b_i\|$ stays above PEFT's $10^{-4}$ clamp). LoRA: by a factor of exactly 3.
# Neither direction changes: a scaled matrix points the same way, so `turn_deg` between before and after is 0.
#
# </details>
#
# The check below edits a copy of each trained model in place: it multiplies the adapter's $B$ parameter by 3
# (PEFT names it `lora_B` for LoRA, `delora_B` for DeLoRA) and measures the layer before and after with a
# one-off `Tracker(model).step(0)`, which returns the layer's row of measurements without training anything.
# The trained models are left untouched, so the cells can run in any order.


# %%
def scale_B(model, factor):
    """A copy of `model` whose adapter's B is multiplied by `factor`."""
    scaled = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in scaled.named_parameters():
            if "lora_B.default" in name:  # LoRA's lora_B.default.weight, DeLoRA's delora_B.default
                p.mul_(factor)
    return scaled


def measure(model):
    return Tracker(model).step(0)[0]  # one row: the layer's geometry now


for method in ("delora", "lora"):
    before, after = measure(models[method]), measure(scale_B(models[method], 3.0))
    print(f"{method}: ||dW|| x {after['delta_fro'] / before['delta_fro']:.4f}")
    expected = 1.0 if method == "delora" else 3.0
    assert abs(after["delta_fro"] / before["delta_fro"] - expected) < 1e-4

# %% [markdown]
# **Exercise 2.** Keep $\lambda$ as trained, but make DeLoRA's $r = 8$ terms point the same way: copy the
# first row of $A$ into every row and the first column of $B$ into every column. Does $\|\Delta W\|_F$
# change? Up or down, and by roughly how much?
#
# <details><summary>Answer</summary>
#
# Up, by at most $\sqrt{r} \approx 2.8$ (here about 2.3: training had already aligned the terms a little). With the
# terms aligned,
# $\Delta W = \lambda\, \hat b_1 (\hat a_1 \odot w)^\top$ (hats: unit vectors): the $r$ unit
# terms add in phase instead of partly cancelling, so the norm goes from about
# somewhat above $|\lambda|\,\mathrm{rms}(w)/\sqrt{r}$ to about $|\lambda|\,\mathrm{rms}(w)$, still under the ceiling
# $|\lambda| \max_j w_j$. $\lambda$ did not change: $A$ and $B$ decide where the norm sits below the ceiling.
#
# </details>
#
# The check copies the first row of $A$ and the first column of $B$ into all the others (on a copy), measures
# again, and compares: same $\lambda$, different norm.


# %%
def align_terms(model):
    """A copy of a DeLoRA `model` whose r rank-one terms all equal the first one."""
    aligned = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in aligned.named_parameters():
            if name.endswith("delora_A.default"):
                p.copy_(p[:1].expand_as(p))  # (r, n): every row = a_1
            if name.endswith("delora_B.default"):
                p.copy_(p[:, :1].expand_as(p))  # (m, r): every column = b_1
    return aligned


trained, lined_up = measure(models["delora"]), measure(align_terms(models["delora"]))
ratio = lined_up["delta_fro"] / trained["delta_fro"]
print(
    f"||dW||: trained {trained['delta_fro']:.3f}, aligned {lined_up['delta_fro']:.3f} (x {ratio:.2f}); "
    f"ceiling {lined_up['bound_loose']:.3f}; lambda {trained['lambda']:.3f} -> {lined_up['lambda']:.3f}"
)
assert lined_up["lambda"] == trained["lambda"] and lined_up["delta_fro"] <= lined_up["bound_loose"] * (1 + 1e-6)
assert 1.5 < ratio < 5  # about sqrt(8) = 2.8

# %% [markdown]
# ## Takeaways
#
# - An update has a strength $\|\Delta W\|_F$ and a direction $\Delta W / \|\Delta W\|_F$; the paper's "angle"
#   is the direction of the normalised $B \Xi A$.
# - LoRA's strength and direction come from the same factors: bigger factors, bigger update, no limit. DoRA
#   learns a magnitude per row apart from the direction, but its update has no limit either.
# - DeLoRA's $\lambda$, with $W$'s column norms, sets the scale and the ceiling $|\lambda| \max_j w_j$ (which
#   moves as $\lambda$ learns); $A$ and $B$ set the direction and where the norm sits below the ceiling.
# - In training you see the decoupling as the direction turning (summed `turn_deg` grows) while
#   $\|\Delta W\|$ / ceiling stays flat.
# - $\angle(\Delta W, W) \approx 90°$ for almost every update in high dimension: differences of a few tenths of a
#   degree are noise.
#
# ## Where next
#
# `03_lora_dora_delora.ipynb` compares the three methods on a real classification task and repeats the
# paper's learning-rate robustness experiment in small. For how the tracker measures all of this without
# ever building an $m \times n$ matrix, and how to attach it to your own training, see
# `99_appendix_internals.ipynb`.
#
# ## References
#
# - M. Bini, L. Girrbach, Z. Akata. *Decoupling Angles and Strength in Low-rank Adaptation* (DeLoRA), ICLR 2025.
#   [arXiv:2503.18225](https://arxiv.org/abs/2503.18225); code: https://github.com/ExplainableML/DeLoRA
# - PEFT's `DeloraConfig`: https://huggingface.co/docs/peft/package_reference/delora
# - E. Hu et al. *LoRA: Low-Rank Adaptation of Large Language Models*.
#   [arXiv:2106.09685](https://arxiv.org/abs/2106.09685)
# - S.-Y. Liu et al. *DoRA: Weight-Decomposed Low-Rank Adaptation*. [arXiv:2402.09353](https://arxiv.org/abs/2402.09353)
# - M. Bini, K. Roth, Z. Akata, A. Khoreva. *ETHER: Efficient Finetuning of Large-Scale Models with Hyperplane
#   Reflections*, ICML 2024. [arXiv:2405.20271](https://arxiv.org/abs/2405.20271)
