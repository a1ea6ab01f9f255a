"""How the benchmarks measure: glibc's allocator policy per phase, the median of timed rounds, and the peak
resident-memory growth of a call. Imported by the benchmark modules (``from benchmarks.measure import ...``)."""

from __future__ import annotations

import ctypes
import re

# glibc's allocator policy, set per phase. Timing: large blocks are reused from the heap, as they are in a
# long-running training process once glibc's adaptive threshold has grown (without this, every B x B
# temporary of a small batch would be a fresh mmap whose page faults cost more than the kernels being
# timed). Peak memory: every block of 64 KiB or more gets its own mmap and goes back to the OS when
# freed, so that each allocation shows up in the resident set (see peak_extra_bytes).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
try:
    _LIBC = ctypes.CDLL("libc.so.6")
except OSError:  # not glibc: timings use the default policy; peak_extra_bytes may under-report
    _LIBC = None


def _malloc_policy(mmap_threshold: int, trim_threshold: int) -> None:
    if _LIBC is not None:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
        _LIBC.mallopt(_M_TRIM_THRESHOLD, trim_threshold)


def _timing_policy() -> None:
    _malloc_policy(32 * 2**20, 256 * 2**20)  # glibc's largest adaptive mmap threshold; keep freed heap


_timing_policy()


def run_timed(benchmark, fn, *, rounds: int = 5, **info):
    """Time ``fn`` (median of ``rounds`` after one warm-up) and record extra info beside it."""
    benchmark.extra_info.update(info)
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


def median_seconds(benchmark) -> float | None:
    """The median time of the benchmark just run, or ``None`` when timing is off (``--benchmark-disable``:
    CI runs every benchmark once for its correctness checks)."""
    return None if benchmark.stats is None else benchmark.stats.stats.median


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M).group(1))


def peak_extra_bytes(fn) -> int | None:
    """Measured peak resident-memory growth while ``fn()`` runs, in bytes (Linux; None elsewhere).

    Resets the kernel's high-water mark (``/proc/self/clear_refs``), then reads it after the call: the
    bytes of the largest moment, inputs excluded, as the allocator really touched them. Granularity is a
    page; other threads' allocations in the same moment would count too (the benchmarks run alone).
    """
    _malloc_policy(64 * 1024, 128 * 1024)
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
    finally:
        _timing_policy()
