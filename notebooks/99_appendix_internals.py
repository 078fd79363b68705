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
# # 99 · Appendix: the internals, for the curious
#
# The tutorials measure every adapted layer after every optimizer step: the update's strength
# $\|\Delta W\|_F$, its angles, DeLoRA's bound. This appendix opens the instrument. None of it is needed to
# understand DeLoRA; it is what you read before trusting the numbers, or before attaching the tracker to
# your own training.
#
# **What you will learn**
#
# - How the tracker computes norms and angles of an update without ever building the $m \times n$ matrix,
#   how accurate that is and what it saves on a $4096 \times 4096$ layer.
# - Why angles are computed with `atan2` and not `arccos` (a figure, and an exercise).
# - That the tracked numbers equal those of PEFT's own merged weights.
# - How to attach the tracker to a plain PyTorch loop, to `transformers.Trainer` (with TensorBoard) and to
#   TRL's `SFTTrainer`, and how its history files work.
#
# **Time:** ~20 min to read, ~1 min to run (full mode, 2 CPU cores).
#
# Notation as in notebook 02: $W$ is $m \times n$ (out × in), $A$ is $r \times n$ with rows $a_i$, $B$ is
# $m \times r$ with columns $b_i$, $w_j = \|W_{:,j}\|$; LoRA's $\Delta W = sBA$ with $s = \alpha / r$ ($\alpha/\sqrt
# r$ for rsLoRA);
# DeLoRA's $\Delta W = B\,\mathrm{diag}(d)\,A\,\mathrm{diag}(w)$ with $d_i = \lambda / (r\,\|a_i\|\,\|b_i\|)$.

# %% [markdown]
# `FAST` is set when the environment variable `DELORA_VIZ_FAST=1` (the tests set it): fewer steps and a
# smaller timing layer, so the notebook runs in seconds; its numbers are then only a smoke test.

# %%
# %matplotlib inline
import copy
import os
import shutil
import warnings
from pathlib import Path

import pandas as pd
import torch
from IPython.display import display
from peft import DeloraConfig, get_peft_model

from delora_viz import Tracker, TrackerCallback, load_history, plots
from delora_viz.plots import internals
from delora_viz.training.data import load_data
from delora_viz.training.models import load_model

FAST = os.environ.get("DELORA_VIZ_FAST") == "1"
STEPS, BATCH, MAX_LEN = (3, 2, 32) if FAST else (30, 8, 64)
OUT = Path("runs") / "99_internals"  # everything this notebook writes
warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' deprecation notices
shutil.rmtree(OUT, ignore_errors=True)
_ = torch.manual_seed(0)

# %% [markdown]
# ## 1. Closed forms: the update without the matrix
#
# LoRA's and DeLoRA's updates are low rank, so the tracker keeps them as two thin factors,
# $\Delta W = U V^\top$ with $k$ columns each: $U = sB,\ V = A^\top$ for LoRA;
# $U = B\,\mathrm{diag}(d),\ V = \mathrm{diag}(w)\,A^\top$ for DeLoRA (the paper's initialisation stacks the
# frozen starting term beside it, $k = 2r$). Then
#
# $$\|\Delta W\|_F^2 = \textstyle\sum (U^\top U) \odot (V^\top V) \quad O((m+n)k^2), \qquad
#   \langle \Delta W, W\rangle_F = \sum U \odot (W V) \quad O(mnk)\ \text{time},\ O((m+n)k)\ \text{memory}.$$
#
# The first needs two $k \times k$ Gram matrices; the second one thin product $WV$. With
# $p = \langle \Delta W, W\rangle / \|W\|$ (the part of $\Delta W$ along $W$) and
# $q = \sqrt{\max(\|\Delta W\|^2 - p^2, 0)}$ (the part across it), the two angles are
# $\angle(\Delta W, W) = \mathrm{atan2}(q, p)$ and $\angle(W + \Delta W, W) = \mathrm{atan2}(q, \|W\| + p)$.
#
# DoRA rescales whole output rows, $W' = \mathrm{diag}(g)(W + sBA)$ with $g = m / c$ and
# $c_k = \|(W + sBA)_{k,:}\|$, so its update is not low rank. It has a per-row closed form instead, from three
# row sums: $P = \mathrm{rowsum}(W^2)$, $Q = \mathrm{rowsum}(B \odot (WA^\top))$,
# $T = \mathrm{rowsum}((BAA^\top) \odot B)$, with $c^2 = P + 2sQ + s^2T$.
#
# First by hand, on a random DeLoRA-shaped update of a $384 \times 384$ layer, against the dense matrix in
# float64:

# %%
torch.manual_seed(0)
m, n, r = 384, 384, 8
W = torch.randn(m, n) / n**0.5
A, B = torch.randn(r, n) / n**0.5, 0.1 * torch.randn(m, r)  # (r, n), (m, r)
w, lam = W.norm(dim=0), 5.0
d = lam / (r * A.norm(dim=1) * B.norm(dim=0))  # (r,) DeLoRA's normalisation
U, V = B * d, (A * w).T  # U = B diag(d): (m, r);  V = diag(w) A^T: (n, r)

norm_sq = ((U.T @ U) * (V.T @ V)).sum()  # ||U V^T||_F^2 from two r x r Gram matrices
inner = (U * (W @ V)).sum()  # <U V^T, W>_F through the thin product W V
dense = (U @ V.T).double()  # (m, n): what the closed forms avoid building
print(f"||dW||^2: closed form {norm_sq:.6f}, dense float64 {dense.pow(2).sum():.6f}")
print(f"<dW, W>:  closed form {inner:.6f}, dense float64 {(dense * W.double()).sum():.6f}")
torch.testing.assert_close(norm_sq.double(), dense.pow(2).sum(), rtol=1e-5, atol=0)
torch.testing.assert_close(inner.double(), (dense * W.double()).sum(), rtol=1e-4, atol=1e-5)

# %% [markdown]
# Both agree to float32's precision (about $10^{-7}$ relative), and the dense route needed a $384 \times 384$
# matrix that the closed forms never built.
#
# The library's `update_geometry` does exactly this for LoRA and DeLoRA, and `dora_update_stats` the per-row
# form for DoRA. The table below builds all three methods' updates from the same $A$ and $B$ (DoRA with its
# magnitudes at their start, the row norms of $W$, so each row keeps its length and only turns) and shows the
# relative difference between each closed-form metric, in float32, and the dense update in float64. Every
# entry should be at float32's rounding level, $10^{-8}$ to $10^{-7}$; anything near $10^{-4}$ would mean a
# wrong formula, not rounding.

# %%
check = internals.closed_form_check(W, A, B, delora_lambda=5.0, s=2.0)  # LoRA's s = alpha / r, alpha = 2r
assert (check["rel_error"] < 1e-4).all(), check
check.pivot(index="metric", columns="method", values="rel_error").map("{:.0e}".format)

# %% [markdown]
# ### What the closed forms save
#
# On a $4096 \times 4096$ layer with $k = 16$ (an LLM-sized projection; $512^2$ in fast mode): the time,
# best of a few runs on one thread, of all the metrics from the factors, of the norm alone, and of the dense
# route (build the $m \times n$ update, then norms and angles), and the extra memory of each. Before you run
# it, guess: which of the three will be cheapest, and by roughly how much? The norm needs only $k \times k$
# products, so it should not even notice that the layer has 16.7 million entries.


# %%
timing = internals.closed_form_timing(size=512 if FAST else 4096, k=16, repeats=2 if FAST else 7)
print(f"closed form vs dense float64: relative error {timing.attrs['rel_error']:.1e}")
assert timing.attrs["rel_error"] < 1e-4
print(timing.round(4).to_string())
if not FAST:  # timings depend on the machine and its load: asserted in full mode only
    assert timing["x faster than dense"].iloc[0] > 2 and timing["x faster than dense"].iloc[1] > 20

# %% [markdown]
# The norm alone is orders of magnitude cheaper: two $k \times k$ Grams. The inner product with $W$ costs a
# thin product $WV$, the same order of work as building the update, but it never writes an $m \times n$
# result (64 MiB at $4096^2$ in float32). That is what lets the tracker measure every layer after every step.
# The singular values of $\Delta W$ come the same way, from the $k \times k$ product of the $R$ factors of
# thin QRs of $U$ and $V$ (`delora_viz.singular_values`).
#
# ## 2. Why `atan2` and not `arccos`
#
# Early in training the update is tiny next to $W$, and the angle by which it turns $W$ is about
# $\|\Delta W\| / \|W\|$. `arccos` reads that angle from a cosine of $1 - \theta^2/2$; float32 keeps about
# seven digits, so once $\theta \lesssim 10^{-4}$ that cosine rounds to 1. `atan2(q, ||W|| + p)` takes the
# across part $q$ directly.
#
# **Exercise (predict, then run).** For an update with $\|\Delta W\| / \|W\| = 10^{-5}$ the true angle is
# about $10^{-5}$ radians. Is float32 `arccos` of the cosine within 50% of it? And `atan2`?
#
# <details><summary>Answer</summary>
#
# `arccos`: no. The cosine is $1 - 5 \cdot 10^{-11}$, which float32 stores as exactly 1 (or one rounding step
# below it), so `arccos` returns 0 or about $3 \cdot 10^{-4}$, the angle of one rounding step: wrong by 100%
# or by a factor of 30. `atan2`: yes, to about float32's precision, because $q$ is computed from the small
# quantities themselves.
#
# </details>

# %%
table = internals.angle_precision_table(W, sizes=(1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6))
at = table.set_index("size")
print(f"size 1e-5: truth {at.loc[1e-5, 'truth_rad']:.3e} rad, arccos {at.loc[1e-5, 'arccos_fp32']:.3e}, "
      f"atan2 {at.loc[1e-5, 'atan2_fp32']:.3e}")  # fmt: skip
assert at.loc[1e-5, "arccos_rel_error"] > 0.5  # arccos: wrong
assert at.loc[1e-5, "atan2_rel_error"] < 1e-3  # atan2: right

# %% [markdown]
# The whole sweep, from updates a tenth of $W$ down to a millionth. What to notice: the two agree for large
# updates; below $10^{-3}$ `arccos` falls into the grey strip (its answer is noise), while `atan2` stays
# accurate at every size.

# %% tags=["figure"]
assert (table["atan2_rel_error"] < 1e-3).all() and (table.query("size <= 1e-4")["arccos_rel_error"] > 0.5).all()
internals.plot_angle_precision(table)

# %% [markdown]
# (The closed form has its own weak spot, the other way round: when $\Delta W$ is nearly *parallel* to $W$,
# $q$ comes from a subtraction. Trained updates are nearly orthogonal to $W$ (notebook 02); for the rare
# parallel case `Tracker(model, dtype=torch.float64)` measures in float64.)
#
# ## 3. The tracker in a plain PyTorch loop
#
# The model is the embedded all-MiniLM-L6-v2 classifying BBC News topics, adapted with PEFT's
# `DeloraConfig` on the query and value projections of its 6 blocks (12 layers). `Tracker(model)` finds every
# adapted layer (PEFT LoRA, rsLoRA, DoRA, DeLoRA, or our `DeLoRALinear`); `.watch(optimizer)` registers a
# hook that records one row per layer after every `optimizer.step()`, without touching the loop. `path=`
# appends each record to a file as it goes, so a killed run keeps what it recorded; the `with` block removes
# the hook at the end.
#
# Three details of the loop below. The adapter and the new classification head get different learning rates
# (DeLoRA's parameters tolerate a large one; notebook 03 shows how far). The tracker records step 0, the
# start ($\Delta W = 0$), when `.watch()` attaches, so every curve starts at zero. And nothing in the loop
# mentions the tracker: the hook fires inside `opt.step()`, which is why the same object also works under
# `Trainer`, whose loop you do not write.

# %%
data = load_data(None, "classification")  # BBC News, embedded
minilm = load_model("minilm", num_labels=data.num_labels)
tok = minilm.tokenizer
print(f"{data.name}: {len(data.train_texts)} train texts, labels {data.label_names}")
print(f"{minilm.name}: adapt {minilm.default_target_modules}, train the new head {minilm.head_modules}")


def delora_model():
    """A fresh copy of MiniLM with PEFT's DeLoRA on the query/value projections."""
    config = DeloraConfig(
        r=8,
        delora_lambda=5,
        target_modules=minilm.default_target_modules,
        modules_to_save=minilm.head_modules,
        task_type="SEQ_CLS",
    )
    return get_peft_model(copy.deepcopy(minilm.model), config)


def batch(i):  # the i-th batch of BBC texts, tokenized, with their labels
    texts, labels = data.train_texts[i * BATCH : (i + 1) * BATCH], data.train_labels[i * BATCH : (i + 1) * BATCH]
    enc = tok(texts, truncation=True, max_length=MAX_LEN, padding=True, return_tensors="pt")
    return {**enc, "labels": torch.tensor(labels)}


model = delora_model()
adapter = [p for name, p in model.named_parameters() if p.requires_grad and "delora_" in name]
head = [p for name, p in model.named_parameters() if p.requires_grad and "delora_" not in name]
opt = torch.optim.AdamW([{"params": adapter, "lr": 3e-2}, {"params": head, "lr": 5e-3}])

model.train()
with Tracker(model, path=OUT / "plain_history.jsonl").watch(opt) as tracker:  # records step 0 first
    for i in range(STEPS):
        loss = model(**batch(i)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()  # <- the tracker records here
df = tracker.to_dataframe()
df[["step", "layer", "delta_fro", "bound", "bound_loose", "lambda", "angle_delta_w_deg", "turn_deg"]].tail(3)

# %% [markdown]
# One row per layer and step. The columns, all computed from the parameters in float32 (or float64 with
# `Tracker(model, dtype=torch.float64)`):
#
# | column | meaning |
# |---|---|
# | `step`, `layer`, `method`, `rank` | which record: optimizer step, module name, method, $r$ |
# | `delta_fro` | the strength $\|\Delta W\|_F$ |
# | `w_fro`, `rel_delta` | $\|W\|_F$ and $\|\Delta W\|_F / \|W\|_F$ |
# | `angle_delta_w_deg` | $\angle(\Delta W, W)$: near 90° for almost every update (notebook 02) |
# | `angle_w_prime_deg` | $\angle(W + \Delta W, W)$: how far the adapted weight has turned |
# | `turn_deg` | the angle between $\Delta W$ now and at the previous record: how far the direction still moves |
# | `bound` | DeLoRA's tight bound $(|\lambda|/r) \sum_i \|\hat a_i \odot w\|$, with $\hat a_i = a_i / \|a_i\|$ |
# | `bound_loose` | the ceiling $|\lambda| \max_j w_j$ ($2|\lambda| \max_j w_j$ with the paper's initialisation) |
# | `bound_ratio` | `delta_fro / bound` (1 = at the bound) |
# | `lambda` | DeLoRA's learned $\lambda$ |
# | `sigma_max` | the largest singular value of $\Delta W$ |
# | `dora_mag_drift` | DoRA only: how far its learned magnitudes moved from their start |
#
# LoRA and DoRA layers have no $\lambda$ and no bound: those columns are NaN for them. The figure: each
# layer's $\|\Delta W\|_F$ as a fraction of its tight bound, step by step. What to notice: every cell is
# below 1; step 0 is dark ($\Delta W = 0$) and step 1 is already at its working level: PEFT's
# zero-initialised $B$ jumps at step 1 (notebook 01). One layer, the last block's query projection, pushes
# closer to its bound than the others (`bound_ratio_max` in the summary above).

# %%
n_layers = df["layer"].nunique()
assert n_layers == 12  # query and value in each of MiniLM's 6 blocks
assert sorted(df["step"].unique()) == list(range(STEPS + 1)) and len(df) == (STEPS + 1) * n_layers
assert (df["delta_fro"] <= df["bound"] * (1 + 1e-5)).all() and (df["bound"] <= df["bound_loose"] * (1 + 1e-5)).all()
assert len(load_history(OUT / "plain_history.jsonl")) == len(df)  # written as it went
print(tracker.summary())  # mean / max over layers of the last record: ready for any logger

# %% tags=["figure"]
heatmap = plots.plot_bound_heatmap(df)
heatmap.axes[0].set_title("Every layer stays below its bound (1); from step 1 on it is at its working level")
display(heatmap)

# %% [markdown]
# ## 4. Parity with PEFT
#
# The tracker never asks PEFT for the update: it rebuilds it from the parameters. So check it against PEFT
# itself. `merge_and_unload()` folds each adapter into its base weight; the difference from the original
# weight, in float64, is the update PEFT applies. `internals.peft_parity` does that on a copy of the trained
# model for every adapted layer and compares the tracker's last row (its float32 closed form) with the dense
# float64 norm and angle of PEFT's own update. This is the strongest check in the package: it uses nothing of
# ours on the reference side, so a wrong formula, a wrong column norm or a misread PEFT parameter would all
# show up here. The test suite runs the same comparison against PEFT's merge for LoRA, DoRA and DeLoRA, and against
# our layer's own merge for the paper's initialisation (not in PEFT).

# %%
parity = internals.peft_parity(model, minilm.model, df)
print("largest relative difference, tracker (float32 closed form) vs PEFT's merge (float64 dense):")
print(parity.max().map("{:.1e}".format).to_string())
assert (parity < 1e-4).all().all()

# %% [markdown]
# ## 5. `transformers.Trainer` with `TrackerCallback`
#
# `Trainer` owns the loop, so there is no `opt.step()` of ours to hook by hand. Attach a callback instead:
# `TrackerCallback.attach(trainer, track_every=N)`. It records every N optimizer steps into
# `<output_dir>/delora_history.jsonl` and adds a summary (`delora/delta_fro_mean`, `delora/bound_ratio_max`,
# `delora/lambda_mean`, ...) to the Trainer's logs, which every `report_to` integration receives: here
# TensorBoard, next to the loss. The reporting callbacks run before the ones passed in `callbacks=[...]` and
# would miss the additions, so `attach` puts it first in line (passed in `callbacks=[...]`, it warns).
#
# `track_every=N` is the cost knob: on this CPU a record of MiniLM's 12 adapted layers costs about 1-2% of a training
# step (measured in `bench/RESULTS.md`), so `track_every=1` is affordable here; on a large model, record every 10 or
# 50 steps. The callback writes its history into the `Trainer`'s `output_dir`, beside the checkpoints, where
# `load_history` and `delora-viz plot` find it.

# %%
import datasets
from transformers import DataCollatorWithPadding, PrinterCallback, Trainer, TrainingArguments

datasets.disable_progress_bars()
n_texts = STEPS * BATCH
train_ds = datasets.Dataset.from_dict({"text": data.train_texts[:n_texts], "label": data.train_labels[:n_texts]})
train_ds = train_ds.map(
    lambda b: tok(b["text"], truncation=True, max_length=MAX_LEN), batched=True, remove_columns=["text"]
)
common = dict(max_steps=STEPS, per_device_train_batch_size=BATCH, logging_steps=max(1, STEPS // 6), seed=0)
common.update(report_to=["tensorboard"], save_strategy="no", use_cpu=True, disable_tqdm=True)
args = TrainingArguments(output_dir=str(OUT / "trainer"), learning_rate=3e-2, **common)
trainer = Trainer(
    model=delora_model(),
    args=args,
    train_dataset=train_ds,
    data_collator=DataCollatorWithPadding(tok),
)
TrackerCallback.attach(trainer, track_every=1)  # first in line, ahead of TensorBoard's callback
assert isinstance(trainer.callback_handler.callbacks[0], TrackerCallback)
trainer.remove_callback(PrinterCallback)  # the logs go to TensorBoard; no dict printed per log step
trainer.train()
hf_history = load_history(OUT / "trainer" / "delora_history.jsonl")
assert sorted(hf_history["step"].unique()) == list(range(STEPS + 1))
assert (hf_history["delta_fro"] <= hf_history["bound"] * (1 + 1e-5)).all()

# %% [markdown]
# What reached TensorBoard, read back from the event file (`tensorboard --logdir runs/99_internals` shows it
# live):

# %%
scalars = internals.tensorboard_scalars(OUT / "trainer")
delora_tags = sorted(t for t in scalars if "delora/" in t)
for tag in ("delora/delta_fro_mean", "delora/bound_ratio_max", "delora/lambda_mean"):
    assert any(t.endswith(tag) for t in delora_tags), (tag, delora_tags)
assert any(t.endswith("loss") for t in scalars)  # next to the loss
pd.DataFrame({t: scalars[t][-1:] for t in delora_tags}).T.rename(columns={0: "last value"})

# %% [markdown]
# ## 6. TRL's `SFTTrainer`
#
# `SFTTrainer` is a `Trainer`, so the same callback works; PEFT's config goes in through `peft_config=`.
# It needs a causal LM: here a tiny random Llama (2 layers of width 32, on MiniLM's vocabulary,
# `delora_viz.training.tiny`), so this runs in seconds; with a real checkpoint (SmolLM2-135M, notebook 04) the
# code is the same. The data: question/answer pairs from the embedded chatterbot corpus.
#
# Read the numbers below for what they check, not for what they teach: the tiny model is random, so its loss
# barely moves in a few steps. What matters is that the callback found the four adapted projections inside
# a model that `SFTTrainer` wrapped itself, and that its summary reached TRL's own log history.

# %%
try:
    import trl
except ImportError:
    trl = None
    print("TRL is not installed (pip install trl): skipping this section")

if trl is not None:
    from delora_viz.training.tiny import tiny_llama

    qa = load_data(None, "causal_lm")  # "Question: ...\nAnswer: ..." texts
    sft_model, sft_tok = tiny_llama()
    sft_args = trl.SFTConfig(output_dir=str(OUT / "sft"), learning_rate=1e-2, max_length=MAX_LEN, **common)
    sft = trl.SFTTrainer(
        model=sft_model,
        args=sft_args,
        processing_class=sft_tok,
        train_dataset=datasets.Dataset.from_dict({"text": qa.train_texts[: STEPS * BATCH]}),
        peft_config=DeloraConfig(r=8, delora_lambda=5, target_modules=["q_proj", "v_proj"]),
    )
    TrackerCallback.attach(sft, track_every=1)
    sft.remove_callback(PrinterCallback)
    sft.train()
    sft_history = load_history(OUT / "sft" / "delora_history.jsonl")
    assert sorted(sft_history["step"].unique()) == list(range(STEPS + 1))
    assert (sft_history["delta_fro"] <= sft_history["bound"] * (1 + 1e-5)).all()
    assert any("delora/bound_ratio_max" in entry for entry in sft.state.log_history)  # in TRL's logs too
    print(sft_history[sft_history["step"] == STEPS][["layer", "delta_fro", "bound", "lambda"]].to_string(index=False))

# %% [markdown]
# ## 7. History files
#
# `Tracker.save` writes CSV or JSONL atomically (an interrupted save never leaves half a file); `load_history`
# and `Tracker.load` read either back, every float bit for bit. The first line names the file format's
# version; a last line torn by a killed run loads with a warning. `delora-viz plot <file>` draws the figures of
# any history file from the command line.
#
# Pick JSONL for long runs (one self-contained line per row: a torn last line costs one row) and CSV for a
# spreadsheet. Both hold the same columns as the DataFrame above, NaN included, so a history saved today and
# one written line by line during training load into the same table.

# %%
for name in ("plain_history.csv", "plain_history_copy.jsonl"):
    path = tracker.save(OUT / name)
    back = Tracker.load(path)
    pd.testing.assert_frame_equal(back, df, check_dtype=False, check_exact=True)  # bit for bit
    print(f"{path}: {len(back)} rows, identical")
sorted(p.name for p in OUT.iterdir())

# %% [markdown]
# ## Takeaways
#
# - The tracker measures low-rank updates from their factors: $\|\Delta W\|^2$ from two $k \times k$ Grams,
#   $\langle \Delta W, W \rangle$ from one thin product, never an $m \times n$ matrix; DoRA has a per-row form.
# - Angles use `atan2` of the across and along parts: `arccos` of a float32 cosine loses angles below
#   ~$10^{-4}$ radians, exactly where training starts.
# - The tracked numbers equal PEFT's own merged weights in float64 to about float32 precision.
# - One line attaches it: `Tracker(model).watch(opt)` in a plain loop, `TrackerCallback.attach(trainer)` in
#   `Trainer` and TRL's `SFTTrainer`, with its summary in TensorBoard; histories are CSV/JSONL, written as they go.
#
# ## Where next
#
# Back to the path: `03_lora_dora_delora.ipynb` compares the three methods on a real task, and
# `04_bring_your_own_model.ipynb` puts DeLoRA and the tracker on your own model.
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
