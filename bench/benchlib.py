"""Shared helpers for the benchmarks: timers, interleaved A/B timing, peak extra memory, machine facts.

Every number the benchmarks report is a ratio of two things timed side by side in one process:

    times = interleave({"a": fa, "b": fb}, repeats=9, warmup=2, timer=Timer(device))
    ratio = paired_ratio(times["a"], times["b"])        # median over rounds of a_i / b_i

interleave() alternates the order (a b, b a, a b, ...) so slow drifts of a shared machine (other
workers, thermal, page cache) hit both sides alike; the ratio is taken within each round (a_i and b_i
ran seconds apart) and the median over rounds ignores the rounds that a burst of load hit.
The ratio of the medians is reported beside it: when the two disagree, the machine was too noisy.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch


# ----------------------------------------------------------------------------- timing
class Timer:
    """Seconds taken by fn(): perf_counter on CPU; CUDA events (with synchronize) on a GPU."""

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def __call__(self, fn: Callable[[], object]) -> float:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(self.device)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(self.device)
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0


def interleave(
    fns: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int,
    timer: Timer,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, list[float]]:
    """Time each function `repeats` times, alternating the order every round; warm-up rounds untimed.

    on_round(i), if given, runs (untimed) before round i (negative for warm-up rounds): e.g. to pick the
    batch that every function of that round uses."""
    names = list(fns)
    for i in range(warmup):
        if on_round is not None:
            on_round(i - warmup)
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats):
        if on_round is not None:
            on_round(i)
        for name in names if i % 2 == 0 else names[::-1]:
            times[name].append(timer(fns[name]))
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median of the per-round ratios a_i / b_i (robust to drift between rounds)."""
    return median([x / y for x, y in zip(a, b) if y > 0])


def median_ci(xs: list[float], level: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median: the order statistics x_(k), x_(n+1-k) with
    the largest k such that P(Binomial(n, 1/2) < k) <= (1 - level) / 2. For n = 15: x_(4)..x_(12)."""
    xs, n = sorted(xs), len(xs)
    if n == 0:
        return float("nan"), float("nan")
    tail, k, cdf = (1 - level) / 2, 0, 0.0
    while k < n // 2:
        cdf += math.comb(n, k) / 2**n  # P(B = k) added: P(B <= k)
        if cdf > tail:
            break
        k += 1
    k = max(k, 1)  # at least the range
    return xs[k - 1], xs[n - k]


def ratio_ci(a: list[float], b: list[float]) -> tuple[float, float]:
    """median_ci of the per-round ratios a_i / b_i."""
    return median_ci([x / y for x, y in zip(a, b) if y > 0])


def spread(xs: list[float]) -> float:
    """Relative interquartile range, a noise indicator: (q3 - q1) / median."""
    if len(xs) < 4:
        return float("nan")
    q1, _, q3 = statistics.quantiles(xs, n=4)
    return (q3 - q1) / median(xs)


# ----------------------------------------------------------------------------- memory
def peak_extra_bytes(fn: Callable[[], object], device: str | torch.device = "cpu") -> int:
    """Largest number of bytes that fn() held allocated at once beyond what existed before it ran.

    CUDA: torch.cuda.max_memory_allocated() after reset_peak_memory_stats(), minus memory_allocated()
    before. CPU: tracemalloc cannot see torch's allocator, so we run fn under torch.profiler with
    profile_memory=True and replay its allocation events (+bytes on alloc, -bytes on free, in time
    order); the peak of the running sum is the answer. It counts every tensor the CPU allocator hands
    out, intermediates inside composite ops included; it does not see scratch space that a BLAS/LAPACK
    library mallocs on its own (a few KiB to MiB for the thin products here).
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        del out
        return int(peak)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=False) as prof:
        out = fn()
        del out
    events = [
        e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]" and e.device_type().name == "CPU"
    ]
    events.sort(key=lambda e: e.start_ns())
    running = peak = 0
    for e in events:
        running += e.nbytes()
        peak = max(peak, running)
    return int(peak)


# ----------------------------------------------------------------------------- the machine
def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine_info(device: str | torch.device) -> dict:
    import peft
    import transformers

    device = torch.device(device)
    info = {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": cpu_model(),
        "torch": torch.__version__,
        "peft": peft.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "blas": "mkl" if torch.backends.mkl.is_available() else "other",
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "load_average_1min_at_start": load_average(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """Plain-text table; columns are (header, key, format spec)."""
    cells = [[h for h, _, _ in columns]]
    for row in rows:
        line = []
        for _, key, spec in columns:
            v = row.get(key)
            if v is None:
                line.append("-")
            elif spec == "bytes":
                line.append(fmt_bytes(v))
            else:
                line.append(format(v, spec))
        cells.append(line)
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    out = ["  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)
