"""The runner's steps: precision (bf16/fp16 over float32 trainable parameters), each run's own RNG,
honest final metrics, epochs, gradient accumulation, warm-up and evaluation only at the end."""

import math
from dataclasses import replace

import pytest
import torch

from delora_viz.training import RunResult, StepEvent, compare, iter_train, models, prepare, steps, train
from delora_viz.training.config import TrainConfig


def _cfg(model, data, **kw):
    base = dict(
        model=model, data=data, max_steps=4, batch_size=4, max_length=16, eval_every=0, eval_examples=8, device="cpu"
    )
    return TrainConfig(**(base | kw))


def _lambdas(model) -> torch.Tensor:
    return torch.cat([p.detach().float().flatten() for n, p in model.named_parameters() if "lambda" in n])


# ----------------------------------------------------------------------------- precision
@pytest.mark.slow  # trains: the runner's loop
@pytest.mark.parametrize("method", ["delora", "delora-paper"])
def test_bf16_trains_float32_parameters_under_autocast(method, tiny_bert_dir, text_files):
    # at 0.1x the default rate: lambda moves by <= 4 x 3e-3, under half of bf16's spacing of 1/32 at lambda = 5
    config = _cfg(tiny_bert_dir, text_files["csv"], method=method, dtype="bfloat16", eval_every=2, lr_multiplier=0.1)
    prepared = prepare(config)
    assert prepared.loaded.dtype == torch.bfloat16
    result = train(config, prepared)
    trainable = {n: p.dtype for n, p in result.model.named_parameters() if p.requires_grad}
    assert any("classifier" in n for n in trainable)  # the task head trains too ...
    assert set(trainable.values()) == {torch.float32}  # ... and, like the adapters, in float32
    frozen = {p.dtype for p in result.model.parameters() if not p.requires_grad}
    assert frozen == {torch.bfloat16}  # the base keeps its dtype
    losses = [h["loss"] for h in result.history[1:]]
    assert result.status == "finished" and all(math.isfinite(v) for v in losses)
    assert math.isfinite(result.final["eval_metric"]) and result.final["eval_step"] == 4
    moved = (_lambdas(result.model) - config.delora_lambda).abs().max().item()  # a bf16 lambda would stay at 5
    assert 1e-4 < moved < 1 / 64


@pytest.mark.slow  # trains: the runner's loop
def test_float16_uses_a_grad_scaler_over_float32_parameters(tiny_bert_dir, text_files, monkeypatch):
    """fp16 is a GPU dtype; CPU autocast runs it too, so the GradScaler path is tested here with the
    CPU refusal lifted (before: AdamW on fp16 parameters turned them NaN at the first step)."""
    real = models.pick_dtype
    monkeypatch.setattr(models, "pick_dtype", lambda d, p="auto": torch.float16 if p == "float16" else real(d, p))
    config = _cfg(tiny_bert_dir, text_files["csv"], method="delora", dtype="float16", max_steps=5)
    prepared = prepare(config)
    assert prepared.loaded.dtype == torch.float16 and steps.grad_scaler(prepared.loaded).is_enabled()
    result = train(config, prepared)
    assert result.status == "finished" and all(math.isfinite(h["loss"]) for h in result.history[1:])
    assert {p.dtype for p in result.model.parameters() if p.requires_grad} == {torch.float32}
    assert math.isfinite(result.final["eval_metric"])
    assert (_lambdas(result.model) - config.delora_lambda).abs().max().item() > 1e-4


def test_float16_on_cpu_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="float16 is not supported for training on CPU; use 'float32' or 'bfloat16'"):
        models.pick_dtype(torch.device("cpu"), "float16")


# ----------------------------------------------------------------------------- reproducible comparisons
@pytest.mark.slow  # trains: the runner's loop
def test_a_run_in_a_comparison_equals_the_run_alone(tiny_bert_dir, text_files):
    """Dropout draws from each run's own stream: interleaving runs, or drawing between them, changes nothing."""
    config = _cfg(tiny_bert_dir, text_files["csv"], module_dropout=0.3, eval_every=2)
    prepared = prepare(config)
    alone = {m: train(replace(config, method=m), prepared) for m in ("lora", "delora")}
    torch.rand(3)  # whatever the caller draws in between must not matter
    together = compare(["lora", "delora"], config, prepared)
    for m in ("lora", "delora"):
        assert [h["loss"] for h in together[m].history[1:]] == [h["loss"] for h in alone[m].history[1:]], m
        assert [r["delta_fro"] for r in together[m].rows] == [r["delta_fro"] for r in alone[m].rows], m
    # and the dropout really draws: another seed gives other losses
    other = train(replace(config, method="lora", seed=1), prepared)
    assert [h["loss"] for h in other.history[1:]] != [h["loss"] for h in alone["lora"].history[1:]]


def test_the_callers_rng_is_left_alone():
    rng = steps.RunRNG(seed=3)
    torch.manual_seed(11)
    expected = torch.rand(4)
    torch.manual_seed(11)
    with rng:
        inside = torch.rand(2)
    assert torch.equal(torch.rand(4), expected)  # the outer stream continues as if nothing was drawn
    torch.manual_seed(3)
    assert torch.equal(inside, torch.rand(2))  # the run's stream is torch.manual_seed(seed)'s


# ----------------------------------------------------------------------------- honest final metrics
@pytest.mark.slow  # trains: the runner's loop
def test_a_stopped_run_is_evaluated_where_it_stopped(tiny_llama_dir, text_files):
    """Stop at step 3 of 20 with eval_every=10: the final metric is the step-3 model's, never step 0's."""
    config = _cfg(tiny_llama_dir, text_files["txt"], task="causal_lm", method="lora", max_steps=20, eval_every=10)
    prepared = prepare(config)
    events = []
    for event in iter_train(config, prepared, stop=lambda: len(events) >= 3):
        events.append(event)
    result = events[-1]
    assert isinstance(result, RunResult) and result.status == "stopped"
    assert result.final["steps"] == result.final["eval_step"] == 3
    reference = steps.evaluate(result.model, prepared.data, config, prepared.loaded)  # the step-3 model, again
    assert result.final["eval_metric"] == pytest.approx(reference, rel=1e-6)
    assert result.final["eval_metric"] != result.history[0]["eval_metric"]
    assert result.history[-1]["step"] == 3 and result.history[-1]["eval_metric"] == result.final["eval_metric"]


# ----------------------------------------------------------------------------- epochs, accumulation, warm-up
def test_step_indices_cover_each_epoch_exactly_once():
    n, bs, accum = 34, 4, 2  # 8 examples per optimizer step: 4 full steps and one of 2 per epoch
    gen = steps.step_indices(n, bs, accum, seed=0)
    epochs = [[next(gen) for _ in range(steps.steps_per_epoch(n, bs, accum))] for _ in range(2)]
    for epoch in epochs:
        assert sorted(i for step in epoch for micro in step for i in micro) == list(range(n))
        assert [[len(m) for m in step] for step in epoch] == [[4, 4]] * 4 + [[2]]
    assert epochs[0] != epochs[1]  # a fresh order each epoch


@pytest.mark.parametrize(
    "epochs,bs,accum,expected",
    [(1, 4, 2, 5), (2, 4, 2, 10), (0.5, 4, 2, 3), (1, 4, 1, 9), (3, 34, 1, 3), (0.1, 1, 1, 4)],
)
def test_optimizer_steps_for_epochs(epochs, bs, accum, expected):
    """ceil(epochs * ceil(n / (bs * accum))): transformers Trainer's count, hence PEFT's script's (n = 34)."""
    config = TrainConfig(epochs=epochs, batch_size=bs, gradient_accumulation_steps=accum, max_steps=99)
    assert steps.optimizer_steps(config, 34) == expected
    assert steps.optimizer_steps(replace(config, epochs=None), 34) == 99


@pytest.mark.slow  # trains: the runner's loop
def test_one_epoch_with_accumulation_sees_every_example_once(tiny_bert_dir, text_files, monkeypatch):
    seen = []
    real = steps.loss_of

    def counting(model, batch, loaded):
        seen.append(len(batch["labels"]))
        return real(model, batch, loaded)

    monkeypatch.setattr(steps, "loss_of", counting)
    config = _cfg(tiny_bert_dir, text_files["csv"], epochs=1, gradient_accumulation_steps=2, max_steps=99)
    prepared = prepare(config)
    n_train = len(prepared.data.train_texts)
    events = list(iter_train(config, prepared))
    step_events, result = events[:-1], events[-1]
    assert n_train == 34 and [e.step for e in step_events] == [1, 2, 3, 4, 5]
    assert {e.total_steps for e in step_events} == {5}
    assert seen == [4, 4] * 4 + [2] and sum(seen) == n_train  # 9 micro-batches, every example once
    assert sorted(set(result.tracker_frame()["step"])) == list(range(6))  # one record per optimizer step
    # eval_every=0: evaluated only at the end
    assert [h["step"] for h in result.history if not math.isnan(h["eval_metric"])] == [5]
    assert result.final["eval_step"] == 5 and result.config.max_steps == 5 and result.config.epochs == 1


@pytest.mark.slow  # trains: the runner's loop
def test_accumulated_micro_batches_equal_one_big_batch(tiny_bert_dir, text_files, tmp_path):
    """2 micro-batches of 2, loss scaled by 1/2 each, make the same optimizer step as one batch of 4
    (on a copy of the tiny BERT without dropout, whose masks depend on the batch's shape)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    no_dropout = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, **no_dropout).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(tmp_path)
    config = _cfg(str(tmp_path), text_files["csv"], method="lora", max_steps=3)
    prepared = prepare(config)
    big = train(config, prepared)
    small = train(replace(config, batch_size=2, gradient_accumulation_steps=2), prepared)
    assert [h["loss"] for h in small.history[1:]] == pytest.approx([h["loss"] for h in big.history[1:]], rel=1e-5)
    big_params = dict(big.model.named_parameters())
    for name, p in small.model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p, big_params[name], rtol=1e-4, atol=1e-6)


@pytest.mark.slow  # trains: the runner's loop
def test_warmup_scales_the_applied_learning_rate(tiny_bert_dir, text_files):
    assert [steps.lr_factor(t, 4) for t in range(1, 7)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert steps.lr_factor(1, 0) == 1.0
    config = _cfg(tiny_bert_dir, text_files["csv"], method="lora", max_steps=1)
    prepared = prepare(config)
    plain, warm = (list(iter_train(replace(config, warmup_steps=w), prepared)) for w in (0, 4))
    assert isinstance(warm[0], StepEvent) and warm[0].lr == pytest.approx(plain[0].lr / 4)
    # AdamW's first step moves each entry by ~lr (m / sqrt(v) = sign(g)); LoRA's B starts at 0
    size = [
        max(p.abs().max().item() for n, p in r[-1].model.named_parameters() if "lora_B" in n) for r in (plain, warm)
    ]
    assert size[1] / size[0] == pytest.approx(0.25, rel=1e-3)
