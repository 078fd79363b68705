"""delora-viz benchmarks: one entry point, ratios measured side by side in one process.

    python bench/run.py [--quick] [--device cpu|cuda] [--json out.json]

Sections (--only picks some): geometry (closed form vs dense, speed and peak extra memory),
tracking (Tracker.step() overhead on real training steps), layer (our DeLoRALinear vs PEFT's),
app (the app's default comparison: time to first live point and to the end), scaling (tracker cost
vs layers and width, extrapolated to Llama-8B). Prints tables and a target summary; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

for _k, _v in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_k, _v)


# OpenMP waiting policy. Threads that spin while waiting (libgomp's default) turn every parallel region
# into a wait for a CPU time slice (~20 ms) when other processes keep the cores busy; sleeping
# (PASSIVE) waiters avoid that but cost ~0.1 ms to wake per BLAS call on a calm machine. Either can
# dominate the many small ops of Tracker.step(), so the choice is made before torch loads libgomp
# (hence this look at argv before argparse) and recorded with the results. --omp-wait-policy:
# passive (default: the only choice that stays stable when other processes' load changes mid-run),
# default (libgomp's own), active, or auto (passive if the 1-minute load average already exceeds 3/4
# of the CPUs at start, else libgomp's default). Without the flag an OMP_WAIT_POLICY already in the
# environment is respected.
def _omp_policy(argv) -> str:
    policy = next((a.split("=", 1)[1] for a in argv if a.startswith("--omp-wait-policy=")), None)
    if "--omp-wait-policy" in argv[:-1]:
        policy = argv[argv.index("--omp-wait-policy") + 1]
    if policy is None and "OMP_WAIT_POLICY" in os.environ:
        return f"from the environment ({os.environ['OMP_WAIT_POLICY']})"
    if policy is None:
        policy, reason = "passive", "the benchmark's default"
    elif policy == "auto":
        try:
            busy = os.getloadavg()[0] > 0.75 * len(os.sched_getaffinity(0))
        except (OSError, AttributeError):
            busy = False
        policy = "passive" if busy else "default"
        reason = "auto: machine busy" if busy else "auto: machine calm"
    else:
        reason = "forced"  # an invalid value is rejected by argparse below
    if policy == "default":
        os.environ.pop("OMP_WAIT_POLICY", None)
    elif policy in ("passive", "active"):
        os.environ["OMP_WAIT_POLICY"] = policy.upper()
    return f"{policy} ({reason})"


OMP_POLICY = _omp_policy(sys.argv)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # sibling modules: benchlib, geometry_bench, ...

import torch  # noqa: E402
from benchlib import load_average, machine_info  # noqa: E402
from report import report, targets  # noqa: E402

SECTIONS = ("geometry", "tracking", "layer", "app", "scaling")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _shapes(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in s.split("x")) for s in text.split(",") if s.strip()]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="delora-viz benchmarks (ratios measured side by side).")
    p.add_argument("--quick", action="store_true", help="small sizes, few repeats: under 3 minutes on 2 CPU cores")
    p.add_argument("--device", default="cpu", help="cpu or cuda (CUDA events + synchronize for timing)")
    p.add_argument(
        "--dtype", default="auto", help="model / W storage dtype: auto (fp32 on CPU, bf16 on CUDA), float32, bfloat16"
    )
    p.add_argument(
        "--json", default=str(HERE / "results.json"), help="where to write the results (default bench/results.json)"
    )
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections among {','.join(SECTIONS)}")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument(
        "--omp-wait-policy",
        choices=("passive", "default", "active", "auto"),
        default="passive",
        help="OpenMP waiting threads, chosen before torch loads (default passive: stable on shared machines; "
        "'default' = libgomp's spinning default); see the comment at the top of this file",
    )
    # geometry
    p.add_argument("--sizes", default=None, help="square layer widths (default 1024,4096,8192; quick 1024,4096)")
    p.add_argument("--ranks", default="8,16,64")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds per geometry case (default 7; quick 3)")
    # training benchmarks
    p.add_argument(
        "--model", default=None, help="model for tracking/layer benchmarks (default: embedded MiniLM; e.g. smollm2)"
    )
    p.add_argument(
        "--data", default=None, help="data for tracking/layer benchmarks (default: the model's embedded default)"
    )
    p.add_argument(
        "--task", default=None, help="classification | causal_lm (default: from the model, as TrainConfig does)"
    )
    p.add_argument("--rank", type=int, default=8, help="adapter rank in the training benchmarks")
    p.add_argument("--rounds", type=int, default=None, help="interleaved A/B rounds (default 15; quick 7)")
    p.add_argument(
        "--layer-widths", default=None, help="single-layer ours-vs-PEFT widths (default 384,1024,4096; quick 1024)"
    )
    # app
    p.add_argument("--app-steps", type=int, default=None, help="steps per method (default TrainConfig's 40; quick 4)")
    p.add_argument("--app-model", default=None, help="default: the app's default model")
    p.add_argument("--app-data", default=None, help="default: the app's default data")
    p.add_argument("--app-eval-examples", type=int, default=None)
    # scaling
    p.add_argument("--scaling-widths", default=None, help="default 256,1024,2048,4096; quick 256,1024")
    p.add_argument("--scaling-layers", default=None, help="default 1,4,16,64; quick 1,4,16")
    p.add_argument(
        "--scaling-checks",
        default=None,
        help="non-square OUTxIN shapes to check the fit (default 1024x4096,4096x1024; quick 256x1024)",
    )
    p.add_argument("--scaling-rank", type=int, default=16)
    p.add_argument(
        "--gemm-width", type=int, default=None, help="layer width of the closed form vs W @ V ratio (4096; quick 1024)"
    )
    args = p.parse_args(argv)
    q = args.quick
    args.sizes = _ints(args.sizes or ("1024,4096" if q else "1024,4096,8192"))
    args.ranks = _ints(args.ranks)
    args.repeats = args.repeats or (3 if q else 7)
    args.rounds = args.rounds or (7 if q else 15)
    args.warmup = 1 if q else 2
    args.layer_widths = _ints(args.layer_widths or ("1024" if q else "384,1024,4096"))
    args.app_steps = args.app_steps or (4 if q else None)
    args.scaling_widths = _ints(args.scaling_widths or ("256,1024" if q else "256,1024,2048,4096"))
    args.scaling_layers = _ints(args.scaling_layers or ("1,4,16" if q else "1,4,16,64"))
    args.scaling_checks = _shapes(args.scaling_checks or ("256x1024" if q else "1024x4096,4096x1024"))
    args.gemm_width = args.gemm_width or (1024 if q else 4096)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}; choose among {SECTIONS}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda but torch.cuda.is_available() is False here; use --device cpu")
    if args.dtype == "auto":
        args.dtype = "bfloat16" if args.device.startswith("cuda") and torch.cuda.is_bf16_supported() else "float32"
    args.torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    return args


# ----------------------------------------------------------------------------- sections
def run_app(args, log) -> dict:
    cmd = [sys.executable, str(HERE / "app_bench.py"), "--device", args.device]
    for flag, value in (
        ("--steps", args.app_steps),
        ("--model", args.app_model),
        ("--data", args.app_data),
        ("--eval-examples", args.app_eval_examples),
        ("--threads", args.threads),
    ):
        if value is not None:
            cmd += [flag, str(value)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("APP_BENCH ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"app benchmark failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(lines[-1].removeprefix("APP_BENCH "))
    log(
        f"  app: {result['model']} on {result['device']}, {len(result['methods'])} methods x {result['steps']} steps: "
        f"first live point {result['first_point_s']:.1f} s (prepare "
        f"{result['prepare_s']:.1f} s), end {result['end_s']:.1f} s"
    )
    return result


def _clean(obj):
    """JSON-safe: NaN/inf -> None (strict JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    log = lambda *a: print(*a, flush=True)  # noqa: E731
    started = time.perf_counter()
    machine = machine_info(args.device)
    machine["omp_wait_policy_choice"] = OMP_POLICY
    log(
        f"delora-viz benchmarks on {machine['cpu_model']} ({machine['nproc']} CPUs, torch {machine['torch']}, "
        f"{machine['torch_threads']} threads, load "
        f"{machine['load_average_1min_at_start']}, OpenMP wait policy {OMP_POLICY}), "
        f"device {args.device}, dtype {args.dtype}"
        f"{', quick' if args.quick else ''}"
    )
    if machine["load_average_1min_at_start"] and machine["load_average_1min_at_start"] > machine["nproc"]:
        log(
            f"  warning: load average {machine['load_average_1min_at_start']} "
            f"> {machine['nproc']} CPUs: other processes compete "
            "for the cores; absolute times (and ratios involving many small ops) will be noisy. See bench/RESULTS.md."
        )
    results: dict = {}
    seconds: dict = {}
    load: dict = {}
    prepared = None
    config = None
    for section in [s for s in SECTIONS if s in args.only]:
        t0 = time.perf_counter()
        log(f"[{section}]")
        if section == "geometry":
            import geometry_bench

            results["geometry"] = geometry_bench.run(
                args.sizes, args.ranks, args.repeats, args.warmup, args.device, args.torch_dtype, log=log
            )
            if 4096 in args.sizes and 16 in args.ranks:  # the target case: where the time goes
                results["geometry_breakdown"] = geometry_bench.breakdown(
                    4096, 16, args.repeats, args.warmup, args.device, args.torch_dtype, log=log
                )
        elif section in ("tracking", "layer"):
            import training_bench as tb

            if prepared is None:
                config = tb.train_config(args.model, args.data, args.device, args.dtype, r=args.rank, task=args.task)
                from delora_viz.training.loop import prepare

                prepared = prepare(config)
                log(
                    f"  model: {prepared.loaded.name}, {prepared.data.task}, "
                    f"targets {prepared.loaded.default_target_modules}, "
                    f"{prepared.loaded.dtype}, batch {config.batch_size} x {config.max_length}"
                )
            if section == "tracking":
                results["tracking"] = tb.tracking_overhead(prepared, config, args.rounds, args.warmup, log=log)
            else:
                results["layer"] = [tb.ours_vs_peft_model(prepared, config, args.rounds, args.warmup, log=log)]
                results["layer"] += tb.ours_vs_peft_layer(
                    args.layer_widths,
                    args.rank,
                    config.delora_lambda,
                    args.rounds,
                    args.warmup,
                    args.device,
                    args.torch_dtype,
                    log=log,
                )
        elif section == "app":
            results["app"] = run_app(args, log)
        elif section == "scaling":
            import scaling_bench

            results["scaling"] = scaling_bench.scaling(
                args.scaling_widths,
                args.scaling_layers,
                args.scaling_rank,
                args.repeats,
                args.warmup,
                args.device,
                args.torch_dtype,
                extra_shapes=args.scaling_checks,
                log=log,
            )
            results["scaling"]["closed_vs_gemm"] = scaling_bench.closed_form_vs_gemm(
                args.gemm_width, args.scaling_rank, args.rounds, args.warmup, args.device, args.torch_dtype, log=log
            )
        seconds[section] = time.perf_counter() - t0
        load[section] = load_average()
    results["targets"] = targets(results)
    runtime = time.perf_counter() - started
    report(results, log)
    log(f"\ntotal {runtime:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())})")
    machine["load_average_1min_after_section"] = load
    out = dict(
        machine=machine,
        config={k: v for k, v in vars(args).items() if k != "torch_dtype"},
        results=results,
        section_seconds=seconds,
        runtime_s=runtime,
    )
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(out), indent=1, default=str) + "\n")
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
