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
# # 01 · DeLoRA from scratch
#
# Notebook 00 ended with a promise: DeLoRA's update stays under a ceiling, and the ceiling is learned. Here we
# build DeLoRA term by term and find out exactly what sets the size of its update. The answer is subtler than
# "the strength parameter $\lambda$": $\lambda$ sets the scale and the ceiling, and the trained factors decide
# where below the ceiling the update sits.
#
# **What you will learn**
#
# - DeLoRA's update $\Delta W = \frac{\lambda}{r} B\,\Xi\,A\,\mathrm{diag}(w)$, term by term, on a layer you can
#   poke at, and why it is scaled by the norms of $W$'s columns.
# - What the normalisation does (each normalised rank-one term $b_i a_i^\top/(\|b_i\|\,\|a_i\|)$ has norm exactly 1,
#   so rescaling $A$ or $B$ changes nothing)
#   and what it does not do ($\lambda$ alone does not set $\|\Delta W\|$).
# - The ceiling $|\lambda| \max_j \|W_{:,j}\|$, with its two caveats: the paper's initialisation doubles it, and
#   $\lambda$ is trained, so it moves.
# - Why PEFT's DeLoRA jumps to its full size at the first training step, whatever the learning rate, while the
#   paper's initialisation grows smoothly.
#
# **Time:** ~20 min to read, ~1 min to run (full mode, 2 CPU cores). No GPU, no download.

# %% [markdown]
# `FAST` is set when `DELORA_VIZ_FAST=1` (the tests set it): fewer steps, so the notebook runs in seconds.
# What the maths guarantees is checked by an `assert` in both modes; what a run happened to show is printed in
# both and asserted in full mode only. The figures come from `delora_viz.plots` (functions that return a
# `matplotlib.figure.Figure`).

# %%
# %matplotlib inline
import os

import torch
from torch import nn

from delora_viz import DeLoRALinear
from delora_viz.plots import bound_explorer, sliders, toy_delora

FAST = os.environ.get("DELORA_VIZ_FAST") == "1"
STEPS = 100 if FAST else 300
_ = torch.manual_seed(0)

# %% [markdown]
# ## 1. The equation, term by term
#
# DeLoRA adapts a frozen weight $W$ ($m \times n$ = outputs x inputs, the `nn.Linear` layout) with
#
# $$\Delta W = \frac{\lambda}{r}\; B\; \Xi\; A\; \mathrm{diag}(w), \qquad
#   \Xi = \mathrm{diag}\Big(\frac{1}{\|b_i\|\,\|a_i\|}\Big), \qquad w_j = \|W_{:,j}\|$$
#
# | term | shape | what it is |
# |---|---|---|
# | $A$ | $r \times n$ | trained; $a_i$ is its row $i$ |
# | $B$ | $m \times r$ | trained; $b_i$ is its column $i$ |
# | $\Xi$ | $r \times r$ | divides each rank-one term $b_i a_i^\top$ by its own size |
# | $\lambda$ | scalar | trained, one per layer: the scale |
# | $w$ | $n$ | the norms of $W$'s columns, computed once and frozen |
#
# and the layer computes $y = x W^\top + b + x\,\Delta W^\top$. Compared with LoRA's $\frac{\alpha}{r} B A$
# (notebook 00) there are two new ingredients: the normalisation $\Xi$ and the column norms $w$.
#
# **Why $W$'s column norms?** In the authors' words (their
# [PEFT integration request, issue #2760](https://github.com/huggingface/peft/issues/2760); the
# [repository's README](https://github.com/ExplainableML/DeLoRA) says the same in short): *"layer-wise scaling of
# $\|W\|$, to adapt each update's norm to the original weights' norm (mimicking multiplicative finetuning)"*.
# A multiplicative update $W' = (I + E)\,W$ changes column $j$ by $E\,W_{:,j}$, a change that scales with that
# column's size; $\mathrm{diag}(w)$ gives DeLoRA's additive update the same property: column $j$ of $\Delta W$ is
# $w_j$ times a column of $\frac{\lambda}{r} B\,\Xi\,A$. The paper writes a single
# norm, $\Delta W = \frac{\lambda \|W\|}{r} B\,\Xi\,A$; PEFT (and this library) scale each input column by its own
# norm $w_j$ (PEFT's frozen buffer `delora_w_norm`).
#
# PEFT's initialisation puts $A$ at kaiming-uniform and $B = 0$, so $\Delta W = 0$ at the start. Below, a layer
# with $B$ set to random values (as if it had trained a little), and its update rebuilt by hand:

# %%
base = nn.Linear(64, 48)  # n = 64 inputs, m = 48 outputs
layer = DeLoRALinear(base, r=4, delora_lambda=2.0, init="peft")
print(layer)
assert layer.delta_weight().abs().max().item() == 0.0  # B = 0: the update starts at zero
with torch.no_grad():
    layer.delora_B.normal_()  # pretend some training happened

W = layer.weight.detach()  # (m, n) frozen
A, B = layer.delora_A.detach(), layer.delora_B.detach()  # (r, n), (m, r)
lam, r = layer.delora_lambda.detach(), A.shape[0]
w = W.norm(dim=0)  # (n,) column norms ||W[:, j]||
Xi = torch.diag(1 / (B.norm(dim=0) * A.norm(dim=1)))  # (r, r)  1 / (||b_i|| ||a_i||)
dW = (lam / r) * B @ Xi @ A @ torch.diag(w)  # (m, n)

torch.testing.assert_close(dW, layer.delta_weight())  # the layer's update
x = torch.randn(5, 64)
torch.testing.assert_close(layer(x), x @ (W + dW).T + base.bias)  # the forward pass
print(f"||dW||_F = {dW.norm():.4f}, rank {torch.linalg.matrix_rank(dW).item()} (at most r = {r})")

# %% [markdown]
# ## 2. What the normalisation does, and what it does not do
#
# Write $\hat a_i = a_i / \|a_i\|$ and $\hat b_i = b_i / \|b_i\|$ (unit vectors). Then the update is a sum of $r$
# rank-one terms,
#
# $$\Delta W = \frac{\lambda}{r} \sum_{i=1}^r \underbrace{\hat b_i\,(\hat a_i \odot w)^\top}_{\text{term}_i},
#   \qquad \|\text{term}_i\|_F = \|\hat a_i \odot w\|.$$
#
# **What it does.** Each term is built from unit vectors, so rescaling a row of $A$ or a column of $B$ changes
# nothing: the factors carry only *directions*. Without the $w$ weighting every term would have norm exactly 1.
#
# **What it does not do.** It does *not* make $\lambda$ alone set the size of $\Delta W$. The $r$ terms are added
# as matrices, and their sum depends on how they point:
#
# * if they are mutually orthogonal, their norms add like the sides of a right angle:
#   $\|\Delta W\|_F = \frac{|\lambda|}{r}\sqrt{\sum_i \|\hat a_i \odot w\|^2}$, typically about
#   $|\lambda|\,\mathrm{rms}(w)/\sqrt r$;
# * if they all point the same way, their norms add up in full, which gives the triangle inequality's bound
#
# $$\|\Delta W\|_F \;\le\;
#   \underbrace{\frac{|\lambda|}{r}\sum_{i=1}^r \|\hat a_i \odot w\|}_{\text{tight bound (these directions)}}
#   \;\le\; \underbrace{|\lambda| \max_j w_j}_{\text{the ceiling}}.$$
#
# So $\lambda$ (with $w$) sets the **scale** and the **ceiling**; $A$ and $B$ set the **direction** of the update
# *and* **where its norm sits below the ceiling**: anywhere from near 0 (terms that cancel) through about
# $1/\sqrt r$ of the aligned sum (random, nearly orthogonal directions) up to all of it. The
# decoupling in the paper's title is that the strength has its own parameter and a hard limit, not that the
# factors cannot change the norm. The ceiling is reached: point every $a_i$ at $W$'s largest column and make
# every $b_i$ the same vector.

# %%
rescaled = DeLoRALinear(nn.Linear(64, 48), r=4, delora_lambda=2.0)
with torch.no_grad():
    rescaled.delora_B.normal_()
    before = rescaled.delta_weight()
    rescaled.delora_A.mul_(torch.tensor([[0.01], [1.0], [7.0], [300.0]]))  # one factor per row of A
    rescaled.delora_B.mul_(torch.tensor([[5.0, 0.2, 1.0, 40.0]]))  # one factor per column of B
torch.testing.assert_close(rescaled.delta_weight(), before)  # rescaling A or B: no change

worst = DeLoRALinear(nn.Linear(64, 48), r=4, delora_lambda=2.0)
j_star = int(worst.delora_w_norm.argmax())
with torch.no_grad():
    worst.delora_A.zero_()
    worst.delora_A[:, j_star] = 1.0  # every a_i points at W's largest column
    worst.delora_B.copy_(torch.randn(48, 1).expand(48, 4))  # every b_i the same
ratio = (worst.delta_weight().norm() / worst.bound_loose()).item()
print(f"aligned terms: ||dW|| / ceiling = {ratio:.6f}")
assert abs(ratio - 1) < 1e-5  # the ceiling is attained: it cannot be improved

# %% [markdown]
# ### See it: the bound explorer
#
# Move the sliders: $\lambda$, the rank $r$, the initialisation, and the **alignment** of the factors, from random
# directions (0) to all terms aligned with $W$'s largest column (1). Left: $\|\Delta W\|_F$ (solid), the tight bound
# for these directions (dashed) and the ceiling (dotted) over the whole range of alignments, the current one a
# dot. Right: how the $r$ unit terms add up at that alignment, between "mutually orthogonal" and "all aligned".
# The axes are fixed, so $\lambda = 8$ draws everything four times higher than $\lambda = 2$. Without a live
# kernel you see the figure at the default values; the small multiples below show four settings side by side.
#
# **What to notice:** at alignment 0 the update sits far below its ceiling; the alignment alone (with $\lambda$
# fixed) carries it all the way up.

# %% tags=["figure"]
import ipywidgets as widgets

torch.manual_seed(0)
uneven = nn.Linear(64, 48).weight.detach() * torch.logspace(-1, 0.5, 64)  # column norms spread over ~30x
sliders.show_interactive(
    lambda **values: bound_explorer.plot_bound_explorer(uneven, lambda_max=8.0, **values),
    delora_lambda=widgets.FloatSlider(value=2.0, min=0.5, max=8.0, step=0.5, description="lambda"),
    r=widgets.IntSlider(value=4, min=1, max=16, description="r"),
    init=widgets.Dropdown(options=["peft", "paper"], value="peft", description="init"),
    alignment=widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="alignment"),
)

# %% [markdown]
# The same picture at four slider settings (top: $\|\Delta W\|$ against the alignment; bottom: how the 4 terms add
# up). Going from the first column to the second multiplies $\lambda$ by 4: everything scales by 4. Going from the
# first to the third and fourth keeps $\lambda = 2$ and only aligns $A$ and $B$: the norm climbs from about a fifth of
# the ceiling to all of it.

# %% tags=["figure"]
bound_explorer.plot_bound_small_multiples(uneven, r=4)

# %%
table = bound_explorer.bound_table(uneven, 2.0, 4, "peft", alignments=[0.0, 0.6, 1.0]).set_index("alignment")
share = table["delta_fro"] / table["bound_loose"]
print("||dW|| / ceiling at alignment 0, 0.6, 1 (lambda = 2):", share.round(3).tolist())
assert (table["delta_fro"] <= table["bound"] * (1 + 1e-9)).all() and (table["bound"] <= table["bound_loose"]).all()
assert share.loc[0.0] < 0.3 and abs(share.loc[1.0] - 1) < 1e-9  # same lambda, the norm anywhere from low to the ceiling

# %% [markdown]
# With $r = 1$ there is only one term, nothing to align, and the tight bound is an equality: $\|\Delta W\|_F =
# |\lambda|\,\|\hat a_1 \odot w\|$ at every step. The app shows this on a real model, lesson **"Rank 1: the bound
# is tight"** (http://127.0.0.1:7860/?preset=rank-1-tight-bound).
#
# Two caveats on the ceiling, each met below:
#
# 1. **It moves.** $\lambda$ is a trained parameter; nothing keeps it at its starting value.
# 2. **The paper's initialisation doubles it.** That initialisation subtracts a frozen copy of the starting term
#    (section 4), whose norm is itself up to $|\lambda| \max_j w_j$, so its ceiling is $2|\lambda| \max_j w_j$.

# %% [markdown]
# ## 3. Training moves the norm, even with $\lambda$ frozen
#
# If $\lambda$ alone set the strength, freezing $\lambda$ would freeze $\|\Delta W\|$. It does not. We train a
# `DeLoRALinear` on the toy layer of notebook 00 (a frozen $64 \times 64$ weight must learn a rank-2 change of
# size $0.25\,\|W\|_F$; $r = 4$, $\lambda$ starting at 1, AdamW at 0.01), twice: once with $\lambda$ frozen
# (`requires_grad_(False)`), once with $\lambda$ trained as usual.
#
# **What to notice:** in the left panel, the frozen run's ceiling (dashed blue) is flat while its $\|\Delta W\|$
# (solid blue) still climbs below it; the learned run's ceiling (dashed orange) rises. The right panel divides
# each update by its own ceiling.

# %%
runs = toy_delora.toy_delora_runs([dict(lr=1e-2, freeze_lambda=True), dict(lr=1e-2)], steps=STEPS)
frozen, learned = runs[runs["freeze_lambda"]], runs[~runs["freeze_lambda"]]
f1, fN = frozen[frozen["step"] == 1].iloc[0], frozen.iloc[-1]
l0, lN = learned.iloc[0], learned.iloc[-1]
print(f"lambda frozen : ||dW|| {f1['delta_fro']:.3f} (step 1) -> {fN['delta_fro']:.3f} (step {STEPS}),"
      f" ceiling {f1['ceiling']:.3f} -> {fN['ceiling']:.3f}")  # fmt: skip
print(f"lambda learned: ||dW|| {learned.iloc[1]['delta_fro']:.3f} -> {lN['delta_fro']:.3f},"
      f" ceiling {l0['ceiling']:.3f} -> {lN['ceiling']:.3f},"
      f" lambda {l0['lambda']:.2f} -> {lN['lambda']:.2f}")  # fmt: skip
share = frozen["delta_fro"] / frozen["ceiling"]
print(f"share of the ceiling, lambda frozen: {share.iloc[1]:.2f} (step 1) -> {share.iloc[-1]:.2f}")
assert frozen["ceiling"].nunique() == 1  # lambda frozen: the ceiling cannot move
assert (runs["delta_fro"] <= runs["ceiling"] * (1 + 1e-9)).all()  # and no update passes its ceiling
if not FAST:  # empirical: what this run showed
    assert fN["delta_fro"] > 1.3 * f1["delta_fro"]  # the norm moved by a third or more under a fixed ceiling
    assert lN["ceiling"] > 2 * l0["ceiling"]  # lambda learned: the ceiling more than doubled

# %% tags=["figure"]
toy_delora.plot_lambda_frozen_vs_learned(runs)

# %% [markdown]
# With $\lambda$ frozen, $\|\Delta W\|$ grows by about 40% after the first step, from about 0.4 to about 0.6 of
# its fixed ceiling: $A$ and $B$ turned *and* aligned their terms. With $\lambda$ learned the share of the ceiling
# follows almost the same path, but the ceiling itself rises (here about threefold), and the update with it: the
# toy task asks for a change larger than the first ceiling. On a real model the effect is the same
# (a measurement made for this project, not rerun here: on one MiniLM layer, training with $\lambda$ frozen moved
# $\|\Delta W\|$ from 0.093 to 0.212 under a ceiling of 0.264). The app shows it live, lesson
# **"λ fixed against learned"** (http://127.0.0.1:7860/?preset=lambda-fixed-vs-learned).

# %% [markdown]
# ## 4. Two initialisations: the jump at step 1
#
# Both start at $\Delta W = 0$, in different ways:
#
# * **PEFT** (`init="peft"`, PEFT's `DeloraConfig`): $A$ kaiming-uniform, $B = 0$.
# * **Paper** (`init="paper"`, Eq. 5-9): $A$ and $B$ both kaiming-uniform, and a frozen copy $(A_0, B_0)$ of them
#   subtracted: $\Delta W = \frac{\lambda}{r}(B\,\Xi A - B_0\,\Xi_0 A_0)\,\mathrm{diag}(w)$. The subtracted term has
#   its own norm of up to $|\lambda|\max_j w_j$, hence the doubled ceiling.
#
# With $B = 0$ the normalisation has nothing to normalise (PEFT clamps $\|b_i\|$ at $10^{-4}$ to avoid dividing by
# zero). The first optimizer step gives each column of $B$ *some* direction, and $\Xi$ divides its size away: every
# term has its full size at once. So PEFT's update **jumps** to about $|\lambda|\,\mathrm{rms}(w)/\sqrt r$ (the
# orthogonal-terms size of section 2) after one step, *whatever the learning rate*, as long as that step moves
# $\|b_i\|$ past the $10^{-4}$ clamp. With the paper's init, $B$ and $B_0$ start equal and part slowly, so
# $\Delta W$ grows in proportion to the learning rate.
#
# **What to notice:** the solid orange lines (PEFT init, three learning rates spanning a hundredfold) start on the
# dotted "typical size" line at step 1; the dashed blue ones (paper init) start a decade apart from each other,
# one per learning rate.

# %%
starts = toy_delora.toy_delora_runs(
    [dict(init=init, lr=lr) for init in ("peft", "paper") for lr in (1e-4, 1e-3, 1e-2)], steps=30
)
one = starts[starts["step"] == 1].set_index(["init", "lr"])["delta_fro"]
typical = starts["typical"].iloc[0]
print(one.unstack("init").to_string(float_format="%.4f"))
print(f"typical size |lambda| rms(w) / sqrt(r) = {typical:.4f}")
print(f"after one step: PEFT init spread over the rates {one['peft'].max() / one['peft'].min():.4f}x,"
      f" paper init {one['paper'].max() / one['paper'].min():.0f}x")  # fmt: skip
assert one["peft"].max() / one["peft"].min() < 1 + 1e-6  # the same jump for every rate (all past the clamp)
assert one["paper"].max() / one["paper"].min() > 50  # the paper init's first step follows the rate
assert one["peft"].min() / one["paper"].min() > 100  # at the smallest rate, PEFT's step is hundreds of times larger
assert 0.5 < one["peft"].iloc[0] / typical < 2  # about the typical size

# %% tags=["figure"]
toy_delora.plot_first_steps(starts)

# %% [markdown]
# The PEFT init lands on the typical size at step 1 for all three rates and then moves slowly; the paper init
# starts several hundred times lower at the smallest rate and takes its time. Neither is wrong: the jump means that
# with PEFT's init the learning rate does not set how large the update is after the first step; the typical size
# $|\lambda|\,\mathrm{rms}(w)/\sqrt r$ does, with the random directions of $A$ and $B$. The app's
# lesson **"PEFT's init against the paper's"** (http://127.0.0.1:7860/?preset=peft-vs-paper-init) shows both on
# a real model.
#
# **A note on the authors' code.** In the original implementation
# ([`peft/src/peft/tuners/delora.py`](https://github.com/ExplainableML/DeLoRA/blob/2dd91e18fc440b0f10b7a894550d35965564a80b/peft/src/peft/tuners/delora.py#L327-L328),
# lines 327-328, in `Linear.reset_parameters`), the frozen copy is made by assigning storage,
# `self.frozen_C.data = self.delora_A.weight.data` (and likewise `frozen_D` for `B`). After such an assignment the
# "frozen" tensor *is* the trained one: every optimizer step moves both, so $B\,\Xi A - B_0\,\Xi_0 A_0$ stays exactly 0
# for as long as they share storage, which on the CPU is for ever. The cell below shows the mechanism with two plain
# parameters, and that `DeLoRALinear` clones instead.

# %%
trained = nn.Parameter(torch.randn(3))
copy_by_data = nn.Parameter(torch.empty(3), requires_grad=False)
copy_by_data.data = trained.data  # the assignment used for the frozen copy: shares storage
opt = torch.optim.SGD([trained], lr=0.1)
trained.sum().backward()
opt.step()
print("after a step, the 'frozen' copy equals the trained tensor:", torch.equal(copy_by_data, trained))
assert torch.equal(copy_by_data, trained)  # it moved with it: their difference stays 0

paper = DeLoRALinear(nn.Linear(64, 48), r=4, init="paper")
assert paper.delora_A0.data_ptr() != paper.delora_A.data_ptr()  # our frozen copy has its own storage

# %% [markdown]
# ## 5. Exercise: predict, then run
#
# A `DeLoRALinear` with the PEFT init, rank $r = 16$ and $\lambda = 1$ on the toy layer (64 inputs, column norms
# $w_j$ close to 1). **Predict:** after ONE AdamW step, how large is $\|\Delta W\|_F$ at learning rate $10^{-4}$? At
# $10^{-2}$? Use the "typical size" of section 2.
#
# <details><summary>Answer</summary>
#
# About $|\lambda|\,\mathrm{rms}(w)/\sqrt r \approx 1 \cdot 1 / \sqrt{16} = 0.25$, and the same at both rates: after
# one step every column of $B$ has a direction (each of its 64 entries moved by about the learning rate, so
# $\|b_i\| \approx 8 \times$ the rate, past the $10^{-4}$ clamp), the normalisation removes its size, and 16 nearly
# orthogonal unit terms add up to about $\sqrt{16}$ times one term, divided by $r = 16$.
#
# </details>

# %%
guess = toy_delora.toy_delora_runs([dict(lr=1e-4), dict(lr=1e-2)], steps=1, r=16, delora_lambda=1.0)
after = guess[guess["step"] == 1]
print(after[["lr", "delta_fro", "typical"]].to_string(index=False, float_format="%.4f"))
assert abs(after["delta_fro"].iloc[0] / after["delta_fro"].iloc[1] - 1) < 1e-6  # the same at both rates
assert (after["delta_fro"] / after["typical"]).between(0.5, 2).all()  # about lambda rms(w) / sqrt(r)

# %% [markdown]
# ## 6. The same layer as PEFT's
#
# `DeLoRALinear(init="peft")` is PEFT's `DeloraLinear`, written once. One check here: copy our factors into a PEFT
# model and compare the update and the outputs in float64. (Training trajectories, gradients and adapter files are
# compared in the test suite and in the appendix notebook `99_appendix_internals`.)

# %%
import copy

from peft import DeloraConfig, get_peft_model

plain = nn.Sequential(nn.Linear(24, 16)).double()
theirs = get_peft_model(copy.deepcopy(plain), DeloraConfig(r=4, delora_lambda=3.0, target_modules=["0"])).double()
ours = DeLoRALinear(plain[0], r=4, delora_lambda=3.0)  # float64 like its base layer
peft_layer = theirs.base_model.model[0]
with torch.no_grad():
    ours.delora_B.normal_()  # a non-zero update
    for key in ("delora_A", "delora_B", "delora_lambda"):
        getattr(peft_layer, key)["default"].copy_(getattr(ours, key))
assert torch.equal(peft_layer.delora_w_norm["default"], ours.delora_w_norm)  # the same frozen column norms
x = torch.randn(8, 24, dtype=torch.float64)
torch.testing.assert_close(peft_layer.get_delta_weight("default"), ours.delta_weight(), rtol=1e-12, atol=1e-14)
torch.testing.assert_close(theirs(x), ours(x), rtol=1e-12, atol=1e-14)
print("update and outputs equal PEFT's DeloraLinear (float64)")

# %% [markdown]
# ## Takeaways
#
# - DeLoRA's update is $\frac{\lambda}{r}$ times a sum of $r$ rank-one terms, each built from unit vectors and weighted
#   by $W$'s column norms: rescaling $A$ or $B$ changes nothing.
# - $\lambda$ (with $w$) sets the scale and the ceiling $|\lambda| \max_j \|W_{:,j}\|$; $A$ and $B$ set the direction
#   *and* where the norm sits below the ceiling, from about $|\lambda|\,\mathrm{rms}(w)/\sqrt r$ (random directions)
#   up to the ceiling (all terms aligned).
# - The ceiling moves when $\lambda$ learns, and the paper's initialisation doubles it ($2|\lambda| \max_j w_j$).
# - PEFT's zero-initialised $B$ makes the update jump to about $|\lambda|\,\mathrm{rms}(w)/\sqrt r$ after one step,
#   whatever the learning rate; the paper's initialisation grows with the rate.
#
# ## Where next
#
# `02_geometry_of_an_update.ipynb` looks at these updates as geometry: what "angle" and "strength" mean in the
# paper's title, and how LoRA's, DoRA's and DeLoRA's updates compare.
#
# ## References
#
# - M. Bini, L. Girrbach, Z. Akata. *Decoupling Angles and Strength in Low-rank Adaptation* (DeLoRA), ICLR 2025.
#   [arXiv:2503.18225](https://arxiv.org/abs/2503.18225); code: https://github.com/ExplainableML/DeLoRA
# - PEFT's `DeloraConfig`: https://huggingface.co/docs/peft/package_reference/delora; the integration request:
#   https://github.com/huggingface/peft/issues/2760
# - E. Hu et al. *LoRA: Low-Rank Adaptation of Large Language Models*, ICLR 2022.
#   [arXiv:2106.09685](https://arxiv.org/abs/2106.09685)
# - S.-Y. Liu et al. *DoRA: Weight-Decomposed Low-Rank Adaptation*, ICML 2024.
#   [arXiv:2402.09353](https://arxiv.org/abs/2402.09353)
# - M. Bini, K. Roth, Z. Akata, A. Khoreva. *ETHER: Efficient Finetuning of Large-Scale Models with Hyperplane
#   Reflections*, ICML 2024. [arXiv:2405.20271](https://arxiv.org/abs/2405.20271)
