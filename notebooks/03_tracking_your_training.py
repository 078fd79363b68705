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
# # 03 · Tracking your own training
#
# **What you will learn**
#
# 1. The `Tracker` hook in a plain PyTorch loop: one line to attach, a DataFrame out.
# 2. The same in `transformers.Trainer` with `TrackerCallback`, its numbers in TensorBoard next to
#    the loss.
# 3. The same in TRL's `SFTTrainer` (when TRL is installed).
# 4. Exporting the history (CSV / JSONL) and reading it back.
#
# The model is the embedded all-MiniLM-L6-v2 classifying BBC News topics, adapted with PEFT's
# `DeloraConfig`; for `SFTTrainer` a causal LM (a tiny local Llama in fast mode, SmolLM2-135M in full
# mode). Everything runs offline.
#
# **Time:** about a minute in fast mode, a few minutes in full mode, on 2 CPU cores.

# %% [markdown]
# `FAST` is set when the environment variable `DELORA_VIZ_FAST=1` (the tests set it): fewer steps
# and smaller sizes, so the notebook runs in CI in seconds. Leave it unset for the real picture.
# `%matplotlib inline` lets Jupyter draw the `matplotlib.figure.Figure` objects that
# `delora_viz.plots.figures` returns (they never touch pyplot's global state).

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
from peft import DeloraConfig, LoraConfig, get_peft_model

from delora_viz import Tracker, TrackerCallback, load_history, plots
from delora_viz.training.data import load_data
from delora_viz.training.models import load_model

FAST = os.environ.get("DELORA_VIZ_FAST") == "1"
STEPS, BATCH, MAX_LEN = (6, 4, 32) if FAST else (60, 8, 64)
OUT = Path("runs") / "03_tracking"  # everything this notebook writes
warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' deprecation notices
shutil.rmtree(OUT, ignore_errors=True)
_ = torch.manual_seed(0)

data = load_data(None, "classification")  # BBC News, embedded
minilm = load_model("minilm", num_labels=data.num_labels)
tok = minilm.tokenizer
print(f"{data.name}: {len(data.train_texts)} train / {len(data.eval_texts)} eval, labels {data.label_names}")
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


# %% [markdown]
# ## 1. A plain PyTorch loop
#
# `Tracker(model)` finds every adapted layer (PEFT LoRA, rsLoRA, DoRA, DeLoRA, or our `DeLoRALinear`);
# `.watch(optimizer)` registers a post-step hook, so a row per layer is recorded after every
# `optimizer.step()` without touching the loop. `path=` appends each record to a file as it goes, so a
# killed run keeps what it recorded. The `with` block removes the hook at the end.

# %%
model = delora_model()
adapter = [p for n, p in model.named_parameters() if p.requires_grad and "delora_" in n]
head = [p for n, p in model.named_parameters() if p.requires_grad and "delora_" not in n]
opt = torch.optim.AdamW([{"params": adapter, "lr": 3e-2}, {"params": head, "lr": 5e-3}])


def batch(i):
    idx = range(i * BATCH, (i + 1) * BATCH)
    enc = tok(
        [data.train_texts[j] for j in idx], truncation=True, max_length=MAX_LEN, padding=True, return_tensors="pt"
    )
    enc["labels"] = torch.tensor([data.train_labels[j] for j in idx])
    return enc


model.train()
with Tracker(model, path=OUT / "plain_history.jsonl").watch(opt) as tracker:  # records step 0 (dW = 0) first
    for i in range(STEPS):
        loss = model(**batch(i)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()  # <- the tracker records here
df = tracker.to_dataframe()
df.head()

# %%
n_layers = df["layer"].nunique()
assert n_layers == 12  # query and value in each of MiniLM's 6 blocks
assert sorted(df["step"].unique()) == list(range(STEPS + 1)) and len(df) == (STEPS + 1) * n_layers
assert (df["delta_fro"] <= df["bound"] * (1 + 1e-5)).all()  # every layer, every step
assert len(load_history(OUT / "plain_history.jsonl")) == len(df)  # written as it went
print(tracker.summary())  # mean / max over layers of the last record: ready for any logger
plots.plot_update_norm(df)

# %%
plots.plot_lambda(df)

# %% [markdown]
# The same tracker reads LoRA and DoRA layers too; they have no $\lambda$ and no bound, so those
# columns are NaN (and `dora_mag_drift`, how far DoRA's learned magnitudes moved, appears instead):

# %%
for use_dora in (False, True):
    lora = get_peft_model(
        copy.deepcopy(minilm.model),
        LoraConfig(r=8, lora_alpha=16, use_dora=use_dora, target_modules=minilm.default_target_modules),
    )
    rows = pd.DataFrame(Tracker(lora).step(0))
    assert set(rows["method"]) == {"dora" if use_dora else "lora"} and rows["bound"].isna().all()
    print(rows[["layer", "method", "delta_fro", "bound", "lambda", "dora_mag_drift"]].head(2).to_string(index=False))

# %% [markdown]
# ## 2. `transformers.Trainer` with `TrackerCallback`
#
# Attach it with `TrackerCallback.attach(trainer, every=N)`. It records every N optimizer steps into
# `<output_dir>/delora_history.jsonl`, and adds a summary (`delora/delta_fro_mean`,
# `delora/bound_ratio_max`, `delora/lambda_mean`, ...) to the Trainer's logs, which every `report_to`
# integration receives: here TensorBoard, next to the loss. The reporting callbacks run before the ones
# passed in `callbacks=[...]` and would miss the additions, so `attach` puts it at the front.

# %%
import datasets
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

datasets.disable_progress_bars()
n = STEPS * BATCH
train_ds = datasets.Dataset.from_dict({"text": data.train_texts[:n], "label": data.train_labels[:n]})
train_ds = train_ds.map(
    lambda b: tok(b["text"], truncation=True, max_length=MAX_LEN), batched=True, remove_columns=["text"]
)

args = TrainingArguments(
    output_dir=str(OUT / "trainer"),
    max_steps=STEPS,
    per_device_train_batch_size=BATCH,
    learning_rate=3e-2,
    logging_steps=max(1, STEPS // 6),
    report_to=["tensorboard"],
    save_strategy="no",
    use_cpu=True,
    disable_tqdm=True,
    seed=0,
)
trainer = Trainer(
    model=delora_model(),
    args=args,
    train_dataset=train_ds,
    data_collator=DataCollatorWithPadding(tok),
)
TrackerCallback.attach(trainer, every=1)  # first in line, ahead of TensorBoard's callback
trainer.train()
hf_history = load_history(OUT / "trainer" / "delora_history.jsonl")
assert sorted(hf_history["step"].unique()) == list(range(STEPS + 1))
assert (hf_history["delta_fro"] <= hf_history["bound"] * (1 + 1e-5)).all()
plots.plot_bound_heatmap(hf_history)

# %% [markdown]
# What reached TensorBoard (read back from the event file; `tensorboard --logdir runs/03_tracking` shows it live):

# %%
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

scalars = {}
for events in (OUT / "trainer").rglob("events.out.tfevents.*"):
    acc = EventAccumulator(str(events))
    acc.Reload()
    for tag in acc.Tags()["scalars"]:
        scalars[tag] = [e.value for e in acc.Scalars(tag)]
delora_tags = sorted(t for t in scalars if "delora/" in t)
for tag in ("delora/delta_fro_mean", "delora/bound_ratio_max", "delora/lambda_mean"):
    assert any(t.endswith(tag) for t in delora_tags), (tag, delora_tags)
assert any(t.endswith("loss") for t in scalars)  # next to the loss
pd.DataFrame({t: scalars[t][-1:] for t in delora_tags}).T.rename(columns={0: "last value"})

# %% [markdown]
# ## 3. TRL's `SFTTrainer`
#
# `SFTTrainer` is a `Trainer`, so the same callback works; here PEFT's config goes in through
# `peft_config=`. A causal LM is needed: in fast mode a tiny random Llama (hidden size 32) built here
# with the MiniLM tokenizer, in full mode SmolLM2-135M-Instruct (the embedded GGUF, converted once).
# The data: question/answer pairs from the embedded chatterbot corpus.

# %%
try:
    import trl
except ImportError:
    trl = None
    print("TRL is not installed (pip install trl): skipping this section")

if trl is not None:
    qa = load_data(None, "causal_lm")  # "Question: ...\nAnswer: ..." texts
    if FAST:
        from delora_viz.training.tiny import tiny_llama

        sft_model, sft_tok = tiny_llama()  # 2 layers of width 32, random, on MiniLM's vocabulary
    else:
        smol = load_model("smollm2")  # ~20 s the first time (GGUF -> safetensors), then cached
        sft_model, sft_tok = smol.model, smol.tokenizer
    # SmolLM2 has 135M parameters and a 49k-token vocabulary: on 2 CPU cores one step of batch 8 takes
    # seconds when the machine is idle and minutes when it is shared, so the demo trains a few short steps.
    SFT_STEPS, SFT_BATCH = (STEPS, BATCH) if FAST else (20, 4)
    sft_args = trl.SFTConfig(
        output_dir=str(OUT / "sft"),
        max_steps=SFT_STEPS,
        per_device_train_batch_size=SFT_BATCH,
        learning_rate=1e-2,
        logging_steps=max(1, SFT_STEPS // 10),
        max_length=MAX_LEN,
        report_to=["tensorboard"],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    sft = trl.SFTTrainer(
        model=sft_model,
        args=sft_args,
        processing_class=sft_tok,
        train_dataset=datasets.Dataset.from_dict({"text": qa.train_texts[: SFT_STEPS * SFT_BATCH]}),
        peft_config=DeloraConfig(r=8, delora_lambda=5, target_modules=["q_proj", "v_proj"]),
    )
    TrackerCallback.attach(sft, every=1)
    sft.train()
    sft_history = load_history(OUT / "sft" / "delora_history.jsonl")
    assert sorted(sft_history["step"].unique()) == list(range(SFT_STEPS + 1))
    assert (sft_history["delta_fro"] <= sft_history["bound"] * (1 + 1e-5)).all()
    assert any("delora/bound_ratio_max" in entry for entry in sft.state.log_history)
    sft_log = pd.DataFrame(
        [
            dict(step=e["step"], method="delora", run="SFT (DeLoRA)", loss=e["loss"])
            for e in sft.state.log_history
            if "loss" in e
        ]
    )
    display(plots.plot_loss(sft_log))

# %% [markdown]
# ## 4. Export and reload
#
# `Tracker.save` writes CSV or JSONL (atomically: an interrupted save never leaves half a file);
# `load_history` / `Tracker.load` read either back, every float bit for bit.

# %%
for name in ("plain_history.csv", "plain_history_copy.jsonl"):
    path = tracker.save(OUT / name)
    back = Tracker.load(path)
    pd.testing.assert_frame_equal(back, df, check_dtype=False, check_exact=True)  # bit for bit
    print(f"{path}: {len(back)} rows, identical")
sorted(p.name for p in OUT.iterdir())

# %% [markdown]
# **Where next:** `04_lora_dora_delora.ipynb` compares the three methods on the embedded model and
# repeats the paper's learning-rate robustness experiment in small.
