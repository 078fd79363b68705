"""One look at a model's adapters as they are now: the Tracker's step-0 record, plus each update's spectrum.

    rows = inspect_model(peft_model)           # one dict per adapted layer: COLUMNS + sv_1 .. sv_k
    rows = inspect_model(peft_model, metadata=read_metadata(adapter_dir))   # a LoRA-shaped DeLoRA export

Every number comes from the Tracker (same adapter views, same closed forms, same dtype), so a record of a
reloaded adapter equals the last record of the run that trained it to float32 rounding: within 1e-5
relative per column (measured ~1e-7; a reloaded adapter may be measured in another batch, and a paper-init
export is re-read from its rank-2r LoRA factors, so the sums round differently). sv_i are the top singular values of
dW = U V^T from the k x k core of two thin QRs (sv_1 equals the Tracker's sigma_max, taken from the
float64 Grams' eigenvalues, to ~1e-7 relative); NaN past the rank and for DoRA, whose
dW = diag(g - 1) W + s diag(g) B A is not low-rank.

`metadata` (delora/peft_io.METADATA_NAME) relabels layers exported by save_peft_lora: a rank-2r LoRA that is
really a DeLoRA update keeps its measured ||dW|| and angles, and gets its method, rank r, lambda and bound:

    bound_ratio = ||dW||_F / bound        (in the Tracker's dtype, as the Tracker computes it)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..delora.geometry import DoraUpdate, singular_values
from ..errors import DeloraVizError
from .track import Tracker

TOP_K = 8  # singular values kept per layer: >= 2 r for the usual r <= 4, enough to see the fall-off
NAN = float("nan")


def sv_columns(top_k: int = TOP_K) -> list[str]:
    return [f"sv_{i}" for i in range(1, top_k + 1)]


def inspect_model(
    model: nn.Module, metadata: dict | None = None, top_k: int = TOP_K, step: int = 0, dtype=torch.float32
) -> list[dict]:
    """One row per adapted layer of `model`: the Tracker's columns (at `step`) and sv_1 .. sv_top_k."""
    if int(top_k) < 1:
        raise DeloraVizError(f"top_k must be >= 1, got {top_k}")
    tracker = Tracker(model, dtype=dtype)
    rows = tracker.step(step)
    with torch.no_grad():
        for row, view in zip(rows, tracker.views):
            values = [NAN] * top_k
            update = view.update()
            if not isinstance(update, DoraUpdate):
                s = singular_values(update.to(dtype)).cpu().tolist()  # descending, at most k
                values[: min(top_k, len(s))] = s[:top_k]
            row.update(zip(sv_columns(top_k), values))
    if metadata:
        _relabel(rows, metadata, dtype)
    return rows


def _relabel(rows: list[dict], metadata: dict, dtype) -> None:
    """Method, rank, lambda and bounds of each layer the metadata names (see peft_io.export_metadata)."""
    layers = metadata.get("layers", {})
    for row in rows:
        meta = layers.get(row["layer"])
        if meta is None:
            continue
        row["method"] = str(meta.get("method", metadata.get("method", row["method"])))
        row["rank"] = int(meta.get("rank", metadata.get("rank", row["rank"])))
        for key in ("lambda", "bound", "bound_loose"):
            row[key] = float(meta[key]) if meta.get(key) is not None else NAN
        if not math.isnan(row["bound"]):  # the Tracker's division, in its dtype, for bit-equal ratios
            row["bound_ratio"] = (
                torch.tensor(row["delta_fro"], dtype=dtype) / torch.tensor(row["bound"], dtype=dtype)
            ).item()
