"""Quick kernel benchmarks: audiosiam's compiled ops against pure PyTorch, on this machine.

Run as ``audiosiam bench`` or ``python -m audiosiam.bench``. This is the short, installed version of the
pytest-benchmark suites under ``benchmarks/`` (whose numbers are in ``benchmarks/RESULTS.md``): each case
is first checked against its float64 reference, then audiosiam and each PyTorch baseline are timed in the
same process with ``torch.utils.benchmark`` (median of adaptive repeats, one warm-up) and the ratio is
reported. A ratio above 1 means audiosiam is faster. The fused triplet loss is compared with three
baselines, as in RESULTS.md: a naive loop over anchors, the best vectorised PyTorch (``torch.cdist`` and
masked mining) and, when installed, pytorch-metric-learning; a baseline that answers differently from the
reference is not timed either.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from .errors import ParameterError

# Problem sizes: "standard" are the sizes the issue targets are stated for; "quick" runs in seconds.
SIZES = {
    "standard": {"pairwise": 512, "l1": 256, "knn_queries": 2000, "knn_reference": 20000, "k": 10, "batch": 1024},
    "quick": {"pairwise": 128, "l1": 64, "knn_queries": 256, "knn_reference": 2048, "k": 10, "batch": 128},
}
DIM = 128
# Largest error tolerated against the float64 reference before a timing is trusted (unit-scale fp32 data).
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-10}
# A baseline's loss may differ by more: torch.cdist's Gram expansion is off by ~1e-4 at unit norms.
BASELINE_TOLERANCE = {torch.float32: 2e-4, torch.float64: 1e-8}


@dataclass
class BenchResult:
    case: str
    size: str
    baseline: str
    audiosiam_ms: float
    baseline_ms: float
    speedup: float  # baseline time / audiosiam time
    max_error: float  # audiosiam against the float64 reference (values; gradients relative to their scale)


def naive_batch_hard(x: torch.Tensor, y: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Batch-hard triplet loss as a straightforward Python loop over anchors (the naive baseline)."""
    index, terms = torch.arange(len(y), device=y.device), []
    for a in range(len(y)):
        d = (x[a] - x).norm(dim=1)
        pos = d[(y == y[a]) & (index != a)]
        neg = d[y != y[a]]
        terms.append(torch.relu(pos.max() - neg.min() + margin))
    return torch.stack(terms).mean()


def vectorised_batch_hard(x: torch.Tensor, y: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Batch-hard triplet loss in the best plain-PyTorch form: ``torch.cdist`` distances (BLAS), then masked
    mining (audiosiam's reference mining, on distances it did not compute); PK batches only."""
    from .ops._reference import batch_hard_from_distances

    return batch_hard_from_distances(torch.cdist(x, x), y, margin, False)[0].mean()


def pml_batch_hard(x: torch.Tensor, y: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """pytorch-metric-learning's ``TripletMarginLoss`` with its ``BatchHardMiner`` (it averages over the
    non-zero terms, so its value is not compared; its time is)."""
    from pytorch_metric_learning import losses, miners

    return losses.TripletMarginLoss(margin=margin)(x, y, miners.BatchHardMiner()(x, y))


def _median_ms(fn: Callable[[], object], threads: int, min_run_time: float) -> float:
    import logging

    # torch.utils.benchmark imports cpp_extension, which warns about a missing CUDA runtime on CPU machines.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils.benchmark import Timer

    fn()  # warm-up: first-call allocations and lazy initialisation are not what we measure
    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def fwd_bwd_step(distance_fn, x, y):
    """A closure that runs ``distance_fn(x, y).sum()`` forward and backward on fresh leaf copies."""

    def step():
        a, b = x.detach().requires_grad_(), y.detach().requires_grad_()
        distance_fn(a, b).sum().backward()
        return a.grad

    return step


def _cases(sizes: dict, device: str, dtype: torch.dtype):
    """Yield ``(case, size, baselines, audiosiam fn, error fn)`` for every benchmark; ``baselines`` are
    ``(name, fn, error fn or None)``, the error that of a baseline's loss against the float64 reference."""
    from .losses import triplet_loss
    from .ops import _reference as reference
    from .ops._extension import reference_ops
    from .ops.distance import knn, pairwise_distance

    g = torch.Generator().manual_seed(0)

    def data(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)

    for metric, n, baseline_p in (("euclidean", sizes["pairwise"], 2.0), ("l1", sizes["l1"], 1.0)):
        x, y = data(n, DIM), data(n, DIM)

        ours = fwd_bwd_step(lambda a, b, metric=metric: pairwise_distance(a, b, metric=metric), x, y)

        def error(metric=metric, x=x, y=y, ours=ours):
            """Largest of the value error and the gradient error (relative to the gradient's scale)."""
            x64 = x.double().requires_grad_()
            exact = reference.pairwise_distance(x64, y.double(), metric)
            exact.sum().backward()
            value = float((pairwise_distance(x, y, metric=metric).double() - exact.detach()).abs().max())
            grad = float((ours().double() - x64.grad).abs().max() / (1 + x64.grad.abs().max()))
            return max(value, grad)

        yield (
            f"pairwise {metric} fwd+bwd",
            f"N=M={n} D={DIM}",
            [
                (
                    f"torch.cdist(p={baseline_p:g})",
                    fwd_bwd_step(lambda a, b, p=baseline_p: torch.cdist(a, b, p=p), x, y),
                    None,
                )
            ],
            ours,
            error,
        )

    q, r, k = data(sizes["knn_queries"], DIM), data(sizes["knn_reference"], DIM), sizes["k"]

    def knn_error():
        exact_d, exact_i = reference.knn(q.double(), r.double(), k, "euclidean")
        d, i = knn(q, r, k, metric="euclidean")
        if not torch.equal(i.cpu(), exact_i.cpu()):
            return float("inf")  # a wrong neighbour is not a rounding error
        return float((d.double() - exact_d).abs().max())

    def cdist_topk():
        return torch.cdist(q, r).topk(k, dim=1, largest=False)

    yield (
        "knn euclidean",
        f"{q.shape[0]} x {r.shape[0]} D={DIM} k={k}",
        [("torch.cdist + topk", cdist_topk, None)],
        lambda: knn(q, r, k, metric="euclidean"),
        knn_error,
    )

    b = sizes["batch"]
    e = torch.nn.functional.normalize(data(b, DIM), dim=1)
    labels = torch.arange(b // 4, device=device).repeat_interleave(4)  # P x K batch with K=4

    def reference_loss(emb):
        with reference_ops():
            return triplet_loss(emb, labels, mining="batch_hard")

    def loss_step(fn):
        def step():
            leaf = e.detach().requires_grad_()
            fn(leaf).backward()
            return leaf.grad

        return step

    exact = reference_loss(e.double()).detach()

    def loss_error(fn=lambda emb: triplet_loss(emb, labels, mining="batch_hard")):
        return float((fn(e).double() - exact).abs())

    baselines = [
        ("naive loop over anchors", naive_batch_hard),
        ("vectorised PyTorch (cdist + masked mining)", vectorised_batch_hard),
    ]
    try:
        import pytorch_metric_learning  # noqa: F401
    except ImportError:  # an optional baseline: said so in the table's notes
        pass
    else:
        baselines.append(("pytorch-metric-learning", pml_batch_hard))
    yield (
        "triplet batch-hard fwd+bwd",
        f"B={b} (P={b // 4}, K=4) D={DIM}",
        [
            (
                name,
                loss_step(lambda emb, f=f: f(emb, labels)),
                None if f is pml_batch_hard else (lambda f=f: loss_error(lambda emb: f(emb, labels))),
            )
            for name, f in baselines
        ],
        loss_step(lambda emb: triplet_loss(emb, labels, mining="batch_hard")),
        loss_error,
    )


def run_benchmarks(
    *,
    size: str = "standard",
    device: str = "cpu",
    threads: int | None = None,
    dtype: torch.dtype = torch.float32,
    min_run_time: float = 0.5,
    progress: Callable[[str], None] | None = None,
) -> list[BenchResult]:
    """Time every case; raise :class:`~audiosiam.errors.ExtensionError` when the compiled ops are missing.

    Args:
        size: ``"standard"`` (the sizes the targets in RESULTS.md are stated for) or ``"quick"``.
        device: ``"cpu"`` or ``"cuda"``.
        threads: CPU threads for both implementations (default: torch's current setting).
        min_run_time: seconds of repeated runs per implementation and case.
        progress: called with each case's name before it runs.
    """
    from .devices import resolve_device
    from .ops._extension import assert_has_ops

    if size not in SIZES:
        raise ParameterError(f"size={size!r}: expected one of {tuple(SIZES)}")
    resolve_device(device)
    if dtype not in TOLERANCE:
        raise ParameterError(f"dtype={dtype}: expected torch.float32 or torch.float64")
    assert_has_ops()  # timing the references against PyTorch would say nothing about our kernels
    threads = threads or torch.get_num_threads()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    results = []
    try:
        for case, shape, baselines, ours, error in _cases(SIZES[size], device, dtype):
            if progress:
                progress(case)
            max_error = error()
            if not max_error <= TOLERANCE[dtype]:
                raise AssertionError(
                    f"{case} ({shape}): audiosiam differs from the float64 reference by "
                    f"{max_error:.3g} (> {TOLERANCE[dtype]:g}); not timing a wrong result"
                )
            ours_ms = _median_ms(ours, threads, min_run_time)
            for baseline, theirs, baseline_error in baselines:
                if baseline_error is not None and not baseline_error() <= BASELINE_TOLERANCE[dtype]:
                    raise AssertionError(
                        f"{case} ({shape}): the baseline {baseline} differs from the float64 reference by "
                        f"{baseline_error():.3g} (> {BASELINE_TOLERANCE[dtype]:g}); not timing a wrong result"
                    )
                theirs_ms = _median_ms(theirs, threads, min_run_time)
                results.append(BenchResult(case, shape, baseline, ours_ms, theirs_ms, theirs_ms / ours_ms, max_error))
    finally:
        torch.set_num_threads(before)
    return results


def format_table(results: list[BenchResult], *, device: str, threads: int) -> str:
    from .ops._extension import build_info

    info = build_info()
    lines = [
        f"audiosiam kernels vs PyTorch on {device}, {threads} thread(s), float32; "
        f"CPU level {info.get('cpu_capability', '?')}, torch {torch.__version__}",
        f"{'case':<28} {'size':<30} {'audiosiam':>10} {'baseline':>10} {'speedup':>8}  baseline",
    ]
    for r in results:
        lines.append(
            f"{r.case:<28} {r.size:<30} {r.audiosiam_ms:>8.2f}ms {r.baseline_ms:>8.2f}ms "
            f"{r.speedup:>7.2f}x  {r.baseline}"
        )
    lines.append(
        "speedup = baseline time / audiosiam time (above 1: audiosiam is faster); each result was "
        "checked against a float64 reference first (pytorch-metric-learning's loss averages over the "
        "non-zero terms: timed, not compared)."
    )
    if any(r.case.startswith("triplet") for r in results) and not any("metric-learning" in r.baseline for r in results):
        lines.append("pytorch-metric-learning is not installed, so it is not among the baselines (pip install it).")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--size",
        choices=tuple(SIZES),
        default="standard",
        help="problem sizes: 'standard' (those in benchmarks/RESULTS.md, ~1 min) or 'quick'",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to run (default: cpu)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for both sides (default: all torch uses, now %d)" % torch.get_num_threads(),
    )
    parser.add_argument(
        "--min-time",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="seconds of repeated runs per implementation and case (default: 0.5)",
    )
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output on stdout")


def run_from_args(args) -> int:
    if args.threads is not None and args.threads < 1:
        raise ParameterError(f"--threads {args.threads}: expected a positive number of threads")
    threads = args.threads or torch.get_num_threads()
    results = run_benchmarks(
        size=args.size,
        device=args.device,
        threads=threads,
        min_run_time=args.min_time,
        progress=lambda case: print(f"audiosiam bench: {case} ...", file=sys.stderr),
    )
    if args.format == "json":
        print(
            json.dumps(
                {
                    "device": args.device,
                    "threads": threads,
                    "torch": torch.__version__,
                    "results": [asdict(r) for r in results],
                },
                indent=2,
            )
        )
    else:
        print(format_table(results, device=args.device, threads=threads))
    return 0


def main(argv: list[str] | None = None) -> int:
    from .errors import AudiosiamError

    parser = argparse.ArgumentParser(prog="python -m audiosiam.bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        return run_from_args(parser.parse_args(argv))
    except AudiosiamError as exc:
        print(f"audiosiam bench: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
