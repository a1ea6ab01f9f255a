"""pairwise_distance and knn: compiled kernels against the float64 reference, gradients, registrations,
dtypes, layouts, edge cases, argument errors, and the pure-PyTorch fallback."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import pytest
import torch

from audiosiam.errors import ParameterError
from audiosiam.ops import METRICS, has_ops, knn, pairwise_distance, reference_ops
from audiosiam.ops import _reference as reference

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


@pytest.mark.needs_extension
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", ["random", "duplicates", "all_equal", "huge", "tiny"])
def test_values_match_float64_reference(device, metric, kind):
    x, y = inputs(kind)
    got = torch.ops.audiosiam.pairwise_distance(x.to(device), y.to(device), metric).cpu().double()
    want = ref64(x, y, metric)
    scale = {"huge": 1e4, "tiny": 1e-4}.get(kind, 1.0)
    scale = scale ** 2 if metric == "sqeuclidean" else (1.0 if metric == "cosine" else scale)
    tol = {"euclidean": 1e-5, "sqeuclidean": 1e-4, "l1": 1e-4, "cosine": 1e-6}[metric] * scale
    assert (got - want).abs().max() <= tol


@pytest.mark.parametrize("device", DEVICES)
def test_self_distance_diagonal_is_exactly_zero_and_better_than_cdist(device):
    x = torch.randn(256, 128, device=device)
    for metric in ("euclidean", "sqeuclidean", "l1"):
        assert torch.count_nonzero(pairwise_distance(x, metric=metric).diagonal()) == 0
    ours = (pairwise_distance(x).cpu().double() - ref64(x.cpu(), x.cpu(), "euclidean")).abs().max()
    assert ours <= 1e-5
    cdist_diag = torch.cdist(x, x).diagonal().abs().max()  # the Gram-trick error this op avoids
    assert cdist_diag > 10 * ours or cdist_diag > 1e-4


@pytest.mark.needs_extension
@pytest.mark.parametrize("metric", METRICS)
def test_gradcheck_float64_compiled(metric):
    x = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: pairwise_distance(a, b, metric=metric), (x, y))
    assert torch.autograd.gradcheck(lambda a: pairwise_distance(a, metric=metric), (x,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("metric", METRICS)
def test_gradients_match_reference(device, metric):
    x0, y0 = inputs("duplicates", n=12, m=9, d=7)
    x, y = x0.clone().to(device).requires_grad_(), y0.clone().to(device).requires_grad_()
    g = torch.randn(12, 9, device=device)
    pairwise_distance(x, y, metric=metric).backward(g)
    xr, yr = x0.double().requires_grad_(), y0.double().requires_grad_()
    reference.pairwise_distance(xr, yr, metric).backward(g.cpu().double())
    torch.testing.assert_close(x.grad.cpu().double(), xr.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(y.grad.cpu().double(), yr.grad, atol=1e-4, rtol=1e-4)


def test_zero_distance_has_zero_subgradient_not_nan():
    x = torch.ones(3, 4, requires_grad=True)
    pairwise_distance(x).sum().backward()
    assert torch.equal(x.grad, torch.zeros(3, 4))
    z = torch.zeros(2, 4, requires_grad=True)  # zero rows: cosine distance 1, gradient 0
    d = pairwise_distance(z, metric="cosine")
    d.sum().backward()
    assert torch.equal(d, torch.ones(2, 2)) and torch.equal(z.grad, torch.zeros(2, 4))


@pytest.mark.needs_extension
def test_opcheck_every_op():
    x, y = torch.randn(6, 4, dtype=torch.float64, requires_grad=True), torch.randn(5, 4, dtype=torch.float64)
    for metric in METRICS:
        torch.library.opcheck(torch.ops.audiosiam.pairwise_distance.default, (x, y, metric))
    d = torch.ops.audiosiam.pairwise_distance(x.detach(), y, "euclidean")
    torch.library.opcheck(torch.ops.audiosiam._pairwise_distance_backward.default,
                          (torch.randn(6, 5, dtype=torch.float64), x.detach(), y, d, "euclidean"))
    torch.library.opcheck(torch.ops.audiosiam.knn.default, (x.detach(), y, 3, "l1"))
    for metric in METRICS:
        torch.library.opcheck(torch.ops.audiosiam.self_distance.default, (x, metric))
        dx = torch.ops.audiosiam.self_distance(x.detach(), metric)
        torch.library.opcheck(torch.ops.audiosiam._self_distance_backward.default,
                              (torch.randn(6, 6, dtype=torch.float64), x.detach(), dx, metric))


@pytest.mark.needs_extension
def test_torch_compile_fullgraph():
    def loss(a, b):
        return pairwise_distance(a, b).mean() + knn(a, b, 2)[0].sum() + pairwise_distance(a).sum()

    a, b = torch.randn(8, 5), torch.randn(9, 5)
    compiled = torch.compile(loss, fullgraph=True)
    torch.testing.assert_close(compiled(a, b), loss(a, b))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_accumulate_in_float32(dtype):
    x, y = torch.randn(20, 64).to(dtype), torch.randn(10, 64).to(dtype)
    out = pairwise_distance(x, y)
    assert out.dtype == dtype
    want = ref64(x.float(), y.float(), "euclidean")
    assert (out.double() - want).abs().max() <= 0.1  # only the final rounding to half precision


def test_non_contiguous_and_empty_inputs():
    base = torch.randn(30, 16)
    x, y = base[::2], base.t().contiguous().t()[:, :16][5:20]
    assert not x.is_contiguous()
    torch.testing.assert_close(pairwise_distance(x, y), pairwise_distance(x.contiguous(), y.contiguous()))
    assert pairwise_distance(torch.zeros(0, 4), torch.randn(3, 4)).shape == (0, 3)
    e = torch.zeros(0, 4, requires_grad=True)
    pairwise_distance(e, torch.randn(3, 4)).sum().backward()
    assert e.grad.shape == (0, 4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("metric", METRICS)
def test_knn_matches_reference_with_lower_index_ties(device, metric):
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
def test_knn_screening_never_loses_a_neighbour(device, kind, metric, dtype):
    """The CPU kernel screens euclidean candidates with dot products; the answer must still be exact.

    fp32 (AVX-512 builds) runs our own 8 x 32 dot-product tiles: 20 queries are two whole tiles and a
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


def test_knn_with_more_queries_than_one_screening_block():
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
def test_blocked_fp32_kernel_with_leftover_rows_and_columns(threads, metric):
    """Where D is a multiple of 16, the CPU kernel computes 4 x 4 blocks of pairs (AVX-512 builds); rows
    and columns beyond whole blocks, and a y tile of 64 rows plus 6, must come out the same."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(7)
        x, y = torch.randn(23, 32, generator=g), torch.randn(70, 32, generator=g)
        torch.testing.assert_close(pairwise_distance(x, y, metric=metric).double(), ref64(x, y, metric),
                                   rtol=1e-5, atol=1e-5)
        assert torch.all(pairwise_distance(x, x, metric=metric).diagonal() == 0)
    finally:
        torch.set_num_threads(before)


@pytest.mark.needs_extension
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("metric", METRICS)
def test_self_distance_op_matches_both_sided_reference(device, threads, metric):
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
            if metric != "cosine":
                assert torch.count_nonzero(out.diagonal()) == 0
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
