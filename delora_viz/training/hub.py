"""The Hub: which base model an adapter names, and what `--push_to_hub` uploads.

An adapter folder names its base model in adapter_config.json. For the embedded presets that is
their public Hub id (PRESET_HUB_IDS), not a path on this machine; for anything else, the id or path
the user gave. Loading one of those ids offline resolves to the embedded preset (models.py).
A push uploads the adapter folder only: adapter weights and config (delora-paper: its exact LoRA
export), the tokenizer, the tracker history, the summary and a model card; never the base model.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

# Keys are models.py's preset names. The SmolLM2 preset is the Q4_1 GGUF dequantised: an adapter
# trained on it fits the Hub's bf16 SmolLM2 closely, not bit for bit.
PRESET_HUB_IDS = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2",
    "smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct",
}
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
EXTRA_FILES = ("delora_history.jsonl", "summary.json", "README.md")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json")
TOKENIZER_FILES += ("merges.txt", "tokenizer.model", "added_tokens.json", "chat_template.jinja")


def preset_key(spec: str | None) -> str | None:
    """ "minilm" / "smollm2" for a preset name or its public Hub id (unless the Hub copy is cached); else None."""
    if spec is None:
        return "minilm"
    key = str(spec).lower()
    if key in PRESET_HUB_IDS:
        return key
    for preset, hub_id in PRESET_HUB_IDS.items():
        if key == hub_id.lower() and not _in_hub_cache(hub_id):
            return preset
    return None


def public_model_id(spec: str | None) -> str:
    """What an adapter names as its base model: a preset's public Hub id, else the user's own id or path."""
    key = preset_key(spec)
    return PRESET_HUB_IDS[key] if key else str(spec)


def _in_hub_cache(hub_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)


def name_base_model(adapter_dir: str | Path, model_spec: str | None) -> str:
    """Write the public base-model id into adapter_config.json (PEFT wrote the local path it loaded)."""
    path = Path(adapter_dir) / "adapter_config.json"
    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = public_model_id(model_spec)
    path.write_text(json.dumps(config, indent=2, sort_keys=True))
    return config["base_model_name_or_path"]


def model_card(base_model: str, method: str, summary: dict) -> str:
    shown = {k: summary[k] for k in ("eval_name", "eval_metric", "steps", "delta_fro_mean") if k in summary}
    return (
        f"---\nbase_model: {base_model}\nlibrary_name: peft\ntags:\n- delora-viz\n- {method}\n---\n\n"
        f"# {method} adapter for {base_model}\n\nTrained with `delora-viz train`. Load it with\n\n"
        f"```python\nfrom peft import PeftModel\nmodel = PeftModel.from_pretrained(base_model, repo_id)\n```\n\n"
        f"Final metrics: `{json.dumps(shown, default=str)}`. `delora_history.jsonl` holds the update's geometry "
        "per step (norm, DeLoRA's bound, angles, lambda).\n"
    )


def files_to_push(adapter_dir: str | Path) -> list[Path]:
    """The files of an adapter folder that a push uploads (no checkpoints, event logs or old histories)."""
    folder = Path(adapter_dir)
    missing = [name for name in ADAPTER_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} is not an adapter folder: {', '.join(missing)} missing")
    names = ADAPTER_FILES + TOKENIZER_FILES + EXTRA_FILES
    return [folder / name for name in names if (folder / name).is_file()]


def push_adapter(adapter_dir: str | Path, repo_id: str, token: str | None = None, api=None) -> str:
    """Upload the adapter folder's files to `repo_id` (created if needed); returns the commit URL."""
    from huggingface_hub import HfApi

    api = api or HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="delora-viz-push-") as staging:
        for file in files_to_push(adapter_dir):
            shutil.copy2(file, Path(staging) / file.name)
        api.create_repo(repo_id, exist_ok=True)
        commit = api.upload_folder(folder_path=staging, repo_id=repo_id, commit_message="delora-viz adapter")
    return str(getattr(commit, "commit_url", commit))
