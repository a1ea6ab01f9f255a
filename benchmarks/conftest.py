"""Shared benchmark helpers: thread counts, and a check that a result is right before its time counts."""

from __future__ import annotations

import ctypes
import os
import re

import pytest
import torch

# Serve every allocation of 64 KiB or more with its own mmap, so that freed memory goes back to the OS
# and a later allocation shows up in the resident set again: without this, glibc's adaptive threshold
# lets memory freed by one benchmark hide the allocations of the next from peak_extra_bytes.
_M_MMAP_THRESHOLD = -3
try:
    _LIBC = ctypes.CDLL("libc.so.6")
    _LIBC.mallopt(_M_MMAP_THRESHOLD, 64 * 1024)
except OSError:  # not glibc: peak_extra_bytes still works, it may under-report
    _LIBC = None

ALL_THREADS = os.cpu_count() or 1
THREADS = sorted({1, ALL_THREADS})


@pytest.fixture(params=THREADS, ids=lambda n: f"{n}thr")
def threads(request):
    """Run the benchmark with torch (and OpenMP) limited to this many threads, then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def run_timed(benchmark, fn, *, rounds: int = 5, **info):
    """Time ``fn`` (median of ``rounds`` after one warm-up) and record extra info beside it."""
    benchmark.extra_info.update(info)
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M).group(1))


def peak_extra_bytes(fn) -> int | None:
    """Measured peak resident-memory growth while ``fn()`` runs, in bytes (Linux; None elsewhere).

    Resets the kernel's high-water mark (``/proc/self/clear_refs``), then reads it after the call: the
    bytes of the largest moment, inputs excluded, as the allocator really touched them. Granularity is a
    page; other threads' allocations in the same moment would count too (the benchmarks run alone).
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)  # hand free heap pages back, so that reusing them counts as growth again
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _status_kib("VmRSS")
        fn()
        return max(0, _status_kib("VmHWM") - before) * 1024
    except OSError:
        return None
