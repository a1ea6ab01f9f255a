"""`audiosiam bench`: audiosiam's compiled kernels against pure PyTorch, on this machine."""

from __future__ import annotations

import argparse

EXAMPLES = """\
examples:
  audiosiam bench                      # standard sizes, all threads, CPU
  audiosiam bench --threads 1 --size quick
  audiosiam bench --device cuda --format json > gpu.json

Each case is checked against a float64 reference before it is timed. The fused triplet loss is timed
against three baselines: a naive loop over anchors, vectorised PyTorch (torch.cdist and masked mining)
and pytorch-metric-learning when it is installed; the first flatters us, the others are the fair ones.
The full pytest-benchmark suites, with more sizes and baselines (FAISS, torch.compile), are under
benchmarks/ in the source tree; their results are in benchmarks/RESULTS.md.
"""


# The one-line summary `audiosiam --help` shows.
HELP = "time our kernels against pure PyTorch on this machine"


def add_parser(subparsers) -> None:
    from ..bench import add_arguments

    p = subparsers.add_parser(
        "bench",
        help=HELP,
        description="Time audiosiam's distance, k-NN and triplet-loss kernels against their PyTorch baselines.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)


def run(args) -> int:
    from ..bench import run_from_args

    return run_from_args(args)
