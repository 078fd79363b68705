"""Giving a finished run's memory back to the operating system (glibc), and reading the server's RSS.

Why: torch's CPU allocator frees tensors to malloc, and glibc keeps freed heap pages in its arenas
(one arena per thread that allocated, up to 8 x cores), so a long-lived server's resident memory grew
by 210-320 MB per default run although every session object was freed (DESIGN.md, "The app as a
service"). `malloc_trim(0)` returns the free pages at the top of every arena and unmaps the free
pages inside them; capping the arenas (M_ARENA_MAX) keeps training threads from spreading the heap
over many arenas that each keep their own free memory.

    memory.tune_allocator()   # once, at launch
    ...run...; memory.trim()  # after a run's models are dropped

Both are no-ops where the C library is not glibc (macOS, Windows, musl), and with
DELORA_VIZ_MALLOC_TRIM=0 (to measure the server without them: tests/service_probe.py --rss).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os

M_ARENA_MAX = -8  # mallopt parameter number (glibc malloc.h)
ARENA_MAX = 2  # arenas when MALLOC_ARENA_MAX is not set by the operator


def _glibc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 - AttributeError where the C library is not glibc
        return libc
    except (OSError, AttributeError):
        return None


LIBC = _glibc() if os.environ.get("DELORA_VIZ_MALLOC_TRIM", "1") != "0" else None


def tune_allocator(arena_max: int | None = None) -> bool:
    """Cap glibc's malloc arenas (the operator's MALLOC_ARENA_MAX wins: glibc read it at start). True if set."""
    if LIBC is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(LIBC.mallopt(M_ARENA_MAX, ctypes.c_int(arena_max or ARENA_MAX)))


def trim() -> bool:
    """Collect garbage, then hand free heap pages back to the OS. True if glibc released something."""
    gc.collect()
    return bool(LIBC.malloc_trim(ctypes.c_size_t(0))) if LIBC is not None else False


def rss_mb(pid: int | None = None) -> float:
    """Resident set size of a process (this one by default) in MiB, from /proc (Linux; NaN elsewhere)."""
    try:
        with open(f"/proc/{pid or 'self'}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024
    except (OSError, StopIteration):
        return float("nan")
