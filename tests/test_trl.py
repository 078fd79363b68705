"""TrackerCallback inside TRL's SFTTrainer, and the delora/* scalars in Trackio (from a Trainer and from the CLI).

All offline: a tiny local Llama, in-memory data, Trackio's local SQLite store in a temporary folder.
"""

import json
import sys

import pytest
import torch
from peft import DeloraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

from delora_viz.instruments.callback import TrackerCallback
from delora_viz.instruments.history import load_history

SCALARS = ("train/delora/delta_fro_mean", "train/delora/bound_ratio_max", "train/delora/lambda_mean")


def _texts(n=32):
    return [f"Question: what is {i} plus {i}? Answer: {2 * i}." for i in range(n)]


def _tokenizer(tiny_llama_dir):
    return AutoTokenizer.from_pretrained(tiny_llama_dir)  # saved with [SEP] as eos (training/tiny.py)


@pytest.mark.slow  # trains: TRL's SFTTrainer / a Trainer / the CLI
def test_callback_in_trl_sft_trainer(tmp_path, tiny_llama_dir):
    import trl  # installed by the [test] extra (through [notebooks]): a missing TRL fails here, never skips
    from datasets import Dataset

    args = trl.SFTConfig(
        output_dir=str(tmp_path),
        max_steps=3,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        max_length=32,
        save_strategy="no",
    )
    trainer = trl.SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_llama_dir),
        args=args,
        train_dataset=Dataset.from_dict({"text": _texts()}),
        processing_class=_tokenizer(tiny_llama_dir),
        peft_config=DeloraConfig(r=4, delora_lambda=2, target_modules=["q_proj", "v_proj"]),
        callbacks=[TrackerCallback()],
    )
    trainer.train()
    history = load_history(tmp_path / "delora_history.jsonl")
    assert sorted(history["step"].unique()) == [0, 1, 2, 3] and history["layer"].nunique() == 4
    assert (history["delta_fro"] <= history["bound"] * (1 + 1e-5)).all()
    logged = [entry for entry in trainer.state.log_history if "delora/bound_ratio_max" in entry]
    assert len(logged) == 3


@pytest.fixture
def trackio_dir(tmp_path, monkeypatch):
    """Trackio's store in tmp_path: it reads TRACKIO_DIR once, at import, into module globals."""
    import trackio  # noqa: F401  (imports its submodules, so all their copies of TRACKIO_DIR get patched)

    folder = tmp_path / "trackio"
    folder.mkdir()
    monkeypatch.setenv("TRACKIO_DIR", str(folder))
    for name, module in list(sys.modules.items()):
        if name.startswith("trackio") and hasattr(module, "TRACKIO_DIR"):
            monkeypatch.setattr(module, "TRACKIO_DIR", folder)
    return folder


def _trackio_logs(project):
    from trackio.sqlite_storage import SQLiteStorage

    (run,) = SQLiteStorage.get_runs(project)
    return SQLiteStorage.get_logs(project, run)


@pytest.mark.slow  # trains: TRL's SFTTrainer / a Trainer / the CLI
def test_trainer_report_to_trackio_receives_the_delora_scalars(tmp_path, tiny_llama_dir, trackio_dir):
    from datasets import Dataset

    tokenizer = _tokenizer(tiny_llama_dir)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    data = Dataset.from_dict({"text": _texts()}).map(
        lambda b: {**tokenizer(b["text"], truncation=True, max_length=24, padding="max_length")}, batched=True
    )
    data = data.map(lambda b: {"labels": b["input_ids"]}, batched=True).remove_columns(["text"])
    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_llama_dir),
        DeloraConfig(r=4, delora_lambda=2, target_modules=["q_proj", "v_proj"]),
    )
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=4,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        logging_steps=2,
        report_to=["trackio"],
        project="delora-viz-test",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=data)
    TrackerCallback.attach(trainer)  # ahead of Trackio's callback
    trainer.train()
    logs = [entry for entry in _trackio_logs("delora-viz-test") if "train/loss" in entry]
    assert [entry["train/global_step"] for entry in logs] == [2, 4]
    history = load_history(tmp_path / "out" / "delora_history.jsonl")
    for entry in logs:
        rows = history[history["step"] == entry["train/global_step"]]
        assert all(tag in entry for tag in SCALARS), sorted(entry)
        assert entry["train/delora/delta_fro_mean"] == pytest.approx(rows["delta_fro"].mean(), rel=1e-6)
        assert entry["train/delora/bound_ratio_max"] == pytest.approx(rows["bound_ratio"].max(), rel=1e-6)


@pytest.mark.slow  # trains: TRL's SFTTrainer / a Trainer / the CLI
def test_cli_report_to_trackio(tmp_path, tiny_llama_dir, trackio_dir):
    from delora_viz.cli import main
    from delora_viz.training.reporting import TRACKIO_PROJECT

    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in _texts()))
    out = tmp_path / "cli"
    argv = ["train", "--base_model", tiny_llama_dir, "--data_path", str(data), "--output_dir", str(out)]
    argv += ["--max_steps", "3", "--eval_step", "3", "--rank", "4", "--device", "cpu", "--report_to", "trackio"]
    assert main(argv + ["--quiet"]) == 0
    logs = _trackio_logs(TRACKIO_PROJECT)
    assert [entry["step"] for entry in logs] == [1, 2, 3]
    history = load_history(out / "delora_history.jsonl")
    for entry in logs:
        rows = history[history["step"] == entry["step"]]
        assert entry["train/delora/delta_fro_mean"] == pytest.approx(rows["delta_fro"].mean(), rel=1e-6)
        assert entry["train/delora/lambda_mean"] == pytest.approx(rows["lambda"].mean(), rel=1e-6)
    assert "eval/perplexity" in logs[-1] and "eval/perplexity" not in logs[0]
