"""`delora-viz train` as a drop-in for PEFT's examples/delora_finetuning/delora_finetuning.py."""

import glob
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from delora_viz.cli import main
from delora_viz.instruments.history import load_history

# PEFT's examples/delora_finetuning/README.md "Fine-tune" command line, with `delora-viz train` in place of
# `python delora_finetuning.py`; --num_epochs 1 instead of 3 and no --push_to_hub keep it small and offline.
PEFT_README_ARGS = [
    "--batch_size", "1", "--num_epochs", "1", "--learning_rate", "3e-3", "--cutoff_len", "512",
    "--val_set_size", "500", "--eval_step", "10", "--save_step", "100", "--device", "auto", "--rank", "32",
    "--delora_lambda", "15", "--module_dropout", "0.1", "--target_modules", "q_proj,v_proj",
    "--hub_model_id", "YOUR_HF_REPO",
]  # fmt: skip
N_TRAIN, N_TEST = 20, 4


@pytest.fixture(scope="module")
def dataset_folder(tmp_path_factory):
    """What load_dataset(data_path) reads in the script: a folder with train and test files, a "text" column."""
    folder = tmp_path_factory.mktemp("guanaco-like")
    lines = lambda n, kind: "".join(  # noqa: E731
        json.dumps({"text": f"### Human: {kind} question {i}? ### Assistant: answer number {i}."}) + "\n"
        for i in range(n)
    )
    (folder / "train.jsonl").write_text(lines(N_TRAIN, "train"))
    (folder / "test.jsonl").write_text(lines(N_TEST, "test"))
    return str(folder)


def _tags(output_dir) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for path in glob.glob(str(Path(output_dir) / "**" / "events.out.tfevents.*"), recursive=True):
        acc = EventAccumulator(path)
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    return tags


@pytest.mark.slow  # trains: the CLI's loop
def test_peft_readme_command_line_runs_with_gradient_accumulation(tiny_llama_dir, dataset_folder, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["train", "--base_model", tiny_llama_dir, "--data_path", dataset_folder, "--output_dir", str(out)]
    argv += PEFT_README_ARGS + ["--gradient_accumulation_steps", "16", "--report_to", "tensorboard", "--quiet"]
    assert main(argv) == 0  # no --task: a LlamaForCausalLM checkpoint is a causal LM
    err = capsys.readouterr().err
    assert "(causal_lm)" in err and f"{N_TRAIN} train / {N_TEST} eval (its test split)" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["eval_name"] == "perplexity"
    history = load_history(out / "delora_history.jsonl")
    assert set(history["layer"]) == {f"model.layers.{i}.self_attn.{p}" for i in (0, 1) for p in ("q_proj", "v_proj")}
    assert (history["delta_fro"] <= history["bound"] * (1 + 1e-5)).all()
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), str(out))
    config = model.peft_config["default"]
    assert config.peft_type.value == "DELORA" and config.r == 32 and config.module_dropout == 0.1
    assert config.base_model_name_or_path == tiny_llama_dir  # the user's own path, as given
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    assert torch.isfinite(model(**tokenizer(["hello there"], return_tensors="pt")).logits).all()
    tags = _tags(out)
    for tag in ("train/loss", "train/delora/delta_fro_mean", "train/delora/bound_ratio_max", "eval/perplexity"):
        assert tag in tags, sorted(tags)
    # 20 examples of 1, 16 per optimizer step: 16 + 4, so 2 steps, as the script's Trainer takes
    # (the training loop counts epochs and accumulation; checked against a real Trainer in the slow test below)
    assert summary["steps"] == 2 and sorted(history["step"].unique()) == [0, 1, 2]


@pytest.mark.slow  # trains twice: our loop and transformers' Trainer as the script configures it
def test_optimizer_steps_match_the_scripts_trainer(tiny_llama_dir, dataset_folder, tmp_path):
    """The reference is a real Trainer with the script's TrainingArguments (batch 1, accumulation 16)."""
    from datasets import load_dataset
    from peft import DeloraConfig, get_peft_model
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    for epochs in ("1", "3"):
        out = tmp_path / f"ours{epochs}"
        argv = ["train", "--base_model", tiny_llama_dir, "--data_path", dataset_folder, "--output_dir", str(out)]
        argv += PEFT_README_ARGS + ["--num_epochs", epochs, "--gradient_accumulation_steps", "16", "--quiet"]
        assert main(argv) == 0
        ours = json.loads((out / "summary.json").read_text())["steps"]

        tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
        model = get_peft_model(
            AutoModelForCausalLM.from_pretrained(tiny_llama_dir),
            DeloraConfig(r=4, delora_lambda=15, target_modules=["q_proj", "v_proj"]),
        )
        data = load_dataset(dataset_folder)
        tokenized = data.map(lambda b, tok=tokenizer: tok(b["text"], truncation=True, max_length=32), batched=True)
        args = TrainingArguments(
            output_dir=str(tmp_path / f"trainer{epochs}"),
            num_train_epochs=int(epochs),
            per_device_train_batch_size=1,
            gradient_accumulation_steps=16,
            learning_rate=3e-3,
            report_to=[],
            save_strategy="no",
            use_cpu=True,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=tokenized["train"].remove_columns(["text"]),
            data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        )
        trainer.train()
        assert ours == trainer.state.global_step, (epochs, ours, trainer.state.global_step)


@pytest.mark.slow  # trains: the CLI's loop
def test_defaults_that_differ_from_the_script_are_printed_once(tiny_llama_dir, dataset_folder, tmp_path, capsys):
    argv = ["train", "--base_model", tiny_llama_dir, "--data_path", dataset_folder, "--output_dir", str(tmp_path)]
    argv += ["--max_steps", "1", "--eval_step", "0", "--rank", "4", "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "differ from delora_finetuning.py" in line]
    assert len(lines) == 1
    for text in ("--delora_lambda 5 (script: 640)", "--learning_rate 0.03 (script: 0.003)", "(script: 16)"):
        assert text in lines[0]
    assert "--rank" not in lines[0] and "--eval_step" not in lines[0] and "--num_epochs" not in lines[0]


def test_task_is_inferred_from_the_model(tiny_llama_dir, tiny_bert_dir, tmp_path):
    from transformers import BertConfig, LlamaConfig

    from delora_viz.training.models import infer_task
    from delora_viz.training.tasks import task_from_config

    assert infer_task(tiny_llama_dir) == "causal_lm" and infer_task(tiny_bert_dir) == "classification"
    assert infer_task(None) == "classification" and infer_task("smollm2") == "causal_lm"
    assert infer_task(tiny_llama_dir, "classification") == "classification"  # --task overrides
    assert task_from_config(LlamaConfig()) == "causal_lm"  # decoder-only, no architectures named
    assert task_from_config(BertConfig()) == "classification"
    with pytest.raises(ValueError, match="not available offline"):
        infer_task("nobody/nothing-here")


@pytest.mark.slow  # a subprocess
def test_default_model_and_method_flag_via_the_console_script(tmp_path):
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "delora_viz.cli", "train", "--output_dir", str(out), "--max_steps", "2"]
    cmd += ["--eval_step", "0", "--method", "dora", "--max_examples", "60", "--quiet"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "MiniLM" in result.stderr
    assert json.loads(result.stdout)["method"] == "dora"
    assert (out / "adapter_model.safetensors").is_file()


class FakeHub:
    """huggingface_hub.HfApi without the network: keeps a copy of what would be uploaded."""

    uploads: list = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, exist_ok=False):
        assert exist_ok

    def upload_folder(self, folder_path, repo_id, commit_message=None):
        copy = Path(self.uploads_root) / repo_id.replace("/", "--")
        shutil.copytree(folder_path, copy)
        FakeHub.uploads.append((repo_id, self.token, copy))
        return f"https://huggingface.co/{repo_id}/commit/0"


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    import huggingface_hub

    FakeHub.uploads, FakeHub.uploads_root = [], str(tmp_path / "uploaded")
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # what --push_to_hub checks; nothing here reaches the network
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    return FakeHub


@pytest.mark.slow  # loads MiniLM and BBC News
def test_push_uploads_an_adapter_naming_the_presets_hub_id(fake_hub, tmp_path):
    from delora_viz.training.models import load_model, minilm_dir

    out = tmp_path / "minilm"
    argv = ["train", "--output_dir", str(out), "--max_steps", "2", "--eval_step", "0", "--max_examples", "40"]
    argv += ["--device", "cpu", "--push_to_hub", "--hub_model_id", "me/minilm-delora", "--quiet"]
    assert main(argv) == 0
    ((repo, token, copy),) = fake_hub.uploads
    assert (repo, token) == ("me/minilm-delora", "hf_not_a_real_token")
    files = {p.name for p in copy.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "delora_history.jsonl", "README.md"} <= files
    assert "model.safetensors" not in files and "tokenizer.json" in files  # the tokenizer, never the base model
    config = json.loads((copy / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in (copy / "README.md").read_text()
    loaded = load_model(config["base_model_name_or_path"], "classification", num_labels=5)  # offline: the preset
    assert loaded.source == str(minilm_dir()) and "embedded" in loaded.name
    model = PeftModel.from_pretrained(loaded.model, str(copy))
    assert model.peft_config["default"].peft_type.value == "DELORA"


@pytest.mark.slow  # trains: the CLI's loop
def test_push_of_delora_paper_is_its_exact_lora_export(fake_hub, tiny_llama_dir, dataset_folder, tmp_path):
    out = tmp_path / "paper"
    argv = ["train", "--base_model", tiny_llama_dir, "--data_path", dataset_folder, "--output_dir", str(out)]
    argv += ["--method", "delora-paper", "--max_steps", "2", "--eval_step", "0", "--rank", "4", "--device", "cpu"]
    argv += ["--push_to_hub", "--hub_model_id", "me/paper", "--quiet"]
    assert main(argv) == 0
    ((_, _, copy),) = fake_hub.uploads
    config = json.loads((copy / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8  # rank 2r: the frozen term travels too
    assert config["base_model_name_or_path"] == tiny_llama_dir
    assert "model.safetensors" not in {p.name for p in copy.iterdir()}
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), str(copy))
    assert torch.isfinite(model(input_ids=torch.tensor([[5, 6, 7]])).logits).all()


def test_preset_hub_ids_resolve_to_the_embedded_presets_offline(monkeypatch):
    from delora_viz.training import models
    from delora_viz.training.hub import preset_key, public_model_id

    assert preset_key("sentence-transformers/all-MiniLM-L6-v2") == "minilm"
    assert preset_key("HuggingFaceTB/SmolLM2-135M-Instruct") == "smollm2"
    assert public_model_id(None) == "sentence-transformers/all-MiniLM-L6-v2"
    assert public_model_id("smollm2") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert public_model_id("./my-llama") == "./my-llama" and preset_key("org/other") is None
    monkeypatch.setattr(models, "ensure_smollm2", lambda: Path("/converted/smollm2"))  # no 20 s conversion
    assert models.resolve_model_source("HuggingFaceTB/SmolLM2-135M-Instruct") == str(Path("/converted/smollm2"))


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--rank", "0"], "positive integer"),
        (["--delora_lambda", "-3"], "finite number > 0"),
        (["--batch_size", "0"], "batch_size must be a positive integer"),
        (["--cutoff_len", "2"], "max_length must be at least 8"),
        (["--learning_rate", "0"], "lr must be a number"),
        (["--num_epochs", "0"], "epochs must be a number in (0, 1e4]"),
        (["--base_model", "nobody/nothing-here"], "not available offline"),
        (["--report_to", "wandb"], "--report_to takes tensorboard, trackio, none"),
        (["--data_path", "./no/such/folder"], "not found"),
        (["--push_to_hub"], "--push_to_hub needs --hub_model_id"),
        (["--push_to_hub", "--hub_model_id", "me/x"], "HF_HUB_OFFLINE is set"),
    ],
)
def test_bad_input_is_a_clear_error(extra, message, tmp_path, capsys):
    assert main(["train", "--output_dir", str(tmp_path / "o"), "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_user_error_names_the_flag_of_its_field(tmp_path, capsys):
    """DeloraVizError.field is the library's name (lr); the CLI shows its own (--learning_rate)."""
    from delora_viz import DeloraVizError, TrainConfig

    with pytest.raises(DeloraVizError) as err:
        TrainConfig(lr=0.0)
    assert err.value.field == "lr"
    assert main(["train", "--output_dir", str(tmp_path / "o"), "--quiet", "--learning_rate", "0"]) == 2
    assert capsys.readouterr().err.startswith("delora-viz: error: --learning_rate: lr must be a number in (0, 1e4]")
    assert main(["train", "--output_dir", str(tmp_path / "o"), "--quiet", "--max_steps", "0"]) == 2
    assert capsys.readouterr().err.startswith("delora-viz: error: --max_steps: max_steps must be a positive integer")
    both = ["--num_epochs", "1", "--max_steps", "5"]
    assert main(["train", "--output_dir", str(tmp_path / "o"), "--quiet", *both]) == 2
    assert capsys.readouterr().err.startswith("delora-viz: error: give --num_epochs or --max_steps, not both")


def test_a_text_dataset_with_a_classifier_names_the_flags(tiny_bert_dir, dataset_folder, tmp_path, capsys):
    argv = ["train", "--base_model", tiny_bert_dir, "--data_path", dataset_folder, "--output_dir", str(tmp_path)]
    assert main(argv + ["--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--label_column" in err and "task causal_lm" in err


def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
    from delora_viz.cli import train

    def broken(args):
        raise TypeError("a bug, not bad input")

    monkeypatch.setattr(train, "build_config", broken)
    with pytest.raises(TypeError, match="a bug"):
        main(["train", "--output_dir", str(tmp_path), "--quiet"])


def test_unknown_method_lists_the_choices(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--output_dir", str(tmp_path), "--method", "adalora"])
    assert "lora" in capsys.readouterr().err
