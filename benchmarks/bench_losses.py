"""Triplet losses, forward + backward: audiosiam against pure PyTorch and pytorch-metric-learning.

Run:  python -m pytest benchmarks/bench_losses.py --benchmark-group-by=func,param:mining,param:b,param:threads
fp32, D=128, PK batches with K=4. Implementations:
  audiosiam   audiosiam.losses.triplet_loss: the fused compiled op for batch-hard; the exact
              self-distance op + the compiled mining ops (triplet_batch_all, triplet_semi_hard_negatives)
              for the others
  naive       straightforward PyTorch: a Python loop over anchors
  vectorised  the best O(B^2)-memory PyTorch formulation: torch.cdist distances (BLAS) and audiosiam's
              masked mining code (its reference, minus the exact distances)
  compiled    the vectorised formulation under torch.compile (B=256 only, to keep the run short)
  pml         pytorch-metric-learning (TripletMarginLoss with its miners)
Each result is compared with the reference before it is timed. Peak extra memory of one forward+backward
step is measured as the growth of the process's resident set at its high-water mark (see
``conftest.peak_extra_bytes``) and stored as ``peak_extra_mb`` in the benchmark's extra info.
"""

from __future__ import annotations

import pytest
import torch

from audiosiam.bench import naive_batch_hard, vectorised_batch_hard  # the baselines `audiosiam bench` shows
from audiosiam.losses import functional, triplet_loss
from audiosiam.ops._extension import reference_ops
from benchmarks.measure import peak_extra_bytes, run_timed


def pk_batch(b, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.normalize(torch.randn(b, 128, generator=g), dim=1)
    return x, torch.arange(b // 4).repeat_interleave(4)


def naive_batch_all(x, y, margin=0.2):
    total, count = x.sum() * 0, 0
    for a in range(len(y)):
        d = (x[a] - x).norm(dim=1)
        pos = d[(y == y[a]) & (torch.arange(len(y)) != a)]
        neg = d[y != y[a]]
        t = torch.relu(pos[:, None] - neg[None, :] + margin)
        total, count = total + t[t > 0].sum(), count + int((t > 0).sum())
    return total / max(count, 1)


def reference(x, y, mining, reduction):
    with reference_ops():
        return triplet_loss(x, y, mining=mining, reduction=reduction)


def vectorised(x, y, mining, reduction):
    """The best plain-PyTorch formulation: torch.cdist distances (BLAS), then audiosiam's reference mining
    (call it inside ``reference_ops()``, or the compiled mining ops would run)."""
    if mining == "batch_hard":  # PK batches: every anchor has a positive and a negative
        return vectorised_batch_hard(x, y)
    dist = torch.cdist(x, x)
    return functional.mined_triplet_loss(dist, y, mining=mining, margin=0.2, soft_margin=False, reduction=reduction)[0]


def in_reference_mode(fn):
    def run(*args):
        with reference_ops():
            return fn(*args)

    return run


def pml_loss(x, y, mining):
    from pytorch_metric_learning import losses, miners

    loss = losses.TripletMarginLoss(margin=0.2)
    if mining == "batch_all":
        return loss(x, y)
    miner = (
        miners.BatchHardMiner()
        if mining == "batch_hard"
        else miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard")
    )
    return loss(x, y, miner(x, y))


CASES = [
    ("batch_hard", 256),
    ("batch_hard", 1024),
    ("batch_all", 256),
    ("batch_all", 512),
    ("batch_all", 4096),
    ("semi_hard", 256),
]
IMPLS = ["audiosiam", "naive", "vectorised", "compiled", "pml"]


@pytest.mark.parametrize("mining,b", CASES)
@pytest.mark.parametrize("impl", IMPLS)
def test_triplet_fwd_bwd(benchmark, threads, mining, b, impl):
    reduction = "mean_nonzero" if mining != "batch_hard" else "mean"
    if b == 4096 and impl not in ("audiosiam",):
        pytest.skip("only audiosiam runs B=4096 (pytorch-metric-learning crashes past B~1290; the others take minutes)")
    if impl == "naive" and mining == "semi_hard" or impl == "compiled" and b > 256:
        pytest.skip("not measured at this size")
    x, y = pk_batch(b)
    fns = {
        "audiosiam": lambda e: triplet_loss(e, y, mining=mining, reduction=reduction),
        "naive": (lambda e: naive_batch_hard(e, y)) if mining == "batch_hard" else (lambda e: naive_batch_all(e, y)),
        "vectorised": in_reference_mode(lambda e: vectorised(e, y, mining, reduction)),
        "compiled": in_reference_mode(torch.compile(lambda e: vectorised(e, y, mining, reduction))),
        "pml": lambda e: pml_loss(e, y, mining),
    }
    fn = fns[impl]
    if impl != "pml" and b <= 1024:  # pml's semi-hard and batch-hard reduce differently; parity is in tests/
        # torch.cdist (Gram expansion) is off by ~1e-4 at these norms, so the baselines get that tolerance
        torch.testing.assert_close(
            fn(x).float(),
            reference(x, y, mining, reduction).float(),
            rtol=1e-4,
            atol=1e-5 if impl == "audiosiam" else 2e-4,
        )

    def step():
        e = x.detach().requires_grad_()
        fn(e).backward()
        return e.grad

    step()  # warm-up, so that one-off allocations (thread pools, compiled code) are not counted
    extra = peak_extra_bytes(step)
    run_timed(benchmark, step, rounds=3 if b >= 1024 else 15, peak_extra_mb=None if extra is None else extra / 2**20)
