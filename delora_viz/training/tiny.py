"""A tiny random Llama on the embedded MiniLM vocabulary: a causal LM that needs no download.

Fast modes (notebooks) and tests train it where SmolLM2 would take minutes. It goes through the same code
as any checkpoint (LlamaForCausalLM, a local folder, AutoTokenizer); only its weights are random.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .models import minilm_dir


def tiny_llama(seed: int = 0, **sizes):
    """(LlamaForCausalLM with 2 layers of width 32 and 4 heads, MiniLM's tokenizer with [SEP] as eos).
    sizes: LlamaConfig fields that replace these (hidden_size=40, ...), for tests that need other shapes."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    tokenizer.eos_token = tokenizer.sep_token  # a BERT vocabulary: [SEP] ends a text
    fields = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    config = LlamaConfig(**(fields | sizes))
    with torch.random.fork_rng(devices=[]):  # seeded without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model, tokenizer


def save_tiny_llama(path, seed: int = 0) -> Path:
    """tiny_llama(seed) saved to `path` like any local checkpoint (model and tokenizer); returns the path."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model, tokenizer = tiny_llama(seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
