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
# # 05 · Bring your own model
#
# **What you will learn**
#
# 1. The usual PEFT workflow with DeLoRA: swap `LoraConfig` for `DeloraConfig`, train (here with
#    `transformers.Trainer` and the tracker attached), save, reload with `PeftModel.from_pretrained`.
# 2. How to choose $\lambda$ for a model's width.
# 3. What `target_modules` and `lambda_pattern` (and the rank) do to the bound.
#
# **The model:** in full mode SmolLM2-135M-Instruct, the embedded preset
# (`delora_viz.training.models.load_model("smollm2")` converts its GGUF once, ~20 s, then loads from a cache); any
# Hugging Face causal LM id or local directory works the same way (Llama, Qwen, Mistral...: DeLoRA
# needs `nn.Linear` layers, so not GPT-2). In fast mode, a tiny random Llama built and saved right
# here, because training SmolLM2 on a CPU takes minutes.
#
# **Time:** under a minute in fast mode; about 5-10 minutes in full mode on 2 CPU cores.

# %% [markdown]
# `FAST` is set when the environment variable `DELORA_VIZ_FAST=1` (the tests set it): fewer steps
# and smaller sizes, so the notebook runs in CI in seconds. Leave it unset for the real picture.
# `%matplotlib inline` lets Jupyter draw the `matplotlib.figure.Figure` objects that
# `delora_viz.plots.figures` returns (they never touch pyplot's global state).

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
import pandas as pd
import torch
import transformers
from peft import DeloraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, DataCollatorForLanguageModeling, Trainer, TrainingArguments

from delora_viz import Tracker, TrackerCallback, load_history, plots
from delora_viz.training.data import load_data
from delora_viz.training.models import load_model

FAST = os.environ.get("DELORA_VIZ_FAST") == "1"
STEPS, BATCH, MAX_LEN = (10, 4, 48) if FAST else (60, 8, 64)
OUT = Path("runs") / "05_byom"
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
# DeLoRA's update has typical size $\|\Delta W\|_F \approx |\lambda|\,\mathrm{rms}(w)/\sqrt r$, and
# $\|W\|_F = \mathrm{rms}(w)\sqrt n$, so relative to the weight
#
# $$\frac{\|\Delta W\|_F}{\|W\|_F} \approx \frac{|\lambda|}{\sqrt{r\,n}}$$
#
# for a layer with $n$ inputs. PEFT's default $\lambda = 15$ moves a 4096-wide layer by about 8% at
# $r = 8$, but a 576-wide one (SmolLM2) by 22% and a 32-wide toy by 94%. So we pick $\lambda$ for a
# chosen relative size, 10% here: $\lambda = 0.1\sqrt{r\,n}$.

# %%
R = 8
LAMBDA = round(0.1 * (R * hidden) ** 0.5, 2)
print(
    f"r = {R}, n = {hidden}: lambda = {LAMBDA}  (PEFT's default 15 would mean ~{15 / (R * hidden) ** 0.5:.0%} of ||W||)"
)

# %% [markdown]
# ## 3. The workflow: swap the config, train, save, reload
#
# The one line that changes in a LoRA script is the config. The tracker rides along as a
# `TrackerCallback`; the data is the embedded chatterbot question/answer corpus.

# %%
# config = LoraConfig(r=R, lora_alpha=2 * R, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
config = DeloraConfig(r=R, delora_lambda=LAMBDA, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
model = get_peft_model(copy.deepcopy(base), config)
model.print_trainable_parameters()

qa = load_data(None, "causal_lm")  # "Question: ...\nAnswer: ..." pairs


def tokenized(texts):
    ds = datasets.Dataset.from_dict({"text": texts})
    return ds.map(lambda b: tok(b["text"], truncation=True, max_length=MAX_LEN), batched=True, remove_columns=["text"])


args = TrainingArguments(
    output_dir=str(OUT / "trainer"),
    max_steps=STEPS,
    per_device_train_batch_size=BATCH,
    per_device_eval_batch_size=BATCH,
    learning_rate=1e-2,
    logging_steps=max(1, STEPS // 5),
    report_to=[],
    save_strategy="no",
    use_cpu=True,
    disable_tqdm=True,
    seed=0,
)
trainer = Trainer(
    model=model,
    args=args,
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

# %%
history = load_history(OUT / "trainer" / "delora_history.jsonl")
assert (history["delta_fro"] <= history["bound"] * (1 + 1e-5)).all()
first = history[history["step"] == 1]["rel_delta"].mean()
print(f"||dW|| / ||W|| after the first step: {first:.3f}  (the rule of thumb: {LAMBDA / (R * hidden) ** 0.5:.3f})")
if not FAST:  # empirical: asserted in full mode, on a real pretrained model
    assert 0.5 < first / (LAMBDA / (R * hidden) ** 0.5) < 2  # the rule of thumb holds to within 2x
plots.plot_update_norm(history)

# %% [markdown]
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
# ## 4. `target_modules`, `lambda_pattern` and the bound
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
# layer came to its own bound, step by step.

# %%
plots.plot_bound_heatmap(history)

# %% [markdown]
# **That's the tour.** The Gradio app (`python app.py`) runs the same comparisons interactively on
# the embedded model, SmolLM2, or any model id or directory you type in.
