"""Shared benchmark fixtures: thread counts. The measuring helpers are :mod:`benchmarks.measure` (imported
here first, so that its allocator policy holds for every benchmark)."""

from __future__ import annotations

import os

import pytest
import torch

import benchmarks.measure  # noqa: F401  (sets the timing allocator policy)

ALL_THREADS = os.cpu_count() or 1
THREADS = sorted({1, ALL_THREADS})


@pytest.fixture(params=THREADS, ids=lambda n: f"{n}thr")
def threads(request):
    """Run the benchmark with torch (and OpenMP) limited to this many threads, then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)
