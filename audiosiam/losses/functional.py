"""Triplet and contrastive losses over a labelled batch of embeddings, with online mining.

Each loss is chosen by three named options, in the spirit of pytorch-metric-learning but not its
composable objects: ``distance`` (euclidean, optionally squared, or cosine), ``mining`` (which triplets
count) and ``reduction`` (how their values become one number). They are options rather than objects
because the fast paths fuse them: batch-hard mining, its distances and its reduction run as one compiled
kernel that a user-supplied miner could not enter.

Conventions, the same for every mining:

* Batch-hard mining runs the fused compiled op ``audiosiam::triplet_batch_hard`` when the extension is
  built (O(B) memory per thread, each pair's distance computed once, sparse O(B D) backward; ties go to
  the lower index), else the code below, which is its reference. Batch-all runs as one autograd node
  from embeddings to loss (the ``self_distance`` and ``triplet_batch_all`` ops inside, O(B^2) memory);
  semi-hard uses the ``triplet_semi_hard_negatives`` selection op.
* Distances come from :func:`audiosiam.ops.pairwise_distance` (exact zeros on the diagonal; at a zero
  euclidean distance the subgradient is 0, so coincident embeddings give finite gradients, never NaN).
* An anchor with no positive or no negative in the batch contributes nothing. A batch with no valid
  triplet gives a loss of 0 that still depends on the embeddings (gradient exactly 0), never NaN.
* Reductions: ``"mean"`` over valid terms, ``"sum"``, ``"none"`` (one value per anchor or pair, 0 for
  invalid ones), ``"mean_nonzero"`` (mean over terms with a positive loss: pytorch-metric-learning's
  default ``AvgNonZeroReducer``; 0 when none is positive).
* ``return_stats=True`` also returns a dict for logging: the fraction of active (positive-loss) terms
  among valid ones, and the mean anchor-positive and anchor-negative distances.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ParameterError
from ..ops.losses import (batch_all_triplet_slopes, batch_hard_triplet_terms, compiled_batch_all_available,
                          compiled_semi_hard_available, fused_batch_all_available, fused_batch_hard_available,
                          semi_hard_negatives)

__all__ = ["triplet_loss", "triplet_margin_loss", "contrastive_loss", "contrastive_pair_loss", "MININGS",
           "REDUCTIONS", "DISTANCES"]

MININGS = ("batch_hard", "batch_all", "semi_hard")
REDUCTIONS = ("mean", "sum", "none", "mean_nonzero")
DISTANCES = ("euclidean", "cosine")

# batch-all processes anchors in chunks of at most this many (anchor, positive, negative) cells, so
# memory stays O(B^2) however large the batch: 2^17 cells hold about 2.5 MB of temporaries (~20 bytes
# per cell), and chunks this size already keep the per-chunk Python overhead small.
_BATCH_ALL_CHUNK_CELLS = 1 << 17


def _check(embeddings: torch.Tensor, labels: torch.Tensor, distance: str, reduction: str) -> None:
    if embeddings.ndim != 2:
        raise ParameterError(f"embeddings: expected shape (batch, dim), got {tuple(embeddings.shape)}")
    if labels.ndim != 1 or labels.shape[0] != embeddings.shape[0]:
        raise ParameterError(f"labels: expected shape ({embeddings.shape[0]},), got {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ParameterError(f"labels: expected an integer tensor, got {labels.dtype}")
    if labels.device != embeddings.device:
        raise ParameterError(f"labels: on {labels.device}, but embeddings are on {embeddings.device}")
    if distance not in DISTANCES:
        raise ParameterError(f"distance={distance!r}: expected one of {DISTANCES}")
    if reduction not in REDUCTIONS:
        raise ParameterError(f"reduction={reduction!r}: expected one of {REDUCTIONS}")


def _metric(distance: str, squared: bool) -> str:
    """The pairwise_distance metric of a loss's ``distance`` and ``squared`` arguments."""
    return "cosine" if distance == "cosine" else ("sqeuclidean" if squared else "euclidean")


def _distances(embeddings: torch.Tensor, distance: str, squared: bool) -> torch.Tensor:
    from ..ops import pairwise_distance

    x = embeddings if embeddings.dtype in (torch.float32, torch.float64) else embeddings.float()
    return pairwise_distance(x, metric=_metric(distance, squared))


def _reduce(values: torch.Tensor, valid: torch.Tensor, reduction: str, anchor_of=None, batch: int = 0) -> torch.Tensor:
    """Reduce per-term ``values`` where ``valid``.

    Masked sums divided by clamped counts, not boolean indexing: no data-dependent shapes (so
    ``torch.compile(fullgraph=True)`` and CUDA graphs work), and an empty selection gives 0 that still
    depends on ``values`` (gradient exactly 0, never NaN).
    """
    kept = torch.where(valid, values, torch.zeros_like(values))
    if reduction == "none":
        if anchor_of is None:
            return kept
        per_anchor = torch.zeros(batch, dtype=values.dtype, device=values.device).index_add(0, anchor_of, kept)
        count = torch.zeros(batch, dtype=values.dtype, device=values.device).index_add(0, anchor_of, valid.to(values.dtype))
        return per_anchor / count.clamp_min(1)
    if reduction == "sum":
        return kept.sum()
    counted = valid & (values > 0) if reduction == "mean_nonzero" else valid
    return kept.sum() / counted.sum().clamp_min(1).to(values.dtype)


@torch.no_grad()
def _stats(loss_terms, valid, d_ap, d_an) -> dict:
    n_valid = int(valid.sum())
    return {
        "active_fraction": float((loss_terms[valid] > 0).float().mean()) if n_valid else 0.0,
        "mean_positive_distance": float(d_ap[valid].mean()) if n_valid else 0.0,
        "mean_negative_distance": float(d_an[valid].mean()) if n_valid else 0.0,
        "valid": n_valid,
    }


def _hinge(x: torch.Tensor, margin: float, soft: bool) -> torch.Tensor:
    return F.softplus(x) if soft else F.relu(x + margin)


def triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, *, margin: float = 0.2, mining: str = "batch_hard",
                 distance: str = "euclidean", squared: bool = False, soft_margin: bool = False,
                 reduction: str = "mean", return_stats: bool = False):
    """Triplet loss ``max(0, d(a, p) - d(a, n) + margin)`` with online mining in a labelled batch.

    Args:
        embeddings: (B, D); float16/bfloat16 are computed in float32.
        labels: (B,) integer class of each embedding.
        margin: the margin (ignored with ``soft_margin``).
        mining: ``"batch_hard"`` (per anchor: farthest positive, nearest negative), ``"batch_all"`` (every
            valid triplet, O(B^2) memory), ``"semi_hard"`` (per anchor-positive pair: the nearest negative
            farther than the positive, FaceNet; the nearest negative where none is).
        distance: ``"euclidean"`` or ``"cosine"`` (1 - cosine similarity).
        squared: squared euclidean distances.
        soft_margin: ``softplus(d(a, p) - d(a, n))`` instead of the hinge.
        reduction: see the module docstring. ``"none"`` gives one value per anchor (B,).
        return_stats: also return the logging dict.

    Returns:
        The loss (scalar, or (B,) with ``reduction="none"``), and the stats dict if asked.

    Example:
        >>> triplet_loss(torch.randn(8, 4), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), mining="batch_all")
    """
    _check(embeddings, labels, distance, reduction)
    if mining not in MININGS:
        raise ParameterError(f"mining={mining!r}: expected one of {MININGS}")
    if margin < 0:
        raise ParameterError(f"margin={margin}: must be >= 0")
    if mining == "batch_hard" and fused_batch_hard_available(embeddings, distance):
        terms, has, d_ap, d_an = batch_hard_triplet_terms(embeddings, labels, margin=margin, distance=distance,
                                                          squared=squared, soft=soft_margin)
        out = _reduce(terms, has, reduction)
        return (out, _stats(terms, has, d_ap, d_an)) if return_stats else out
    if mining == "batch_all" and fused_batch_all_available(embeddings):
        # One autograd node from embeddings to loss: the exact self-distance and the mining ops run inside it.
        x = embeddings if embeddings.dtype in (torch.float32, torch.float64) else embeddings.float()
        out, stats = _batch_all(x, labels, margin, soft_margin, reduction, return_stats,
                                metric=_metric(distance, squared))
    else:
        out, stats = _mine_and_reduce(_distances(embeddings, distance, squared), labels, mining, margin, soft_margin,
                                      reduction, with_stats=return_stats)
    return (out, stats) if return_stats else out


def _masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(positive, negative)`` (B, B) boolean masks: same label other row, and different label."""
    same = labels[:, None] == labels[None, :]
    negative = ~same
    return same.fill_diagonal_(False), negative


def _mine_and_reduce(dist: torch.Tensor, labels: torch.Tensor, mining: str, margin: float, soft_margin: bool,
                     reduction: str, with_stats: bool = True):
    """The triplet loss from a (B, B) distance matrix: ``(loss, stats or None)``.

    Pure PyTorch, except that the compiled batch-all and semi-hard mining ops are used when built; the
    (B, B) masks are only built where something needs them (they cost more than the compiled mining).
    """
    b = dist.shape[0]
    if mining == "batch_all":
        return _batch_all(dist, labels, margin, soft_margin, reduction, with_stats)
    if mining == "semi_hard" and compiled_semi_hard_available(dist):
        # The op picks each positive pair's negative (-1 where the pair is no positive pair, or its anchor has
        # no negative); the gathers below stay differentiable.
        n_all = semi_hard_negatives(dist, labels, margin=margin)
        a_idx, p_idx = torch.nonzero(n_all >= 0, as_tuple=True)
        d_ap, d_an = dist[a_idx, p_idx], dist[a_idx, n_all[a_idx, p_idx]]
        terms = _hinge(d_ap - d_an, margin, soft_margin)
        valid = torch.ones_like(terms, dtype=torch.bool)
        out = _reduce(terms, valid, reduction, anchor_of=a_idx, batch=b)
        return out, (_stats(terms, valid, d_ap, d_an) if with_stats else None)
    pos_mask, neg_mask = _masks(labels)
    if mining == "batch_hard":
        has = pos_mask.any(1) & neg_mask.any(1)
        d_ap = dist.masked_fill(~pos_mask, float("-inf")).amax(1)
        d_an = dist.masked_fill(~neg_mask, float("inf")).amin(1)
        d_ap = torch.where(has, d_ap, torch.zeros_like(d_ap))
        d_an = torch.where(has, d_an, torch.zeros_like(d_an))
        terms = _hinge(d_ap - d_an, margin, soft_margin)
        out = _reduce(terms, has, reduction)
        return out, (_stats(terms, has, d_ap, d_an) if with_stats else None)
    # semi-hard, reference: per positive pair, the nearest negative farther than the positive within the
    # margin, else the nearest negative.
    a_idx, p_idx = torch.nonzero(pos_mask, as_tuple=True)
    d_ap = dist[a_idx, p_idx]
    row = dist[a_idx]  # (pairs, B)
    negs = neg_mask[a_idx]
    semi = negs & (row > d_ap[:, None]) & (row < d_ap[:, None] + margin)
    hardest = row.masked_fill(~negs, float("inf")).amin(1)
    semi_hard = row.masked_fill(~semi, float("inf")).amin(1)
    has_neg = negs.any(1)
    d_an = torch.where(semi.any(1), semi_hard, hardest)
    d_an = torch.where(has_neg, d_an, torch.zeros_like(d_an))
    terms = _hinge(d_ap - d_an, margin, soft_margin)
    out = _reduce(terms, has_neg, reduction, anchor_of=a_idx, batch=b)
    return out, (_stats(terms, has_neg, d_ap, d_an) if with_stats else None)


def _positive_table(pos_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each anchor's positives as a padded table: ``(index (B, P), valid (B, P))``, P = most positives of any anchor.

    In a PK batch an anchor has K - 1 positives but B - K negatives, so enumerating (anchor, positive, all
    B) costs B^2 (K - 1) cells instead of the B^3 of the full cube.
    """
    b = pos_mask.shape[0]
    counts = pos_mask.sum(1)
    p = int(counts.max()) if b else 0
    rows, cols = torch.nonzero(pos_mask, as_tuple=True)  # row-major: each row's positives are contiguous
    first = torch.cumsum(counts, 0) - counts
    slot = torch.arange(rows.numel(), device=pos_mask.device) - first[rows]
    index = torch.zeros(b, p, dtype=torch.long, device=pos_mask.device)
    valid = torch.zeros(b, p, dtype=torch.bool, device=pos_mask.device)
    index[rows, slot] = cols
    valid[rows, slot] = True
    return index, valid


def _batch_all_chunks(dist, pos_mask, neg_mask, margin, soft):
    """Pure-PyTorch batch-all: ``(per-anchor term sums, per-anchor triplet counts, active count, slope)``,
    anchors in chunks of at most ``_BATCH_ALL_CHUNK_CELLS`` cells. ``slope = W_pos - W_neg``."""
    b = dist.shape[0]
    pos_index, pos_valid = _positive_table(pos_mask)
    p = pos_index.shape[1]
    chunk = max(1, _BATCH_ALL_CHUNK_CELLS // max(1, p * b))
    w_pos, w_neg = torch.zeros_like(dist), torch.zeros_like(dist)
    per_anchor_sum = torch.zeros(b, dtype=dist.dtype, device=dist.device)
    per_anchor_n = torch.zeros(b, dtype=dist.dtype, device=dist.device)
    n_active = 0
    for start in range(0, b if p else 0, chunk):
        rows = slice(start, start + chunk)
        d, idx = dist[rows], pos_index[rows]
        d_ap = d.gather(1, idx)  # (c, P)
        valid = pos_valid[rows, :, None] & neg_mask[rows, None, :]  # (c, P, B)
        z = d_ap[:, :, None] - d[:, None, :]
        invalid = ~valid
        terms = _hinge(z, margin, soft).masked_fill_(invalid, 0)
        active = terms > 0  # invalid cells are 0, so never active
        # d(term)/dz: sigmoid for the soft margin, 1 where the hinge is open, 0 elsewhere.
        slope = torch.sigmoid(z).masked_fill_(invalid, 0) if soft else active.to(dist.dtype)
        w_pos[rows].scatter_add_(1, idx, slope.sum(2))  # padding slots carry slope 0
        w_neg[rows] = slope.sum(1)
        per_anchor_sum[rows] = terms.sum((1, 2))
        per_anchor_n[rows] = valid.sum((1, 2)).to(dist.dtype)
        n_active += int(active.sum())
    return per_anchor_sum, per_anchor_n, n_active, w_pos.sub_(w_neg)


class _BatchAll(torch.autograd.Function):
    """Batch-all triplet loss in O(B^2) memory forward *and* backward.

    The forward accumulates, per (anchor, positive) and (anchor, negative) cell, the summed slope of the
    terms it appears in; the gradient with respect to the distances is then ``scale * (W_pos - W_neg)``,
    a B x B matrix. (Autograd through the triplets would keep B^3 of them for the backward.) The compiled
    op ``triplet_batch_all`` computes this when built; otherwise :func:`_batch_all_chunks` does, anchors
    in chunks over each anchor's positives only (see :func:`_positive_table`).

    ``source`` is either the (B, B) distance matrix (``metric=None``), or the (B, D) embeddings with the
    ``metric`` of the compiled ``self_distance`` op, which then runs inside this node: its backward turns
    the distance gradient into the embedding gradient directly (one node instead of two).
    """

    @staticmethod
    def forward(ctx, source, labels, metric, margin, soft, reduction, stats):
        dist = source if metric is None else torch.ops.audiosiam.self_distance(source, metric)
        masks = None
        if compiled_batch_all_available(dist):
            term_sum, valid, active, slope = batch_all_triplet_slopes(dist, labels, margin=margin, soft=soft)
            per_anchor_sum, per_anchor_n, n_active = term_sum, valid, int(active.sum())
        else:
            masks = _masks(labels)
            per_anchor_sum, per_anchor_n, n_active, slope = _batch_all_chunks(dist, *masks, margin, soft)
        n_valid = int(per_anchor_n.sum())
        if reduction == "none":
            scale = 1.0 / per_anchor_n.clamp_min(1).to(dist.dtype)
            out = per_anchor_sum * scale
        else:
            count = {"sum": 1, "mean": max(n_valid, 1), "mean_nonzero": max(n_active, 1)}[reduction]
            scale = 1.0 / count
            out = per_anchor_sum.sum() * scale
        ctx.save_for_backward(slope, scale if torch.is_tensor(scale) else None, *(() if metric is None else (source, dist)))
        ctx.scale, ctx.metric = None if torch.is_tensor(scale) else scale, metric
        if stats is not None:
            # Mean distances over the valid triplets: each positive pair counts once per negative and vice versa.
            pos_mask, neg_mask = masks if masks is not None else _masks(labels)
            n_pos, n_neg = pos_mask.sum(1).to(dist.dtype), neg_mask.sum(1).to(dist.dtype)
            pos_sum = float(((dist * pos_mask).sum(1) * n_neg).sum())
            neg_sum = float(((dist * neg_mask).sum(1) * n_pos).sum())
            stats.update(active_fraction=n_active / n_valid if n_valid else 0.0,
                         mean_positive_distance=pos_sum / n_valid if n_valid else 0.0,
                         mean_negative_distance=neg_sum / n_valid if n_valid else 0.0, valid=n_valid)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        slope, per_anchor_scale, *embedding = ctx.saved_tensors
        if per_anchor_scale is not None:  # reduction "none": one scale per anchor row
            grad_dist = (grad_out * per_anchor_scale)[:, None] * slope
        else:
            grad_dist = (grad_out * ctx.scale) * slope
        if ctx.metric is None:
            return grad_dist, None, None, None, None, None, None
        x, dist = embedding
        grad_x = torch.ops.audiosiam._self_distance_backward(grad_dist, x, dist, ctx.metric)
        return grad_x, None, None, None, None, None, None


def _batch_all(source, labels, margin, soft, reduction, with_stats=True, metric=None):
    """Every valid (a, p, n), in O(B^2) memory forward and backward (see :class:`_BatchAll`): ``(loss, stats)``.
    ``source`` is a distance matrix, or embeddings when ``metric`` names the compiled self-distance's metric."""
    stats = {} if with_stats else None
    out = _BatchAll.apply(source, labels, metric, margin, soft, reduction, stats)
    return out, stats


def triplet_margin_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, *,
                        margin: float = 0.2, distance: str = "euclidean", squared: bool = False,
                        soft_margin: bool = False, reduction: str = "mean") -> torch.Tensor:
    """Triplet loss over explicit (anchor, positive, negative) rows, each (B, D), as
    ``torch.nn.TripletMarginLoss`` takes them (exact zero distance, zero subgradient there)."""
    if not (anchor.shape == positive.shape == negative.shape) or anchor.ndim != 2:
        raise ParameterError(f"anchor/positive/negative: expected three equal (B, D) shapes, got "
                             f"{tuple(anchor.shape)}, {tuple(positive.shape)}, {tuple(negative.shape)}")
    if distance not in DISTANCES or reduction not in REDUCTIONS:
        raise ParameterError(f"distance={distance!r}, reduction={reduction!r}: expected one of {DISTANCES} and {REDUCTIONS}")
    from ..ops import paired_distance

    metric = "cosine" if distance == "cosine" else ("sqeuclidean" if squared else "euclidean")
    d_ap = paired_distance(anchor, positive, metric=metric)
    d_an = paired_distance(anchor, negative, metric=metric)
    terms = _hinge(d_ap - d_an, margin, soft_margin)
    return _reduce(terms, torch.ones_like(terms, dtype=torch.bool), reduction)


def contrastive_pair_loss(distances: torch.Tensor, same: torch.Tensor, *, pos_margin: float = 0.0,
                          neg_margin: float = 1.0, power: int = 2, reduction: str = "mean") -> torch.Tensor:
    """Contrastive loss (Hadsell, Chopra, LeCun 2006) over pair distances.

    ``same * max(0, d - pos_margin)^power + (1 - same) * max(0, neg_margin - d)^power``; with
    ``pos_margin=0, power=2`` it is the paper's ``y d^2 + (1 - y) max(0, m - d)^2``.
    """
    if reduction not in REDUCTIONS:
        raise ParameterError(f"reduction={reduction!r}: expected one of {REDUCTIONS}")
    if neg_margin < pos_margin:
        raise ParameterError(f"neg_margin={neg_margin} < pos_margin={pos_margin}: negatives must be pushed farther "
                             "than positives are pulled")
    same = same.to(torch.bool)
    terms = torch.where(same, F.relu(distances - pos_margin), F.relu(neg_margin - distances)).pow(power)
    return _reduce(terms, torch.ones_like(same), reduction)


def contrastive_loss(embeddings: torch.Tensor, labels: torch.Tensor, *, pos_margin: float = 0.0,
                     neg_margin: float = 1.0, power: int = 2, distance: str = "euclidean",
                     reduction: str = "mean", return_stats: bool = False):
    """Contrastive loss over every pair (i < j) of a labelled batch; see :func:`contrastive_pair_loss`.

    With ``reduction="none"`` the result is the (B, B) matrix of pair terms (zero on and below the diagonal).
    """
    _check(embeddings, labels, distance, reduction)
    dist = _distances(embeddings, distance, squared=False)
    b = dist.shape[0]
    upper = torch.triu(torch.ones(b, b, dtype=torch.bool, device=dist.device), diagonal=1)
    same = labels[:, None] == labels[None, :]
    terms = torch.where(same, F.relu(dist - pos_margin), F.relu(neg_margin - dist)).pow(power)
    if reduction == "none":
        out = torch.where(upper, terms, torch.zeros_like(terms))
    else:
        out = _reduce(terms, upper, reduction)
    if not return_stats:
        return out
    terms, dist = terms.detach(), dist.detach()
    pos, neg = upper & same, upper & ~same
    stats = {
        "active_fraction": float((terms[upper] > 0).float().mean()) if upper.any() else 0.0,
        "mean_positive_distance": float(dist[pos].mean()) if pos.any() else 0.0,
        "mean_negative_distance": float(dist[neg].mean()) if neg.any() else 0.0,
        "valid": int(upper.sum()),
    }
    return out, stats
