"""Pairwise distances and k-NN: audiosiam's compiled kernels against PyTorch and FAISS, same run.

Run:  python -m pytest benchmarks/bench_distance.py --benchmark-group-by=func,param:threads
Sizes from issue 2 (fp32, D=128): euclidean fwd+bwd N=M=512; L1 fwd+bwd N=M=256; knn 2,000 queries x
20,000 references, k=10. Every result (values and, for fwd+bwd, the gradient) is compared with the
float64 reference before it is timed.
"""

from __future__ import annotations

import pytest
import torch

from audiosiam.bench import fwd_bwd_step as fwd_bwd
from audiosiam.ops import _reference as reference
from audiosiam.ops import has_ops, knn, pairwise_distance
from benchmarks.measure import run_timed

pytestmark = pytest.mark.skipif(not has_ops(), reason="needs the compiled extension")


@pytest.mark.parametrize(
    "metric,n,impl", [(m, n, i) for m, n in (("euclidean", 512), ("l1", 256)) for i in ("audiosiam", "torch.cdist")]
)
def test_pairwise_fwd_bwd(benchmark, threads, metric, n, impl):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 128, generator=g), torch.randn(n, 128, generator=g)
    p = 2.0 if metric == "euclidean" else 1.0
    fn = (
        (lambda a, b: pairwise_distance(a, b, metric=metric))
        if impl == "audiosiam"
        else (lambda a, b: torch.cdist(a, b, p=p))
    )
    err = (fn(x, y).double() - reference.pairwise_distance(x.double(), y.double(), metric)).abs().max().item()
    assert err < ({"euclidean": 1e-5, "l1": 1e-4}[metric] if impl == "audiosiam" else 1e-2)
    # The backward is timed too, so it is checked too: gradient of sum(D) against the float64 reference.
    x64 = x.double().requires_grad_()
    reference.pairwise_distance(x64, y.double(), metric).sum().backward()
    grad_err = (fwd_bwd(fn, x, y)().double() - x64.grad).abs().max().item()
    if impl == "audiosiam":
        assert grad_err < 1e-2 * (1 + x64.grad.abs().max().item())
    run_timed(benchmark, fwd_bwd(fn, x, y), metric=metric, n=n, max_abs_error=err, max_grad_error=grad_err)


@pytest.fixture(scope="module")
def knn_data():
    g = torch.Generator().manual_seed(1)
    q, r = torch.randn(2000, 128, generator=g), torch.randn(20000, 128, generator=g)
    want = reference.knn(q[:50].double(), r.double(), 10, "euclidean")[1]
    return q, r, want


@pytest.mark.parametrize("impl", ["audiosiam", "cdist+topk", "faiss.IndexFlatL2"])
def test_knn(benchmark, threads, knn_data, impl):
    q, r, want = knn_data
    if impl == "audiosiam":
        fn = lambda: knn(q, r, 10)[1]  # noqa: E731
    elif impl == "cdist+topk":
        fn = lambda: torch.cdist(q, r).topk(10, dim=1, largest=False).indices  # noqa: E731
    else:
        faiss = pytest.importorskip("faiss")
        faiss.omp_set_num_threads(threads)
        index = faiss.IndexFlatL2(128)
        index.add(r.numpy())
        fn = lambda: torch.from_numpy(index.search(q.numpy(), 10)[1])  # noqa: E731
    got = fn()
    same = (got[:50] == want).float().mean().item()  # neighbours identical to the float64 reference
    benchmark.extra_info["fraction_identical_neighbours"] = same
    if impl == "audiosiam":
        assert same == 1.0
    run_timed(benchmark, fn, rounds=3)
