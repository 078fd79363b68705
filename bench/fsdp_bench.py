"""The cost of one Tracker record per rank on an FSDP2-sharded model, at 1 and 2 ranks (gloo, CPU).

    python bench/fsdp_bench.py [--width 2048] [--layers 8] [--rank 16] [--rounds 15] [--json out.json]

Runs itself under `torchrun --nproc_per_node=N` for each N in --ranks (default 1,2). Each rank builds the
same stack of `layers` Linear(width, width) layers with our DeLoRA (init="paper", k = 2r) and PEFT LoRA
on alternate layers, shards every layer with `fully_shard`, and times per rank (barrier before each round):

    record_ms   Tracker.step() on the sharded model (gathers, partial sums, the one all-reduce, metrics)
    w_gemm_ms   the W-sized work alone: W_i @ V for each layer's local rows W_i (what sharding divides)
    gather_ms   gathering every layer's small factors whole (full_tensor, one collective per parameter)
    all_reduce_ms  one all-reduce of a buffer the size of the packed sums
    plain_ms    (1 rank only) Tracker.step() on the same model unsharded, the single-process baseline

With 2 ranks each W_i holds half the rows, so w_gemm_ms should halve; the factor-sized work (O((m + n) k^2))
and the collectives do not shrink. On a shared 2-core CPU, two ranks also compete for the cores: read the
ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402


def build(width: int, layers: int, r: int) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    from delora_viz.delora.layer import add_delora

    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(width, width, bias=False) for _ in range(layers)])
    add_delora(model, [str(i) for i in range(0, layers, 2)], r=r, delora_lambda=5.0, init="paper")
    lora = [str(i) for i in range(1, layers, 2)]
    if lora:
        model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=lora))
        for module in model.modules():  # a trained-looking update: B != 0
            if hasattr(module, "lora_B"):
                nn.init.normal_(module.lora_B["default"].weight, std=0.02)
    return model


def _time(fn, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        torch.distributed.barrier()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def worker(args) -> None:
    from torch.distributed.fsdp import fully_shard

    from delora_viz.instruments.distributed import gather_params, local_rows
    from delora_viz.instruments.track import Tracker

    torch.distributed.init_process_group("gloo")
    torch.set_num_threads(1)  # one core per rank: the ranks do not fight over threads
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    result = {"ranks": world}
    if world == 1:
        plain = Tracker(build(args.width, args.layers, args.rank))
        plain.step(0)
        result["plain_ms"] = 1e3 * statistics.median(_time(lambda: plain.step(0), args.rounds))
    model = build(args.width, args.layers, args.rank)
    for module in model.modules():
        if isinstance(module, nn.Linear) and module.weight.shape == (args.width, args.width):
            fully_shard(module)
    fully_shard(model)
    tracker = Tracker(model)
    tracker.step(0)  # warm-up (and the cached row norms of W)
    result["record_ms"] = 1e3 * statistics.median(_time(lambda: tracker.step(0), args.rounds))
    Ws = [local_rows(v.weight().detach(), True)[0] for v in tracker.views]
    V = torch.randn(args.width, 2 * args.rank)

    def gemms():
        for W in Ws:
            W @ V

    result["w_gemm_ms"] = 1e3 * statistics.median(_time(gemms, args.rounds))
    result["local_rows"] = Ws[0].shape[0]
    result["gather_ms"] = 1e3 * statistics.median(
        _time(lambda: [gather_params([[v.params()]]) for v in tracker.views], args.rounds)  # one call per layer
    )
    flat = torch.zeros(len(tracker.views) * (2 * args.rank) ** 2 * 2)  # about the size of the packed sums
    result["all_reduce_ms"] = 1e3 * statistics.median(_time(lambda: torch.distributed.all_reduce(flat), args.rounds))
    Path(os.environ["FSDP_BENCH_OUT"], f"{rank}.json").write_text(json.dumps(result))  # stdout interleaves
    torch.distributed.destroy_process_group()


def launch(n: int, argv: list[str]) -> list[dict]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = Path(tempfile.mkdtemp(prefix="fsdp-bench-"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FSDP_BENCH_WORKER": "1", "FSDP_BENCH_OUT": str(out)}
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}", f"--master_port={port}",
           "--master_addr=127.0.0.1", __file__, *argv]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode:
        sys.exit(f"torchrun with {n} ranks failed:\n{proc.stderr[-3000:]}")
    return [dict(json.loads((out / f"{i}.json").read_text()), rank=i) for i in range(n)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--ranks", default="1,2")
    p.add_argument("--json", default="bench/results_fsdp.json")
    args = p.parse_args()
    if os.environ.get("FSDP_BENCH_WORKER"):
        return worker(args)
    argv = [a for a in sys.argv[1:]]
    results = [row for n in (int(x) for x in args.ranks.split(",")) for row in launch(n, argv)]
    print(f"{args.layers} layers of {args.width} x {args.width}, r = {args.rank} (DeLoRA paper init k = 2r, LoRA)")
    print(
        f"{'ranks':>5} {'rank':>4} {'rows of W':>9} {'record ms':>9} {'W @ V ms':>8} {'gathers ms':>10} "
        f"{'all-reduce ms':>13} {'unsharded ms':>12}"
    )
    for row in results:
        plain = f"{row['plain_ms']:.2f}" if "plain_ms" in row else "-"
        print(
            f"{row['ranks']:>5} {row['rank']:>4} {row['local_rows']:>9} {row['record_ms']:>9.2f} "
            f"{row['w_gemm_ms']:>8.2f} {row['gather_ms']:>10.2f} {row['all_reduce_ms']:>13.2f} {plain:>12}"
        )
    out = {"config": vars(args), "results": results, "torch": torch.__version__, "nproc": os.cpu_count()}
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
