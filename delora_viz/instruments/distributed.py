"""Measuring sharded models (FSDP2) without gathering any weight: ranks, local rows, one all-reduce.

FSDP2 (`torch.distributed.fsdp.fully_shard`) keeps every parameter as a DTensor with `Shard(0)`: the
rows of W (m x n) are split over the ranks in torch.chunk order (rank i holds rows [i c, (i+1) c),
c = ceil(m / ranks)); buffers (DeLoRA's `delora_w_norm`, the paper init's A0/B0) stay whole. With
dW = U V^T every number the Tracker records comes from sums over W's rows:

    U^T U = sum_ranks U_i^T U_i      <dW, W> = sum_ranks sum(U_i * (W_i V))      ||W||^2 = sum_ranks ||W_i||^2

so each rank works on its own rows W_i (and the matching rows U_i of U), the small factors A, B,
lambda and DoRA's magnitudes of every layer are gathered whole in one all-gather (O((m + n) r) each),
and one all-reduce of a flat tensor holding every layer's partial sums finishes a record. Collectives
need every rank: all ranks measure every record, and only rank 0 writes the history or reports scalars.

What is not an FSDP2 `Shard(0)` DTensor on a 1-D mesh (FSDP1's flat parameters, DeepSpeed ZeRO-3
partitions, HSDP / 2-D meshes) is refused by `check_shardable` with a message that says what to do.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import fields, replace

import torch
from torch import Tensor, nn


# ----------------------------------------------------------------------------- ranks
def is_distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def get_rank() -> int:
    """This process's rank in the default group (0 without torch.distributed)."""
    return torch.distributed.get_rank() if is_distributed() else 0


def is_main_process() -> bool:
    """False on every rank but 0 of an initialised torch.distributed group (DDP, FSDP, torchrun, accelerate)."""
    return get_rank() == 0


# ----------------------------------------------------------------------------- DTensors
def is_dtensor(t) -> bool:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch built without distributed
        return False
    return isinstance(t, DTensor)


def local_rows(W: Tensor, reduced: bool = False) -> tuple[Tensor, slice]:
    """The rows of W this rank holds and where they sit in the full W: (W_i (m_i, ...), slice).

    A FSDP2 DTensor `Shard(0)` holds rows [start, start + m_i) with start = rank * ceil(m / ranks)
    (torch.chunk order, the last ranks possibly empty). A plain tensor is all rows, except when the sums
    are `reduced` over ranks: then rank 0 alone counts it (the others get no rows), so it is counted once."""
    if not is_dtensor(W):
        m = W.shape[0]
        return (W, slice(0, m)) if not reduced or get_rank() == 0 else (W[:0], slice(m, m))
    from torch.distributed.tensor import Replicate

    _check_row_sharded(W)
    local = W.to_local()
    m, parts = W.shape[0], W.device_mesh.size(0)
    if tuple(W.placements) == (Replicate(),):  # every rank holds all rows: rank 0 counts them, once
        return (local, slice(0, m)) if W.device_mesh.get_local_rank(0) == 0 else (local[:0], slice(m, m))
    start = min(W.device_mesh.get_local_rank(0) * math.ceil(m / parts), m)
    if local.shape[0] != min(math.ceil(m / parts), m - start):
        raise NotImplementedError(
            f"a weight of {m} rows holds {local.shape[0]} rows on this rank, not torch.chunk's split over "
            f"{parts} ranks; delora-viz measures FSDP2's default Shard(0) layout only"
        )
    return local, slice(start, start + local.shape[0])


def reduce_group(tensors: Iterable[Tensor]):
    """The process group the row shards of `tensors` are split over: None when nothing is sharded.
    Every sharded weight must live on the same group (one all-reduce serves them all)."""
    groups = {id(t.device_mesh.get_group(0)): t.device_mesh.get_group(0) for t in tensors if is_dtensor(t)}
    if len(groups) > 1:
        raise NotImplementedError(
            "the adapted weights are sharded over different process groups; delora-viz reduces over one group. "
            "Shard every adapted layer with the same device mesh (fully_shard's default)"
        )
    return next(iter(groups.values()), None)


def all_reduce_sum(parts: Sequence[Sequence[Tensor]], group=None) -> list[list[Tensor]]:
    """Sum every tensor of `parts` (per layer, a list of partial sums) over the ranks of `group` with ONE
    all-reduce of a flat tensor; returns the same nesting. Without a group (nothing sharded): unchanged."""
    if group is None:
        return [list(p) for p in parts]
    flat_parts = [t.reshape(-1) for layer in parts for t in layer]
    if not flat_parts:
        return [list(p) for p in parts]
    flat = torch.cat(flat_parts)  # (total,): one collective whatever the number of layers
    torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM, group=group)
    out, offset = [], 0
    for layer in parts:
        summed = []
        for t in layer:
            summed.append(flat[offset : offset + t.numel()].view(t.shape))
            offset += t.numel()
        out.append(summed)
    return out


def gather_params(raws: list[list]) -> list[list]:
    """Every sharded tensor of every RawParams in `raws` (nested lists), gathered whole with ONE all-gather.

    Each rank packs the bytes of its rows of each tensor, padded to the chunk size ceil(m / ranks) that
    torch.chunk gives every rank, into one flat uint8 buffer (the same length on every rank: it depends
    only on the global shapes); after the all-gather, rank i's rows of a tensor are at the same offset in
    rank i's buffer. Bytes, so mixed dtypes travel exactly. Collective: every rank calls it, same layers."""
    items = [(i, j, f.name, getattr(raw, f.name)) for i, row in enumerate(raws) for j, raw in enumerate(row)
             for f in fields(raw) if _needs_gather(getattr(raw, f.name))]  # fmt: skip
    if not items:
        return [list(row) for row in raws]
    mesh = items[0][3].device_mesh
    parts, group = mesh.size(0), mesh.get_group(0)
    chunks, layout = [], []
    for _, _, _, t in items:
        local = t.to_local().detach()
        chunk = math.ceil(t.shape[0] / parts)
        padded = local.new_zeros((chunk, *t.shape[1:]))
        padded[: local.shape[0]] = local
        chunks.append(padded.reshape(-1).view(torch.uint8))
        layout.append((chunk, chunks[-1].numel()))
    flat = torch.cat(chunks)  # (bytes,) this rank's rows of every small tensor
    gathered = [torch.empty_like(flat) for _ in range(parts)]
    torch.distributed.all_gather(gathered, flat, group=group)  # ONE collective for all layers
    out = [list(row) for row in raws]
    updates: dict[tuple[int, int], dict] = {}
    offset = 0
    for (i, j, name, t), (chunk, nbytes) in zip(items, layout):
        pieces = [g[offset : offset + nbytes].clone().view(t.dtype).view(chunk, *t.shape[1:]) for g in gathered]
        updates.setdefault((i, j), {})[name] = torch.cat(pieces)[: t.shape[0]]  # drop the padding rows
        offset += nbytes
    for (i, j), fields_ in updates.items():
        out[i][j] = replace(out[i][j], **fields_)
    return out


def _needs_gather(t) -> bool:
    if not is_dtensor(t):
        return False
    _check_row_sharded(t)
    from torch.distributed.tensor import Shard

    return tuple(t.placements) == (Shard(0),)


# ----------------------------------------------------------------------------- what is supported
REFUSED = "the model's weights are sharded (FSDP or DeepSpeed ZeRO-3) in a layout delora-viz cannot measure: "
WORKAROUND = (
    "Shard with FSDP2 instead (torch.distributed.fsdp.fully_shard; in accelerate: fsdp_version: 2), which "
    "delora-viz measures exactly, or track with DDP / a single device, or measure a gathered copy of the "
    "adapter after training (e.g. load the saved adapter on one device)."
)


def check_shardable(model: nn.Module) -> bool:
    """True when some weights are FSDP2 `Shard(0)` DTensors on a 1-D mesh (the Tracker reduces across
    ranks), False when nothing is sharded. Raises NotImplementedError naming the workaround for
    DeepSpeed ZeRO-3 partitions, FSDP1 flat parameters and other DTensor layouts."""
    sharded = False
    for name, p in model.named_parameters():
        if hasattr(p, "ds_id"):
            raise NotImplementedError(
                f"{REFUSED}DeepSpeed ZeRO-3 partitions (e.g. '{name}'): each rank holds a flat "
                f"slice of W that delora-viz cannot map to rows, and measuring it would give wrong numbers. "
                f"Use ZeRO-1/2 (weights stay whole) or {WORKAROUND}"
            )
        if type(p).__name__ == "FlatParameter" or "_flat_param" in name:
            raise NotImplementedError(
                f"{REFUSED}FSDP1 flat parameters (e.g. '{name}'): measuring a flat "
                f"shard would give wrong numbers. {WORKAROUND}"
            )
        if is_dtensor(p):
            _check_row_sharded(p, name)
            sharded = True
    if any(type(m).__name__ == "FullyShardedDataParallel" for m in model.modules()):
        raise NotImplementedError(f"{REFUSED}FSDP1 (FullyShardedDataParallel) and its flat parameters. {WORKAROUND}")
    return sharded


def _check_row_sharded(p, name: str = "a weight") -> None:
    from torch.distributed.tensor import Replicate, Shard

    placements = tuple(p.placements)
    if placements == (Shard(0),) or placements == (Replicate(),):
        return
    raise NotImplementedError(
        f"{REFUSED}'{name}' is a DTensor with placements {placements} on a {p.device_mesh.ndim}-D mesh; delora-viz "
        f"measures FSDP2's row sharding (Shard(0) on a 1-D mesh) only, not tensor parallelism or HSDP. {WORKAROUND}"
    )


def warn_if_meta_fallback(name: str, w_norm: Tensor) -> None:
    """PEFT computes DeLoRA's column norms w once at init; a model built on the meta device (as FSDP
    recipes do) gets ones there instead. Then the update and its bound use w = 1: say so."""
    if w_norm.numel() > 1 and bool((w_norm == 1).all()):
        warnings.warn(
            f"DeLoRA layer '{name}' has column norms w = ||W[:, j]|| that are all exactly 1: PEFT's fallback for "
            "a model created on the meta device. The update and its bound then use w = 1, not the weight's norms; "
            "create the adapter after loading the real weights (before sharding) to train the DeLoRA of the paper.",
            stacklevel=3,
        )
