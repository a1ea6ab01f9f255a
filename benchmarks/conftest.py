"""Shared benchmark helpers: thread counts, and a check that a result is right before its time counts."""

from __future__ import annotations

import os

import pytest
import torch

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
