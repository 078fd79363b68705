"""`delora-viz train` end to end with the flags of PEFT's delora_finetuning.py."""

import json
import subprocess
import sys

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from delora_viz.cli import main
from delora_viz.core.history import load_history


def test_seed_flags_on_a_local_llama_then_peft_loads_the_output(tiny_llama_dir, text_files, tmp_path):
    out = tmp_path / "out"
    argv = [
        "train",
        "--base_model",
        tiny_llama_dir,
        "--data_path",
        text_files["txt"],
        "--output_dir",
        str(out),
        "--batch_size",
        "4",
        "--num_epochs",
        "1",
        "--learning_rate",
        "3e-3",
        "--cutoff_len",
        "32",
        "--val_set_size",
        "8",
        "--eval_step",
        "2",
        "--save_step",
        "2",
        "--device",
        "cpu",
        "--rank",
        "4",
        "--delora_lambda",
        "2",
        "--module_dropout",
        "0.05",
        "--target_modules",
        "q_proj,v_proj",
        "--hub_model_id",
        "me/adapter",
        "--task",
        "causal_lm",
        "--quiet",
    ]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["eval_name"] == "perplexity"
    history = load_history(out / "delora_history.jsonl")
    assert set(history["layer"]) == {f"model.layers.{i}.self_attn.{p}" for i in (0, 1) for p in ("q_proj", "v_proj")}
    assert (history["delta_fro"] <= history["bound"] * (1 + 1e-5)).all()
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    model = PeftModel.from_pretrained(base, str(out))  # the seed's usage
    config = model.peft_config["default"]
    assert config.peft_type.value == "DELORA" and config.r == 4 and config.module_dropout == 0.05
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    logits = model(**tokenizer(["hello there"], return_tensors="pt")).logits
    assert torch.isfinite(logits).all()


@pytest.mark.slow  # a subprocess or a server
def test_default_model_and_method_flag_via_the_console_script(tmp_path):
    out = tmp_path / "o"
    cmd = [
        sys.executable,
        "-m",
        "delora_viz.cli",
        "train",
        "--output_dir",
        str(out),
        "--max_steps",
        "2",
        "--eval_step",
        "0",
        "--method",
        "dora",
        "--max_examples",
        "60",
        "--quiet",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "all-MiniLM-L6-v2" in result.stderr or "MiniLM" in result.stderr
    assert json.loads(result.stdout)["method"] == "dora"
    assert (out / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--rank", "0"], "positive integer"),
        (["--delora_lambda", "-3"], "finite number > 0"),
        (["--batch_size", "0"], "batch_size must be a positive integer"),
        (["--cutoff_len", "2"], "max_length must be at least 8"),
        (["--learning_rate", "0"], "lr must be a number"),
        (["--num_epochs", "0"], "num_epochs must be > 0"),
        (["--base_model", "nobody/nothing-here"], "not available offline"),
        (["--push_to_hub"], "--push_to_hub needs --hub_model_id"),
        (["--push_to_hub", "--hub_model_id", "me/x"], "HF_HUB_OFFLINE is set"),
    ],
)
def test_bad_input_is_a_clear_error(extra, message, tmp_path, capsys):
    assert main(["train", "--output_dir", str(tmp_path / "o"), "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unknown_method_lists_the_choices(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--output_dir", str(tmp_path), "--method", "adalora"])
    assert "lora" in capsys.readouterr().err
