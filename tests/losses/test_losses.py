"""Triplet and contrastive losses: definitions, edge cases, pytorch-metric-learning parity, and the
compiled paths against the reference at the level of the loss (the ops themselves: test_ops_losses.py)."""

from __future__ import annotations

import contextlib
import itertools

import pytest
import torch

import audiosiam.ops._reference as reference_module
from audiosiam.errors import ParameterError
from audiosiam.losses import ContrastiveLoss, TripletLoss, contrastive_loss, triplet_loss, triplet_margin_loss
from audiosiam.ops import has_ops
from audiosiam.ops._extension import reference_ops

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.needs_cuda)]


def batch(b=24, d=8, classes=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g, dtype=dtype), torch.randint(0, classes, (b,), generator=g)


def brute_force_triplets(x, y, margin, reduction):
    """Every (a, p, n) by explicit loops: the definition batch-all must equal."""
    d = torch.cdist(x, x)
    terms = [
        torch.relu(d[a, p] - d[a, n] + margin)
        for a, p, n in itertools.product(range(len(y)), repeat=3)
        if a != p and y[a] == y[p] and y[a] != y[n]
    ]
    terms = torch.stack(terms)
    if reduction == "mean_nonzero":
        terms = terms[terms > 0]
    return terms.mean()


@pytest.fixture
def reference_only():
    """Force the pure-PyTorch path (the reference) even where the compiled ops exist."""
    with reference_ops():
        yield


@pytest.mark.parametrize("path", ["compiled", "reference"])
@pytest.mark.parametrize("reduction", ["mean", "mean_nonzero"])
def test_batch_all_equals_the_definition(reduction, path):
    if path == "compiled" and not has_ops():
        pytest.skip("compiled ops not built")
    x, y = batch(b=12)
    with reference_ops() if path == "reference" else contextlib.nullcontext():
        ours = triplet_loss(x, y, mining="batch_all", reduction=reduction, margin=0.3)
    torch.testing.assert_close(ours, brute_force_triplets(x, y, 0.3, reduction))


def test_reference_batch_all_chunks_give_the_same_loss_and_gradient(monkeypatch, reference_only):
    x, y = batch(b=40)
    x.requires_grad_()
    whole = triplet_loss(x, y, mining="batch_all")
    (whole_grad,) = torch.autograd.grad(whole, x)
    for cells in (1, 40 * 3 * 7):  # one anchor per chunk; a few per chunk, the last chunk short
        monkeypatch.setattr(reference_module, "BATCH_ALL_CHUNK_CELLS", cells)
        chunked = triplet_loss(x, y, mining="batch_all")
        torch.testing.assert_close(chunked, whole)
        torch.testing.assert_close(torch.autograd.grad(chunked, x)[0], whole_grad)


def test_batch_hard_and_semi_hard_by_hand(reference_only):
    x = torch.tensor([[0.0], [1.0], [3.0], [0.5]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    # anchor 0: farthest positive x=1 (d=1), nearest negative x=0.5 (d=0.5): 1 - 0.5 + 0.2 = 0.7
    # anchor 3 (x=0.5): positive x=3 (d=2.5), nearest negatives x=0 and x=1 (d=0.5): 2.5 - 0.5 + 0.2 = 2.2
    per_anchor = triplet_loss(x, y, mining="batch_hard", reduction="none")
    torch.testing.assert_close(per_anchor, torch.tensor([0.7, 0.7, 0.7, 2.2], dtype=torch.float64))
    # semi-hard for (0, 1): negatives farther than 1 within 1.2: none -> hardest (3, d=0.5): 0.7
    semi = triplet_loss(x, y, mining="semi_hard", reduction="none")
    assert semi[0] == pytest.approx(0.7)


@pytest.mark.parametrize("mining", ["batch_hard", "batch_all", "semi_hard"])
def test_no_valid_triplet_gives_zero_loss_with_zero_gradient(mining):
    for y in (torch.tensor([0, 1, 2, 3]), torch.tensor([5, 5, 5, 5]), torch.tensor([7])):
        x = torch.randn(len(y), 3, requires_grad=True)
        loss = triplet_loss(x, y, mining=mining)
        loss.backward()
        assert loss.item() == 0.0 and torch.equal(x.grad, torch.zeros_like(x))


def test_singleton_classes_contribute_nothing(reference_only):
    x, _ = batch(b=6)
    y = torch.tensor([0, 0, 1, 1, 2, 3])  # classes 2 and 3 have one member
    per_anchor = triplet_loss(x, y, mining="batch_hard", reduction="none")
    assert per_anchor[4] == 0 and per_anchor[5] == 0


@pytest.mark.parametrize("mining", ["batch_hard", "batch_all", "semi_hard"])
def test_coincident_points_have_finite_gradients(mining):
    x = torch.zeros(6, 4, dtype=torch.float64)
    x[3:] = 1.0  # positives coincide exactly
    x.requires_grad_()
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    loss = triplet_loss(x, y, mining=mining, margin=5.0)
    loss.backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("mining", ["batch_hard", "batch_all", "semi_hard"])
@pytest.mark.parametrize(
    "metric,soft",
    [("euclidean", False), ("sqeuclidean", False), ("cosine", False), ("euclidean", True)],
)
def test_gradcheck_float64(mining, metric, soft):
    x, y = batch(b=10, d=4)
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda e: triplet_loss(e, y, mining=mining, metric=metric, soft_margin=soft), (x,))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(dtype):
    x, y = batch(dtype=torch.float32)
    for mining in ("batch_hard", "batch_all", "semi_hard"):
        half = triplet_loss(x.to(dtype), y, mining=mining)
        assert torch.isfinite(half) and half.item() == pytest.approx(triplet_loss(x, y, mining=mining).item(), rel=0.05)


def test_explicit_triplets_match_torch():
    a, p, n = (torch.randn(9, 5, dtype=torch.float64) for _ in range(3))
    want = torch.nn.TripletMarginLoss(margin=0.2)(a, p, n)
    torch.testing.assert_close(triplet_margin_loss(a, p, n, margin=0.2), want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(TripletLoss().triplets(a, p, n), want, rtol=1e-6, atol=1e-6)


def test_contrastive_is_hadsell_over_all_pairs():
    x, y = batch(b=9)
    d = torch.cdist(x, x)
    i, j = torch.triu_indices(9, 9, 1)
    same = (y[i] == y[j]).double()
    want = (same * d[i, j] ** 2 + (1 - same) * torch.relu(1.5 - d[i, j]) ** 2).mean()
    torch.testing.assert_close(contrastive_loss(x, y, neg_margin=1.5), want)
    loss = ContrastiveLoss(neg_margin=1.5)
    torch.testing.assert_close(loss(x, y), want)
    torch.testing.assert_close(loss.pairs(x[i], x[j], same.bool()), want)
    assert loss.last_stats == {}  # statistics only when asked: reading them back syncs a GPU every step
    tracked = ContrastiveLoss(neg_margin=1.5, track_stats=True)
    torch.testing.assert_close(tracked(x, y), want)
    assert tracked.last_stats["valid"] == 36


def test_stats_for_logging():

    x, y = batch()
    tracked = TripletLoss(mining="batch_all", track_stats=True)
    loss = tracked(x, y)
    stats = tracked.last_stats
    assert 0 <= stats["active_fraction"] <= 1 and stats["mean_negative_distance"] > 0 and stats["valid"] > 0
    assert torch.is_tensor(triplet_loss(x, y, mining="batch_all"))  # a function returns the loss, only
    with pytest.warns(DeprecationWarning, match="last_stats"):
        old, old_stats = triplet_loss(x, y, mining="batch_all", return_stats=True)  # for one release
    torch.testing.assert_close(old, loss)
    assert old_stats == stats
    pairs = ContrastiveLoss(track_stats=True)
    with pytest.warns(DeprecationWarning):
        assert contrastive_loss(x, y, return_stats=True)[1] == (pairs(x, y), pairs.last_stats)[1]


def test_bad_arguments_are_explained():
    x, y = batch()
    with pytest.raises(ParameterError, match="mining='hardest'"):
        triplet_loss(x, y, mining="hardest")
    with pytest.raises(ParameterError, match=r"labels: expected shape \(24,\)"):
        triplet_loss(x, y[:5])
    with pytest.raises(ParameterError, match="integer"):
        triplet_loss(x, y.double())
    with pytest.raises(ParameterError, match="reduction='avg'"):
        contrastive_loss(x, y, reduction="avg")
    with pytest.raises(ParameterError, match="margin=-1"):
        triplet_loss(x, y, margin=-1)


# ---------------------------------------------------------------- pytorch-metric-learning parity
pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
pml_miners = pytest.importorskip("pytorch_metric_learning.miners")


def unit_batch(b=32, seed=1):
    x, y = batch(b=b, d=16, classes=6, seed=seed, dtype=torch.float32)
    return torch.nn.functional.normalize(x, dim=1), y  # pml normalises embeddings by default


def test_pml_all_triplets_equals_batch_all_mean_nonzero():
    x, y = unit_batch()
    theirs = pml_losses.TripletMarginLoss(margin=0.2)(x, y)
    ours = triplet_loss(x, y, mining="batch_all", reduction="mean_nonzero", margin=0.2)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_pml_batch_hard_miner_equals_batch_hard():
    x, y = unit_batch()
    triplets = pml_miners.BatchHardMiner()(x, y)
    theirs = pml_losses.TripletMarginLoss(margin=0.2)(x, y, triplets)
    ours = triplet_loss(x, y, mining="batch_hard", reduction="mean_nonzero", margin=0.2)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- fused compiled op
@pytest.mark.needs_extension
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "metric,soft",
    [("euclidean", False), ("sqeuclidean", False), ("cosine", False), ("euclidean", True), ("cosine", True)],
)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "mean_nonzero"])
def test_fused_batch_hard_matches_reference(device, metric, soft, reduction, monkeypatch):
    x0, y = batch(b=40, d=12, classes=7, seed=3)
    x0, y = x0.to(device), y.to(device)
    x = x0.clone().requires_grad_()
    options = dict(metric=metric, soft_margin=soft, reduction=reduction, track_stats=True)
    tracked = TripletLoss(**options)
    fused = tracked(x, y)
    fused_stats = tracked.last_stats
    fused.sum().backward()
    xr = x0.clone().requires_grad_()
    with reference_ops():
        ref = tracked(xr, y)
        ref_stats = tracked.last_stats
    ref.sum().backward()
    torch.testing.assert_close(fused, ref)
    torch.testing.assert_close(x.grad, xr.grad)
    assert fused_stats == pytest.approx(ref_stats)


@pytest.mark.slow
@pytest.mark.needs_extension
def test_fused_batch_hard_gradcheck_and_compile():
    x, y = batch(b=16, d=6)
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda e: triplet_loss(e, y), (x,))
    compiled = torch.compile(lambda e: triplet_loss(e, y), fullgraph=True)
    torch.testing.assert_close(compiled(x.detach().float()), triplet_loss(x.detach().float(), y))


@pytest.mark.needs_extension
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mining", ["batch_all", "semi_hard"])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "mean_nonzero"])
@pytest.mark.parametrize("labels", ["random", "no_negatives", "no_positives"])
def test_compiled_mining_matches_reference(device, mining, soft, reduction, labels):
    x0, y = batch(b=40, d=12, classes=7, seed=4)  # random labels: some anchors have no positive
    y = {"random": y, "no_negatives": torch.zeros_like(y), "no_positives": torch.arange(40)}[labels]
    x0, y = x0.to(device), y.to(device)
    x = x0.clone().requires_grad_()
    tracked = TripletLoss(mining=mining, soft_margin=soft, reduction=reduction, margin=0.5, track_stats=True)
    ours = tracked(x, y)
    ours_stats = tracked.last_stats
    ours.sum().backward()
    xr = x0.clone().requires_grad_()
    with reference_ops():
        ref = tracked(xr, y)
        ref_stats = tracked.last_stats
    ref.sum().backward()
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(x.grad, xr.grad)
    assert ours_stats == pytest.approx(ref_stats)


@pytest.mark.needs_extension
def test_compiled_batch_all_gradcheck():
    x, y = batch(b=14, d=5, classes=4)
    x.requires_grad_()
    for soft in (False, True):
        assert torch.autograd.gradcheck(lambda e: triplet_loss(e, y, mining="batch_all", soft_margin=soft), (x,))


def test_distance_and_squared_are_the_old_spelling_of_metric():
    from audiosiam.losses import ContrastiveLoss, TripletLoss, contrastive_loss

    x, y = batch(b=12, d=6)
    for old, metric in (({"distance": "cosine"}, "cosine"), ({"squared": True}, "sqeuclidean"), ({}, "euclidean")):
        new = triplet_loss(x, y, metric=metric)
        if old:
            with pytest.warns(DeprecationWarning, match=f"metric={metric!r}"):
                torch.testing.assert_close(triplet_loss(x, y, **old), new)
            with pytest.warns(DeprecationWarning):
                assert TripletLoss(**old).metric == metric
    with pytest.warns(DeprecationWarning):
        torch.testing.assert_close(contrastive_loss(x, y, distance="cosine"), contrastive_loss(x, y, metric="cosine"))
    assert ContrastiveLoss(metric="L2").metric == "euclidean"  # the aliases of pairwise_distance
    with pytest.raises(ParameterError, match="the losses take one of"):
        triplet_loss(x, y, metric="l1")
    with pytest.raises(ParameterError, match="distance=.manhattan."):
        triplet_loss(x, y, distance="manhattan")
