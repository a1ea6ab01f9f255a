"""The triplet-mining ops behind the losses (``audiosiam.ops.losses``): the shared op tests
(``op_tester``), then what is special to them: ties go to the lower index, semi-hard choices by hand,
kernel argument checks."""

from __future__ import annotations

import pytest
import torch

from audiosiam.ops import _reference as reference
from audiosiam.ops import triplet_batch_all, triplet_batch_hard
from audiosiam.ops.losses import triplet_semi_hard_negatives

from op_tester import OpTester


def labelled_rows(device, dtype, rows, d=5, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (rows,), generator=g)
    return x.to(device=device, dtype=dtype), y.to(device)


def distance_matrix(device, dtype, rows, seed=0):
    x, y = labelled_rows("cpu", torch.float64, rows, seed=seed)
    return torch.cdist(x, x).to(device=device, dtype=dtype), y.to(device)


class TestTripletBatchHard(OpTester):
    def variants(self):
        return [{"metric": m, "soft": s} for m in ("euclidean", "sqeuclidean", "cosine") for s in (False, True)]

    def make(self, device, dtype, rows, **variant):
        return labelled_rows(device, dtype, rows)

    def call(self, x, y, *, metric, soft):
        return triplet_batch_hard(x, y, margin=0.3, metric=metric, soft=soft)

    def expected(self, x, y, *, metric, soft):
        return reference.triplet_batch_hard(x, y, 0.3, metric, soft)

    def opcheck_samples(self, device):
        x, y = labelled_rows(device, torch.float64, 12)
        samples = []
        for margin, scale, squared, soft in ((0.2, 1.0, False, False), (0.0, 0.5, True, True)):
            samples.append(
                (torch.ops.audiosiam.triplet_batch_hard.default, (x.requires_grad_(), y, margin, scale, squared, soft))
            )
            terms, pos, neg, d_ap, d_an = torch.ops.audiosiam.triplet_batch_hard(
                x.detach(), y, margin, scale, squared, soft
            )
            samples.append(
                (
                    torch.ops.audiosiam._triplet_batch_hard_backward.default,
                    (torch.randn_like(terms), x.detach(), pos, neg, d_ap, d_an, margin, scale, squared, soft),
                )
            )
        return samples


class TestTripletBatchAll(OpTester):
    def variants(self):
        return [{"margin": 0.2, "soft": False}, {"margin": 0.6, "soft": False}, {"margin": 0.0, "soft": True}]

    def make(self, device, dtype, rows, **variant):
        return distance_matrix(device, dtype, rows)

    def call(self, dist, y, *, margin, soft):
        return triplet_batch_all(dist, y, margin=margin, soft=soft)

    def expected(self, dist, y, *, margin, soft):
        return reference.triplet_batch_all(dist, y, margin, soft)

    def opcheck_samples(self, device):
        dist, y = distance_matrix(device, torch.float64, 14)
        return [
            (torch.ops.audiosiam.triplet_batch_all.default, (dist.requires_grad_(), y, 0.2, False)),
            (torch.ops.audiosiam.triplet_batch_all.default, (dist.detach().float(), y, 0.0, True)),
        ]


class TestTripletSemiHardNegatives(OpTester):
    # a selection (the loss gathers the chosen distances): no gradient tests
    test_gradcheck_float64 = test_compiled_gradients_match_the_reference = None

    def variants(self):
        return [{"margin": 0.2}, {"margin": 1.0}]

    def make(self, device, dtype, rows, **variant):
        return distance_matrix(device, dtype, rows)

    def call(self, dist, y, *, margin):
        return triplet_semi_hard_negatives(dist, y, margin=margin)

    def expected(self, dist, y, *, margin):
        return reference.triplet_semi_hard_negatives(dist, y, margin)

    def opcheck_samples(self, device):
        dist, y = distance_matrix(device, torch.float64, 14)
        return [(torch.ops.audiosiam.triplet_semi_hard_negatives.default, (dist, y, 0.6))]


@pytest.mark.parametrize("compiled", [True, False])
def test_batch_hard_ties_go_to_the_lower_index(compiled, cpu_level):
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    y = torch.tensor([0, 0, 0, 1, 1])  # anchor 0: positives 1 and 2 tie at distance 1; negatives 3 and 4 at 2
    if compiled:
        pytest.importorskip("audiosiam._C")
        _, pos, neg, _, _ = torch.ops.audiosiam.triplet_batch_hard(x, y, 0.2, 1.0, False, False)
    else:
        _, pos, neg, _, _ = reference.triplet_batch_hard(x, y, 0.2, "euclidean", False)
    assert pos[0] == 1 and neg[0] == 3


@pytest.mark.parametrize("compiled", [True, False])
def test_semi_hard_picks_by_hand(compiled, cpu_level):
    x = torch.tensor([[0.0], [1.0], [1.1], [1.5], [3.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1, 2])
    dist = torch.cdist(x, x)
    if compiled:
        pytest.importorskip("audiosiam._C")
        neg = torch.ops.audiosiam.triplet_semi_hard_negatives(dist, y, 0.6)
    else:
        neg = reference.triplet_semi_hard_negatives(dist, y, 0.6)
    # (0, 1): d_ap 1; negatives 1.1 and 1.5 lie in (1, 1.6): the nearer, index 2
    # (1, 0): d_ap 1; negatives at 0.1, 0.5, 2.0: none in (1, 1.6) -> the nearest of all, index 2
    assert neg[0, 1] == 2 and neg[1, 0] == 2 and neg[0, 0] == -1 and neg[0, 2] == -1


@pytest.mark.needs_extension
def test_kernel_argument_checks():
    dist, y = distance_matrix("cpu", torch.float64, 6)
    with pytest.raises(ValueError, match="'dist': expected a square"):
        torch.ops.audiosiam.triplet_batch_all(dist[:3], y, 0.2, False)
    with pytest.raises(ValueError, match="'labels': expected int64"):
        torch.ops.audiosiam.triplet_semi_hard_negatives(dist, y.int(), 0.6)
