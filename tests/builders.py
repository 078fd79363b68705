"""Build tiny models and small data files locally, so tests never need the network.

Plain functions (no pytest fixtures): conftest.py and any test can wrap them.
The tiny models reuse the embedded MiniLM tokenizer (BERT WordPiece, 30522 tokens), so they
load with AutoTokenizer offline; their weights are random but seeded (deterministic).
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import torch

from delora_viz.training.models import minilm_dir

TOPICS = {
    "sports": [
        "The striker scored twice as the home team won the cup final",
        "A late goal sealed the match for the visitors in the league",
        "The tennis champion won the title in straight sets",
        "Fans cheered as the runner broke the marathon record",
        "The coach praised his players after the narrow win",
        "The goalkeeper saved a penalty in the second half",
        "Injury kept the captain out of the championship game",
    ],
    "weather": [
        "Heavy rain and strong winds are expected across the coast tonight",
        "A warm sunny afternoon will be followed by scattered showers",
        "Forecasters warn of snow and icy roads by the morning",
        "The heatwave will continue with temperatures above thirty degrees",
        "Thick fog slowed traffic before the sun broke through",
        "A cold front brings thunderstorms and hail to the region",
        "Clear skies tonight with frost likely in rural areas",
    ],
    "cooking": [
        "Whisk the eggs with sugar and fold in the flour gently",
        "Simmer the tomato sauce with garlic and fresh basil",
        "Roast the vegetables in olive oil until golden and crisp",
        "Knead the dough and let it rise for an hour before baking",
        "Season the soup with salt, pepper and a squeeze of lemon",
        "Fry the onions slowly until they are soft and sweet",
        "Bake the cake for forty minutes and let it cool",
    ],
}


def _tokenizer():
    """The embedded MiniLM tokenizer (loads offline)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_dir())


def _save(model, tokenizer, path) -> str:
    from transformers.utils import logging as hf_logging

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    hf_logging.disable_progress_bar()  # "Writing model shards" bars only clutter test logs
    try:
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
    finally:
        hf_logging.enable_progress_bar()
    return str(path)


def build_tiny_llama(path, seed: int = 0) -> str:
    """The library's tiny random Llama (training/tiny.py) + its MiniLM tokenizer, saved to ``path``."""
    from delora_viz.training.tiny import tiny_llama

    return _save(*tiny_llama(seed), path)


def build_tiny_bert_classifier(path, num_labels: int = 3, seed: int = 0) -> str:
    """A 2-layer BertForSequenceClassification (hidden 32, 4 heads) + MiniLM tokenizer."""
    from transformers import BertConfig, BertForSequenceClassification

    tok = _tokenizer()
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_labels=num_labels,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForSequenceClassification(config)
    return _save(model, tok, path)


def build_tiny_gpt2(path, seed: int = 0) -> str:
    """A 2-layer GPT2LMHeadModel: its blocks use Conv1D, not nn.Linear (DeLoRA cannot adapt it)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = _tokenizer()
    config = GPT2Config(
        vocab_size=len(tok),
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=128,
        bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    return _save(model, tok, path)


def labeled_rows(n_per_class: int = 14, seed: int = 0) -> list[dict]:
    """~40 short, clearly separable texts in 3 topics, shuffled deterministically."""
    rng = random.Random(seed)
    rows = []
    for topic, sentences in TOPICS.items():
        for i in range(n_per_class):
            base = sentences[i % len(sentences)]
            rows.append({"text": base if i < len(sentences) else f"{base} today", "label": topic})
    rng.shuffle(rows)
    return rows


def write_text_files(directory) -> dict[str, str]:
    """Write small data files; returns {kind: path}.

    csv: text,label (string labels)            json: list of {"sentence", "category"}
    jsonl: {"content", "label": int}           json_data: {"data": [{"text", "topic"}, ...]}
    txt: one causal-LM example per line        qa_csv: question,answer (causal LM)
    no_text_csv: numeric columns only (no text column)
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    rows = labeled_rows()
    names = sorted(TOPICS)
    paths = {
        k: d / f
        for k, f in [
            ("csv", "topics.csv"),
            ("json", "topics.json"),
            ("jsonl", "topics.jsonl"),
            ("json_data", "topics_data.json"),
            ("txt", "lines.txt"),
            ("qa_csv", "qa.csv"),
            ("no_text_csv", "numbers.csv"),
        ]
    }
    with open(paths["csv"], "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["text", "label"])
        w.writeheader()
        w.writerows(rows)
    paths["json"].write_text(json.dumps([{"sentence": r["text"], "category": r["label"]} for r in rows]))
    paths["jsonl"].write_text(
        "".join(json.dumps({"content": r["text"], "label": names.index(r["label"])}) + "\n" for r in rows)
    )
    paths["json_data"].write_text(json.dumps({"data": [{"text": r["text"], "topic": r["label"]} for r in rows]}))
    paths["txt"].write_text("\n\n".join(r["text"] + "." for r in rows) + "\n")
    with open(paths["qa_csv"], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["question", "answer"])
        w.writerows([[f"What is topic number {i}?", f"It is about {r['label']}."] for i, r in enumerate(rows[:12])])
    with open(paths["no_text_csv"], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "score", "label"])
        w.writerows([[i, i * 0.5, i % 2] for i in range(12)])
    return {k: str(p) for k, p in paths.items()}


class ToyBlock(torch.nn.Module):
    """The tests' toy attention-like block: q_proj and v_proj (the usual targets), gated, then `head`
    (not `out`: PEFT's modules_to_save matches by suffix, and "delora_dropout" ends in "out")."""

    def __init__(self, n_in: int = 48, n_hidden: int = 40, n_out: int = 6):
        super().__init__()
        self.q_proj = torch.nn.Linear(n_in, n_hidden)
        self.v_proj = torch.nn.Linear(n_in, n_hidden)
        self.head = torch.nn.Linear(n_hidden, n_out)

    def forward(self, x):
        return self.head(torch.tanh(self.q_proj(x)) * self.v_proj(x))


class TwoLayer(torch.nn.Module):
    """The tests' toy chain: up (hidden, n_in), GELU, down (n_out, hidden): two layers of different shapes."""

    def __init__(self, n_in: int = 24, hidden: int = 16, n_out: int = 5):
        super().__init__()
        self.up = torch.nn.Linear(n_in, hidden)
        self.act = torch.nn.GELU()
        self.down = torch.nn.Linear(hidden, n_out)

    def forward(self, x):
        return self.down(self.act(self.up(x)))
