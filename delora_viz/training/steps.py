"""The pieces of one optimizer step: batches, precision, learning-rate schedule, loss, evaluation, RNG.

Optimizer steps and epochs (the rule transformers' Trainer, hence PEFT's example script, uses):

    B               = batch_size * gradient_accumulation_steps          # examples per optimizer step
    steps_per_epoch = ceil(n_train / B)
    steps           = ceil(epochs * steps_per_epoch)    (config.max_steps when epochs is None)

Each epoch is a fresh seeded permutation of the training set cut into optimizer steps of B examples;
the epoch's last step takes the remainder (n_train mod B examples, in micro-batches of at most
batch_size), so an epoch sees every training example exactly once and epochs start on a step boundary.
For epochs = 1 (or B dividing n_train) this is exactly ceil(epochs * n_train / B).

A step's loss is the mean over its examples: micro-batch k of n_k examples adds (n_k / n_step) * loss_k,
which is loss_k / gradient_accumulation_steps when all micro-batches are full.

Learning rate at optimizer step t = 1, 2, ...: base * min(1, t / warmup_steps), then constant (no decay:
the app compares methods and sweeps rates at a fixed rate; a decay would blur what the rate does).

Precision: the model's frozen weights keep the loaded dtype; every trainable parameter (adapters and
task head) is float32, and forward passes run under autocast in the loaded dtype. float16 adds a
torch.amp.GradScaler (bf16 has float32's range and needs none).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import nullcontext

import torch

from .config import TrainConfig


# ----------------------------------------------------------------------------- how many steps, which examples
def steps_per_epoch(n_train: int, batch_size: int, accumulation: int = 1) -> int:
    return math.ceil(n_train / (batch_size * accumulation))


def optimizer_steps(config: TrainConfig, n_train: int) -> int:
    """The run's number of optimizer steps: config.max_steps, or ceil(epochs * steps_per_epoch) (module docstring)."""
    if config.epochs is None:
        return config.max_steps
    per_epoch = steps_per_epoch(n_train, config.batch_size, config.gradient_accumulation_steps)
    return max(1, math.ceil(config.epochs * per_epoch - 1e-9))  # 1e-9: 0.1 * 30 is 3.0000000000000004


def step_indices(n: int, batch_size: int, accumulation: int, seed: int) -> Iterator[list[list[int]]]:
    """Endless optimizer steps, each a list of micro-batches of example indices (module docstring)."""
    generator = torch.Generator().manual_seed(seed)
    per_step = batch_size * accumulation
    while True:
        order = torch.randperm(n, generator=generator).tolist()  # one epoch
        for start in range(0, n, per_step):
            chunk = order[start : start + per_step]
            yield [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]


def encode(texts, labels, idx, config: TrainConfig, loaded) -> dict:
    enc = loaded.tokenizer(
        [texts[i] for i in idx], truncation=True, max_length=config.max_length, padding=True, return_tensors="pt"
    )
    batch = {k: v.to(loaded.device) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    if labels is not None:
        batch["labels"] = torch.tensor([labels[i] for i in idx], device=loaded.device)
    else:  # causal LM: predict every real token; padding is ignored
        batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    return batch


def batches(data, config: TrainConfig, loaded) -> Iterator[dict]:
    """The encoded micro-batches in training order (one optimizer step = gradient_accumulation_steps of them)."""
    for step in step_indices(len(data.train_texts), config.batch_size, config.gradient_accumulation_steps, config.seed):
        for idx in step:
            yield encode(data.train_texts, data.train_labels, idx, config, loaded)


# ----------------------------------------------------------------------------- precision
def autocast(loaded):
    """Autocast to the loaded dtype (bf16/fp16); a no-op in float32."""
    if loaded.dtype == torch.float32:
        return nullcontext()
    return torch.autocast(loaded.device.type, dtype=loaded.dtype)


def trainable_to_float32(model: torch.nn.Module) -> None:
    """Adapters and head train in float32 whatever the base dtype (bf16 spacing at lambda = 5 is 1/32)."""
    for p in model.parameters():
        if p.requires_grad and p.is_floating_point() and p.dtype != torch.float32:
            p.data = p.data.float()


def grad_scaler(loaded) -> torch.amp.GradScaler:
    """Enabled for float16 only: its gradients underflow without loss scaling."""
    return torch.amp.GradScaler(loaded.device.type, enabled=loaded.dtype == torch.float16)


def lr_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up over warmup_steps optimizer steps (step 1 gets 1/warmup_steps), then 1."""
    return 1.0 if warmup_steps <= 0 else min(1.0, step / warmup_steps)


def param_groups(model, head_modules, lr, head_lr):
    """Adapter parameters at the method's rate; the task head (trained by every method) at head_lr."""
    adapter, head = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (head if any(f".{h}." in f".{name}." for h in head_modules) else adapter).append(p)
    return [g for g in ({"params": adapter, "lr": lr}, {"params": head, "lr": head_lr}) if g["params"]]


# ----------------------------------------------------------------------------- one step
def loss_of(model, batch, loaded) -> torch.Tensor:
    with autocast(loaded):
        return model(**batch).loss.float()


def optimizer_step(model, optimizer, scaler, micro, data, config, loaded, step: int, base_lrs):
    """One optimizer step over the micro-batches `micro` (lists of indices); returns the mean loss (a float).

    A non-finite loss returns NaN before the optimizer moves: the parameters stay those of step - 1."""
    optimizer.zero_grad(set_to_none=True)
    n_step = sum(len(idx) for idx in micro)
    total = torch.zeros((), device=loaded.device)
    for idx in micro:
        loss = loss_of(model, encode(data.train_texts, data.train_labels, idx, config, loaded), loaded)
        loss = loss * (len(idx) / n_step)  # the step's loss is the mean over its examples
        scaler.scale(loss).backward()
        total += loss.detach()
    total = total.item()  # the one host sync of a step
    if not math.isfinite(total):
        optimizer.zero_grad(set_to_none=True)
        return math.nan
    factor = lr_factor(step, config.warmup_steps)
    for group, base in zip(optimizer.param_groups, base_lrs):
        group["lr"] = base * factor
    scaler.step(optimizer)  # float16: skipped when a gradient overflowed, and the scale shrinks
    scaler.update()
    return total


@torch.no_grad()
def evaluate(model, data, config: TrainConfig, loaded) -> float:
    """Accuracy (classification) or perplexity (causal LM) on the first eval_examples held-out texts."""
    was_training = model.training
    model.eval()
    n = min(len(data.eval_texts), config.eval_examples)
    correct, total_loss, total_tokens = 0, 0.0, 0
    for start in range(0, n, config.batch_size):
        idx = list(range(start, min(n, start + config.batch_size)))
        batch = encode(data.eval_texts, data.eval_labels, idx, config, loaded)
        with autocast(loaded):
            out = model(**batch)
        if data.task == "classification":
            correct += (out.logits.argmax(-1) == batch["labels"]).sum().item()
        else:
            tokens = (batch["labels"][:, 1:] != -100).sum().item()
            total_loss, total_tokens = total_loss + out.loss.float().item() * tokens, total_tokens + tokens
    model.train(was_training)
    if data.task == "classification":
        return correct / n
    return math.exp(min(total_loss / max(total_tokens, 1), 50.0))


# ----------------------------------------------------------------------------- a run's own random numbers
class RunRNG:
    """A run's own torch RNG streams (CPU and every CUDA device), swapped in around each of its steps.

        rng = RunRNG(seed)
        with rng: ...   # draws (init, dropout) come from the run's stream; the caller's is put back after

    Interleaved runs (compare, sweeps) then draw exactly what each would draw alone. The loop uses no
    Python `random` or numpy draws (its data order has its own torch.Generator), so only torch's are kept.
    """

    def __init__(self, seed: int):
        self.seed = seed
        self.cpu = torch.Generator().manual_seed(seed).get_state()  # = torch.manual_seed(seed)'s, caller untouched
        self.cuda: list[torch.Tensor] | None = None  # drawn on first use: CUDA may start after this
        self._outer = None

    @staticmethod
    def _cuda_on() -> bool:
        return torch.cuda.is_available() and torch.cuda.is_initialized()

    def __enter__(self):
        cuda_outer = torch.cuda.get_rng_state_all() if self._cuda_on() else None
        self._outer = (torch.get_rng_state(), cuda_outer)
        torch.set_rng_state(self.cpu)
        if cuda_outer is not None:
            if self.cuda is None:
                torch.cuda.manual_seed_all(self.seed)
            else:
                torch.cuda.set_rng_state_all(self.cuda)
        return self

    def __exit__(self, *exc):
        cpu_outer, cuda_outer = self._outer
        self.cpu = torch.get_rng_state()
        torch.set_rng_state(cpu_outer)
        if self._cuda_on():
            self.cuda = torch.cuda.get_rng_state_all()
            if cuda_outer is not None:
                torch.cuda.set_rng_state_all(cuda_outer)
        return False
