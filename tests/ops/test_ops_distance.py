"""pairwise_distance, self-distance and knn: the shared op tests (``op_tester``), then what is special to
them: inputs with duplicates and extreme scales, exact zero self-distances, subgradients at zero, knn
ties and screening, the blocked kernels, argument errors and the pure-PyTorch fallback."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import pytest
import torch

from audiosiam.errors import ParameterError
from audiosiam.ops import _reference as reference
from audiosiam.ops import has_ops, knn, pairwise_distance
from audiosiam.ops._extension import reference_ops
from audiosiam.ops.distance import METRICS

from op_tester import OpTester

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.needs_cuda)]


def ref64(x, y, metric):
    return reference.pairwise_distance(x.double(), y.double(), metric)


def inputs(kind: str, n=40, m=30, d=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, d, generator=g), torch.randn(m, d, generator=g)
    if kind == "duplicates":
        k = min(10, n, m)
        y[:k] = x[:k]
    elif kind == "all_equal":
        x[:] = x[0]
        y[:] = x[0]
    elif kind == "huge":
        x, y = x * 1e4, y * 1e4
    elif kind == "tiny":
        x, y = x * 1e-4, y * 1e-4
    return x, y


def random_rows(device, dtype, *rows, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, d, generator=g, dtype=torch.float64).to(device=device, dtype=dtype) for n in rows)


class TestPairwiseDistance(OpTester):
    def variants(self):
        return [{"metric": m} for m in METRICS]

    def make(self, device, dtype, rows, **variant):
        return random_rows(device, dtype, rows, rows + 3)

    def call(self, x, y, *, metric):
        return pairwise_distance(x, y, metric=metric)

    def expected(self, x, y, *, metric):
        return reference.pairwise_distance(x, y, metric)

    def opcheck_samples(self, device):
        x, y = random_rows(device, torch.float64, 6, 5)
        samples = []
        for metric in METRICS:
            samples.append((torch.ops.audiosiam.pairwise_distance.default, (x.requires_grad_(), y, metric)))
            d = torch.ops.audiosiam.pairwise_distance(x.detach(), y, metric)
            samples.append(
                (
                    torch.ops.audiosiam._pairwise_distance_backward.default,
                    (torch.randn_like(d), x.detach(), y, d, metric),
                )
            )
        return samples


class TestSelfDistance(OpTester):
    """``pairwise_distance(x)``: the compiled ``self_distance`` op, computing each pair once."""

    def variants(self):
        return [{"metric": m} for m in METRICS]

    def make(self, device, dtype, rows, **variant):
        return random_rows(device, dtype, rows)

    def call(self, x, *, metric):
        return pairwise_distance(x, metric=metric)

    def expected(self, x, *, metric):
        return reference.pairwise_distance(x, x, metric)

    def opcheck_samples(self, device):
        (x,) = random_rows(device, torch.float64, 6)
        samples = []
        for metric in METRICS:
            samples.append((torch.ops.audiosiam.self_distance.default, (x.requires_grad_(), metric)))
            d = torch.ops.audiosiam.self_distance(x.detach(), metric)
            samples.append(
                (torch.ops.audiosiam._self_distance_backward.default, (torch.randn_like(d), x.detach(), d, metric))
            )
        return samples


class TestKnn(OpTester):
    test_gradcheck_float64 = test_compiled_gradients_match_the_reference = None  # a search: no gradient

    def variants(self):
        return [{"metric": m, "k": k} for m in METRICS for k in (1, 4)]

    def make(self, device, dtype, rows, **variant):
        return random_rows(device, dtype, rows, 30)

    def call(self, query, reference_set, *, metric, k):
        return knn(query, reference_set, k, metric=metric)

    def expected(self, query, reference_set, *, metric, k):
        return reference.knn(query, reference_set, k, metric)

    def opcheck_samples(self, device):
        q, r = random_rows(device, torch.float64, 6, 9)
        return [(torch.ops.audiosiam.knn.default, (q, r, k, metric)) for metric in METRICS for k in (1, 3)]


@pytest.mark.needs_extension
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", ["random", "duplicates", "all_equal", "huge", "tiny"])
def test_values_match_float64_reference(device, metric, kind, cpu_level):
    x, y = inputs(kind)
    got = torch.ops.audiosiam.pairwise_distance(x.to(device), y.to(device), metric).cpu().double()
    want = ref64(x, y, metric)
    scale = {"huge": 1e4, "tiny": 1e-4}.get(kind, 1.0)
    scale = scale**2 if metric == "sqeuclidean" else (1.0 if metric == "cosine" else scale)
    tol = {"euclidean": 1e-5, "sqeuclidean": 1e-4, "l1": 1e-4, "cosine": 1e-6}[metric] * scale
    assert (got - want).abs().max() <= tol


@pytest.mark.parametrize("device", DEVICES)
def test_self_distance_diagonal_is_exactly_zero_and_better_than_cdist(device, cpu_level):
    x = torch.randn(256, 128, device=device)
    for metric in ("euclidean", "sqeuclidean", "l1"):
        assert torch.count_nonzero(pairwise_distance(x, metric=metric).diagonal()) == 0
    ours = (pairwise_distance(x).cpu().double() - ref64(x.cpu(), x.cpu(), "euclidean")).abs().max()
    assert ours <= 1e-5
    cdist_diag = torch.cdist(x, x).diagonal().abs().max()  # the Gram-trick error this op avoids
    assert cdist_diag > 10 * ours or cdist_diag > 1e-4


def test_zero_distance_has_zero_subgradient_not_nan(cpu_level):
    x = torch.ones(3, 4, requires_grad=True)
    pairwise_distance(x).sum().backward()
    assert torch.equal(x.grad, torch.zeros(3, 4))
    z = torch.zeros(2, 4, requires_grad=True)  # zero rows: cosine distance 1, gradient 0
    d = pairwise_distance(z, metric="cosine")
    d.sum().backward()
    assert torch.equal(d, torch.ones(2, 2)) and torch.equal(z.grad, torch.zeros(2, 4))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("metric", METRICS)
def test_knn_matches_reference_with_lower_index_ties(device, metric, cpu_level):
    q, r = inputs("duplicates", n=25, m=60, d=8)
    r = torch.cat([r, r[:7]])  # exact duplicates in the reference: equal distances
    d, i = knn(q.to(device), r.to(device), 9, metric=metric)
    rd, ri = reference.knn(q.double(), r.double(), 9, metric)
    # Indices against the reference in the same precision: float32 rounding can split float64 ties.
    assert torch.equal(i.cpu(), reference.knn(q, r, 9, metric)[1])
    torch.testing.assert_close(d.cpu().double(), rd, atol=1e-5, rtol=1e-5)
    tie_q = torch.zeros(1, 2, device=device)
    tie_r = torch.tensor([[1.0, 0], [0, 1], [0, -1], [-1, 0]], device=device)
    assert knn(tie_q, tie_r, 3, metric="euclidean")[1].tolist() == [[0, 1, 2]]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["random", "duplicates", "all_equal", "huge", "tiny", "clustered"])
@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_knn_screening_never_loses_a_neighbour(device, kind, metric, dtype, cpu_level):
    """The CPU kernel screens euclidean candidates with dot products; the answer must still be exact.

    fp32 at the AVX-512 level runs our own 8 x 32 dot-product tiles: 20 queries are two whole tiles and a
    partial one, and 9,000 references are four packed blocks of 2,048 and a partial block whose last
    panel is partly empty. fp64 runs the BLAS path: three blocks of 4,096. The data kinds cover
    cancellation (huge norms), many equal distances (duplicates, all equal) and near-ties (tight clusters).
    """
    if kind == "clustered":  # 300 points in each of 30 tight clusters: hundreds of near-equal distances
        g = torch.Generator().manual_seed(1)
        centres = torch.randn(30, 32, generator=g) * 10
        r = centres.repeat_interleave(300, 0) + 1e-3 * torch.randn(9000, 32, generator=g)
        q = centres[:20] + 1e-3 * torch.randn(20, 32, generator=g)
    else:
        q, r = inputs(kind, n=20, m=9000, d=32)
    q, r = q.to(dtype), r.to(dtype)
    d, i = knn(q.to(device), r.to(device), 7, metric=metric)
    rd, ri = reference.knn(q, r, 7, metric)  # same precision: float32 rounding decides near-ties
    exact = reference.pairwise_distance(q, r, metric)
    # Every returned neighbour is at the distance the reference says, and no closer reference was missed.
    torch.testing.assert_close(d.cpu(), exact.gather(1, i.cpu()), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(d.cpu(), rd, rtol=1e-5, atol=1e-6)
    if kind != "clustered":  # near-ties may order differently across summation orders; distances are checked
        assert torch.equal(i.cpu(), ri)


def test_knn_with_more_queries_than_one_screening_block(cpu_level):
    """The fp32 CPU kernel keeps the screens of 8,192 queries at a time; the queries after the first
    block must get their own neighbours, in their own rows of the output."""
    g = torch.Generator().manual_seed(5)
    q, r = torch.randn(8200, 16, generator=g), torch.randn(300, 16, generator=g)
    d, i = knn(q, r, 3)
    rd, ri = reference.knn(q, r, 3, "euclidean")
    torch.testing.assert_close(d, rd, rtol=1e-5, atol=1e-6)
    assert (i == ri).float().mean() > 0.999  # near-ties may order differently; the distances are checked


@pytest.mark.parametrize("compiled", [True, False])
def test_knn_refuses_non_finite_rows(compiled, monkeypatch):
    if compiled and not has_ops():
        pytest.skip("compiled kernels not built")
    q, r = torch.randn(5, 4), torch.randn(9, 4)
    r[6, 2] = float("nan")
    with reference_ops() if not compiled else contextlib.nullcontext():
        with pytest.raises(ValueError, match="'?reference'?: row 6 contains NaN or infinite"):
            knn(q, r, 2)
        q[3, 0] = float("inf")
        with pytest.raises(ValueError, match="'?query'?: row 3 contains NaN or infinite"):
            knn(q, r, 2)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean"])
def test_blocked_fp32_kernel_with_leftover_rows_and_columns(threads, metric, cpu_level):
    """Where D is a multiple of 16, the CPU kernel computes 4 x 4 blocks of pairs (the AVX-512 level); rows
    and columns beyond whole blocks, and a y tile of 64 rows plus 6, must come out the same."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(7)
        x, y = torch.randn(23, 32, generator=g), torch.randn(70, 32, generator=g)
        torch.testing.assert_close(
            pairwise_distance(x, y, metric=metric).double(), ref64(x, y, metric), rtol=1e-5, atol=1e-5
        )
        assert torch.all(pairwise_distance(x, x, metric=metric).diagonal() == 0)
    finally:
        torch.set_num_threads(before)


@pytest.mark.needs_extension
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("metric", METRICS)
def test_self_distance_op_matches_both_sided_reference(device, threads, metric, cpu_level):
    """``pairwise_distance(x)`` runs ``self_distance``: the CPU kernel computes the tiles on and above the
    diagonal and mirrors them, and the backward uses (G + G^T) in one product. Sizes cover a single row,
    leftovers of the 4 x 4 blocks and of the 16-row blocks, and a triangle that splits unevenly."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for n, d in [(1, 32), (3, 32), (17, 32), (70, 32), (133, 48), (29, 7)]:
            x0 = inputs("duplicates", n=n, m=n, d=d, seed=n)[0]
            x = x0.clone().to(device).requires_grad_()
            out = pairwise_distance(x, metric=metric)
            assert torch.equal(out, out.t()), "not exactly symmetric"
            zero_rows = (x0.norm(dim=1) == 0).to(out.dtype).to(device)  # cosine: 1 for an all-zero row
            assert torch.equal(out.diagonal(), zero_rows if metric == "cosine" else torch.zeros_like(zero_rows))
            g = torch.randn(n, n, device=device)
            out.backward(g)
            xr = x0.double().requires_grad_()
            want = reference.pairwise_distance(xr, xr, metric)  # autograd sums both sides of every pair
            want.backward(g.cpu().double())
            tol = {"sqeuclidean": 1e-4, "l1": 1e-4}.get(metric, 1e-5)
            torch.testing.assert_close(out.detach().cpu().double(), want.detach(), rtol=tol, atol=tol)
            torch.testing.assert_close(x.grad.cpu().double(), xr.grad, rtol=1e-4, atol=1e-4)
    finally:
        torch.set_num_threads(before)


def test_argument_errors_name_the_argument():
    x = torch.randn(4, 3)
    with pytest.raises(ParameterError, match=r"x: expected shape \(rows, dim\)"):
        pairwise_distance(torch.randn(3))
    with pytest.raises(ParameterError, match="y: has dim 5, but x has dim 3"):
        pairwise_distance(x, torch.randn(2, 5))
    with pytest.raises(ParameterError, match="metric='cheb'"):
        pairwise_distance(x, metric="cheb")
    with pytest.raises(ParameterError, match="y: has dtype torch.float64"):
        pairwise_distance(x, x.double())
    with pytest.raises(ParameterError, match="floating dtype"):
        pairwise_distance(torch.ones(2, 2, dtype=torch.long))
    with pytest.raises(ParameterError, match="k=0"):
        knn(x, x, 0)
    with pytest.raises(ParameterError, match="k=5: larger than the reference set"):
        knn(x, x, 5)


@pytest.mark.slow
def test_fallback_without_extension_warns_once_and_is_correct():
    code = (
        "import warnings, torch\n"
        "from audiosiam.ops import pairwise_distance, knn\n"
        "from audiosiam.ops import _reference as R\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    x = torch.randn(9, 4); y = torch.randn(5, 4)\n"
        "    a = pairwise_distance(x, y); b = pairwise_distance(x, y); knn(x, y, 2)\n"
        "assert torch.allclose(a.double(), R.pairwise_distance(x.double(), y.double(), 'euclidean'), atol=1e-5)\n"
        "msgs = [str(m.message) for m in w if 'audiosiam._C' in str(m.message)]\n"
        "assert len(msgs) == 1 and 'pip install' in msgs[0], msgs\n"
        "print('fallback ok')\n"
    )
    env = dict(os.environ, AUDIOSIAM_DISABLE_EXTENSION="1")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0 and "fallback ok" in result.stdout, result.stderr
