"""What the app lets a visitor ask the server to read, download and train: the path / Hub policy and limits.

On the default 127.0.0.1 bind the user is on their own machine: local paths and Hub ids work as typed.
Served beyond loopback (or with --share) the Model and Dataset boxes take presets, uploads and Hub ids
only: a server path is refused with ONE message whether or not it exists (no existence oracle, nothing
of its content echoed), Hub models are size-capped before download and Hub datasets are streamed up to
a row cap (never all splits). Caps on rank, steps, batch, length and model size apply everywhere.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..training.models import EMBEDDED_MODEL, SMOLLM2_PRESET

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")  # "name" or "org/name", no "..", no "/x"
EMBEDDED_DATA = ("bbc-news", "bbc", "chatterbot-qa", "chatterbot")
# what the adapter configs name as the base model when served (never the server's package folders)
PUBLIC_SOURCES = {
    EMBEDDED_MODEL: "sentence-transformers/all-MiniLM-L6-v2",
    SMOLLM2_PRESET: "HuggingFaceTB/SmolLM2-135M-Instruct",
}
MODEL_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*"]  # no *.bin pickles, no extras
NO_SERVER_PATHS = (
    "this server does not read its own files: pick a model above or enter a Hugging Face id like 'org/name'"
)
NO_SERVER_DATA = (
    "this server does not read its own files: upload a csv / json / jsonl / txt, leave the box blank for "
    "BBC News, or enter a Hugging Face dataset like 'org/name[:config][@split]'"
)


@dataclass
class Policy:
    """Who may ask for what. `served` = reachable beyond this machine (another host or --share)."""

    served: bool = False
    local_paths: bool = True  # Model / Dataset boxes may name server paths
    hub: bool = True  # Hub ids may be downloaded
    limit_model_mb: float = 1024.0  # Hub model download cap (weights + tokenizer), checked before download
    limit_params_m: float = 1000.0  # millions of parameters of any model, checked after load
    limit_hub_rows: int = 20_000  # rows streamed from a Hub dataset
    limit_rank: int = 256
    limit_steps: int = 2000
    limit_batch: int = 64
    limit_length: int = 512

    @classmethod
    def for_launch(cls, host: str, share: bool, allow_local_paths: bool = False, hub: bool = True, **caps):
        served = share or not is_loopback(host)
        return cls(served=served, local_paths=allow_local_paths or not served, hub=hub, **caps)


def is_loopback(host: str | None) -> bool:
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _path_like(spec: str) -> bool:
    return spec.startswith(("/", ".", "~", "\\")) or "\\" in spec or ".." in spec or not HUB_ID.match(spec)


# ----------------------------------------------------------------------------- caps
def check_caps(policy: Policy, *, r: int, max_steps: int, batch_size: int, max_length: int) -> None:
    """ValueError naming the setting and the server's cap."""
    for name, value, cap in (
        ("rank r", r, policy.limit_rank),
        ("steps", max_steps, policy.limit_steps),
        ("batch size", batch_size, policy.limit_batch),
        ("max length (tokens)", max_length, policy.limit_length),
    ):
        if isinstance(value, int) and value > cap:
            raise ValueError(f"{name} is {value}; this server allows at most {cap}: lower it")


def check_model_size(policy: Policy, model) -> None:
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    if millions > policy.limit_params_m:
        raise ValueError(
            f"the model has {millions:.0f}M parameters; this server trains at most {policy.limit_params_m:.0f}M: "
            "pick a smaller model"
        )


def check_targets(model, targets: list[str], r: int) -> None:
    """Target names that match nn.Linear layers, and a rank each of them can hold (r <= min(in, out))."""
    import torch

    linear = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    leaves = list(dict.fromkeys(n.rsplit(".", 1)[-1] for n in linear))
    chosen = {n: m for n, m in linear.items() if n.rsplit(".", 1)[-1] in targets or n in targets}
    if not chosen:
        raise ValueError(
            f"no linear layer is named {', '.join(targets)}; in the target modules box pick from: {', '.join(leaves)}"
        )
    name, narrowest = min(chosen.items(), key=lambda kv: min(kv[1].in_features, kv[1].out_features))
    width = min(narrowest.in_features, narrowest.out_features)
    if r > width:
        raise ValueError(
            f"rank r={r} is larger than the target layers allow: {name} is {narrowest.out_features} x "
            f"{narrowest.in_features}, so r can be at most {width}"
        )


# ----------------------------------------------------------------------------- model and data sources
def hub_api():
    """The Hub client (a function, so tests can replace it with a mock)."""
    from huggingface_hub import HfApi

    return HfApi()


def hub_model_mb(repo_id: str) -> float:
    info = hub_api().model_info(repo_id, files_metadata=True)
    keep = [s for s in info.siblings or [] if any(Path(s.rfilename).match(p) for p in MODEL_FILES)]
    return sum(s.size or 0 for s in keep) / 2**20


def resolve_model(spec: str, policy: Policy) -> tuple[str, str | None]:
    """(what load_model gets, the public name for adapter configs or None to keep the loader's)."""
    key = spec.strip()
    if key.lower() in PUBLIC_SOURCES:
        return key.lower(), PUBLIC_SOURCES[key.lower()] if policy.served else None
    if policy.local_paths:
        return key, None
    if _path_like(key):
        raise ValueError(NO_SERVER_PATHS)
    if not policy.hub:
        raise ValueError("this server downloads no models: pick one of the models above")
    try:
        size = hub_model_mb(key)
    except Exception:  # noqa: BLE001 - not found, private, offline: one message, nothing about the server
        raise ValueError(f"model '{key}' was not found on the Hugging Face Hub (or the Hub is not reachable)") from None
    if size > policy.limit_model_mb:
        raise ValueError(
            f"model '{key}' is {size:.0f} MB; this server downloads at most {policy.limit_model_mb:.0f} MB: "
            "pick a smaller model"
        )
    try:
        folder = hub_api().snapshot_download(key, allow_patterns=MODEL_FILES)
    except Exception:  # noqa: BLE001
        raise ValueError(f"model '{key}' could not be downloaded from the Hugging Face Hub") from None
    return str(folder), key


def stream_hub_rows(name: str, config: str | None, split: str, rows: int) -> list[dict]:
    """The first `rows` rows of one split, streamed (only what is read is downloaded)."""
    import datasets

    stream = datasets.load_dataset(name, config, split=split, streaming=True)
    return [dict(row) for row in stream.take(rows)]


def resolve_dataset(spec: str | None, policy: Policy, directory: Path) -> str | None:
    """What load_data gets: unchanged locally; served, a Hub dataset becomes a capped jsonl in `directory`."""
    key = (spec or "").strip()
    if not key or key.lower() in EMBEDDED_DATA or policy.local_paths:
        return key or None
    name, _, split = key.partition("@")
    name, _, config = name.partition(":")
    if _path_like(name) or (config and not HUB_ID.match(config)) or (split and not re.match(r"^[\w.\[\]:%-]+$", split)):
        raise ValueError(NO_SERVER_DATA)
    if not policy.hub:
        raise ValueError("this server downloads no datasets: upload a file, or leave the box blank for BBC News")
    try:
        if Path(name).exists():  # datasets would read a server folder of that name: the not-found message
            raise LookupError(name)
        rows = stream_hub_rows(name, config or None, split or "train", policy.limit_hub_rows)
    except Exception:  # noqa: BLE001
        raise ValueError(
            f"dataset '{key}' could not be streamed from the Hugging Face Hub (name, config or split not found, "
            "or the Hub is not reachable)"
        ) from None
    target = Path(directory) / (re.sub(r"[^\w.-]+", "_", key) + ".jsonl")
    with open(target, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, default=str) + "\n")
    return str(target)


def parse_auth(value: str | None) -> list[tuple[str, str]] | None:
    """--auth USER:PASS, or a file with one USER:PASS per line."""
    if not value:
        return None
    lines = Path(value).read_text().splitlines() if Path(value).is_file() else [value]
    pairs = [tuple(line.strip().split(":", 1)) for line in lines if line.strip() and not line.startswith("#")]
    if not pairs or any(len(p) != 2 or not p[0] or not p[1] for p in pairs):
        raise ValueError("--auth takes USER:PASS, or a file with one USER:PASS per line")
    return pairs
