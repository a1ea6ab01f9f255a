"""Triplet and contrastive losses over a labelled batch of embeddings, with online mining.

Each loss is chosen by three named options, in the spirit of pytorch-metric-learning but not its
composable objects: ``metric`` (euclidean, squared euclidean or cosine: ``audiosiam.ops.distance.METRICS``, the names of
:func:`audiosiam.ops.pairwise_distance`), ``mining`` (which triplets
count) and ``reduction`` (how their values become one number). They are options rather than objects
because the fast paths fuse them: batch-hard mining, its distances and its reduction run as one compiled
kernel that a user-supplied miner could not enter.

Conventions, the same for every mining:

* The mining runs in the ops of :mod:`audiosiam.ops.losses`, each compiled when the extension is built
  and its reference otherwise: batch-hard as one fused op from embeddings to per-anchor terms (O(B)
  memory per thread, each pair's distance computed once, sparse O(B D) backward; ties go to the lower
  index); batch-all over the exact self-distance matrix with O(B^2) memory forward and backward (the op
  returns each anchor's term sum and its slope matrix, which is the gradient); semi-hard as a selection
  op whose chosen distances are gathered here, so gradients flow through the gather.
* Distances come from :func:`audiosiam.ops.pairwise_distance` (exact zeros on the diagonal; at a zero
  euclidean distance the subgradient is 0, so coincident embeddings give finite gradients, never NaN).
* An anchor with no positive or no negative in the batch contributes nothing. A batch with no valid
  triplet gives a loss of 0 that still depends on the embeddings (gradient exactly 0), never NaN.
* Reductions: ``"mean"`` over valid terms, ``"sum"``, ``"none"`` (one value per anchor or pair, 0 for
  invalid ones), ``"mean_nonzero"`` (mean over terms with a positive loss: pytorch-metric-learning's
  default ``AvgNonZeroReducer``; 0 when none is positive).
* Each function returns the loss and nothing else. The numbers to log (the fraction of active
  (positive-loss) terms among valid ones, the mean anchor-positive and anchor-negative distances) are the
  modules' ``last_stats`` (``TripletLoss(track_stats=True)``): reading them is a device synchronisation.
  ``return_stats=True`` still returns ``(loss, stats)`` for one release, with a warning.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from ..errors import ParameterError
from ..ops import paired_distance, pairwise_distance, triplet_batch_all, triplet_batch_hard
from ..ops._reference import hinge as _hinge  # the triplet term is defined once, beside the mining references
from ..ops._reference import triplet_masks
from ..ops.distance import parse_metric
from ..ops.losses import triplet_semi_hard_negatives

#: The ``mining`` settings of :func:`triplet_loss`: which triplets of a batch count.
MININGS = ("batch_hard", "batch_all", "semi_hard")
#: The ``reduction`` settings of the losses (``mean_nonzero``: the mean over the terms above zero).
REDUCTIONS = ("mean", "sum", "none", "mean_nonzero")
#: The ``metric`` settings of the losses: distances between embeddings, named as :func:`audiosiam.ops.pairwise_distance`
#: names them (``"cosine"`` is 1 - cosine similarity).
METRICS = ("euclidean", "sqeuclidean", "cosine")
DISTANCES = ("euclidean", "cosine")  # deprecated: the ``distance=`` of earlier releases, now ``metric=``


def resolve_metric(metric: str, distance: str | None = None, squared: bool | None = None, stacklevel: int = 3) -> str:
    """The loss's metric, from ``metric`` or the deprecated ``distance`` / ``squared`` pair (with a warning
    that names the new spelling).

    Args:
        metric (str): one of ``audiosiam.ops.distance.METRICS`` (or an alias ``parse_metric()`` knows).
        distance (str or None, optional): deprecated: ``"euclidean"`` or ``"cosine"``. Default: ``None``.
        squared (bool or None, optional): deprecated: squared euclidean. Default: ``None``.
        stacklevel (int, optional): where the deprecation warning points. Default: ``3``.

    Returns:
        str: one of ``audiosiam.ops.distance.METRICS``.

    Raises:
        ParameterError: an unknown metric (or distance).
    """
    if distance is not None or squared is not None:
        if distance is not None and distance not in DISTANCES:
            raise ParameterError(f"distance={distance!r}: expected one of {DISTANCES} (or metric=, one of {METRICS})")
        metric = "cosine" if distance == "cosine" else ("sqeuclidean" if squared else "euclidean")
        warnings.warn(
            f"distance= and squared= are now metric= (this call: metric={metric!r}); the old names go in the next "
            "release",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
    name = parse_metric(metric)
    if name not in METRICS:
        raise ParameterError(f"metric={metric!r}: the losses take one of {METRICS}")
    return name


def _check(embeddings: torch.Tensor, labels: torch.Tensor, reduction: str) -> None:
    if embeddings.ndim != 2:
        raise ParameterError(f"embeddings: expected shape (batch, dim), got {tuple(embeddings.shape)}")
    if labels.ndim != 1 or labels.shape[0] != embeddings.shape[0]:
        raise ParameterError(f"labels: expected shape ({embeddings.shape[0]},), got {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ParameterError(f"labels: expected an integer tensor, got {labels.dtype}")
    if labels.device != embeddings.device:
        raise ParameterError(f"labels: on {labels.device}, but embeddings are on {embeddings.device}")
    if reduction not in REDUCTIONS:
        raise ParameterError(f"reduction={reduction!r}: expected one of {REDUCTIONS}")


def _distances(embeddings: torch.Tensor, metric: str) -> torch.Tensor:
    x = embeddings if embeddings.dtype in (torch.float32, torch.float64) else embeddings.float()
    return pairwise_distance(x, metric=metric)


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
        count = torch.zeros(batch, dtype=values.dtype, device=values.device).index_add(
            0, anchor_of, valid.to(values.dtype)
        )
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


def triplet_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    margin: float = 0.2,
    mining: str = "batch_hard",
    metric: str = "euclidean",
    soft_margin: bool = False,
    reduction: str = "mean",
    return_stats: bool = False,
    distance: str | None = None,
    squared: bool | None = None,
):
    """Triplet loss ``max(0, d(a, p) - d(a, n) + margin)`` with online mining in a labelled batch.

    Args:
        embeddings (Tensor): (B, D) float; float16/bfloat16 are computed in float32.
        labels (Tensor): (B,) integer class of each embedding, on the embeddings' device.
        margin (float, optional): the margin, >= 0 (ignored with ``soft_margin``). Default: ``0.2``.
        mining (str, optional): ``"batch_hard"`` (per anchor: farthest positive, nearest negative),
            ``"batch_all"`` (every valid triplet, O(B^2) memory), ``"semi_hard"`` (per anchor-positive pair:
            the nearest negative farther than the positive, FaceNet; the nearest negative where none is).
            Default: ``"batch_hard"``.
        metric (str, optional): ``"euclidean"``, ``"sqeuclidean"`` or ``"cosine"`` (1 - cosine similarity).
            Default: ``"euclidean"``.
        soft_margin (bool, optional): ``softplus(d(a, p) - d(a, n))`` instead of the hinge. Default: ``False``.
        reduction (str, optional): ``"mean"``, ``"sum"``, ``"none"`` or ``"mean_nonzero"``; see the module
            docstring. ``"none"`` gives one value per anchor (B,): its term (batch-hard) or the mean of its
            terms (batch-all, semi-hard), 0 where it has none. Default: ``"mean"``.
        return_stats (bool, optional): deprecated: ``(loss, stats)`` instead of the loss (use
            ``TripletLoss(track_stats=True).last_stats``). Default: ``False``.
        distance (str or None, optional): deprecated spelling of ``metric`` (with ``squared``). Default: ``None``.
        squared (bool or None, optional): deprecated: ``metric="sqeuclidean"``. Default: ``None``.

    Returns:
        Tensor: the loss (scalar, or (B,) with ``reduction="none"``), differentiable with respect to
        ``embeddings``.

    Raises:
        ParameterError: ``embeddings`` is not (B, D), ``labels`` not (B,) integer on the same device, an
            option is not one of its choices, or ``margin < 0``.

    Example:
        >>> triplet_loss(torch.randn(8, 4), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), mining="batch_all")
    """
    metric = resolve_metric(metric, distance, squared)
    loss, stats = triplet_loss_and_stats(
        embeddings, labels, margin=margin, mining=mining, metric=metric, soft_margin=soft_margin,
        reduction=reduction, stats=_stats_asked(return_stats),
    )  # fmt: skip
    return (loss, stats) if return_stats else loss


def _stats_asked(return_stats: bool) -> bool:
    if return_stats:
        warnings.warn(
            "return_stats=True is deprecated: a loss function returns the loss; the numbers to log are the "
            "modules' last_stats (TripletLoss / ContrastiveLoss with track_stats=True)",
            DeprecationWarning,
            stacklevel=3,
        )
    return return_stats


def triplet_loss_and_stats(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    margin: float,
    mining: str,
    metric: str,
    soft_margin: bool,
    reduction: str,
    stats: bool,
) -> tuple[torch.Tensor, dict | None]:
    """:func:`triplet_loss` and, when ``stats``, its logging dict (``"active_fraction"``,
    ``"mean_positive_distance"``, ``"mean_negative_distance"``, ``"valid"``); ``None`` otherwise. What
    :class:`~audiosiam.losses.TripletLoss` calls; ``metric`` already resolved."""
    _check(embeddings, labels, reduction)
    if mining not in MININGS:
        raise ParameterError(f"mining={mining!r}: expected one of {MININGS}")
    if margin < 0:
        raise ParameterError(f"margin={margin}: must be >= 0")
    if mining == "batch_hard":
        terms, positive, _, d_ap, d_an = triplet_batch_hard(
            embeddings, labels, margin=margin, metric=metric, soft=soft_margin
        )
        valid = positive >= 0
        out = _reduce(terms, valid, reduction)
        return out, (_stats(terms, valid, d_ap, d_an) if stats else None)
    return mined_triplet_loss(
        _distances(embeddings, metric),
        labels,
        mining=mining,
        margin=margin,
        soft_margin=soft_margin,
        reduction=reduction,
        return_stats=stats,
    )


def mined_triplet_loss(
    dist: torch.Tensor,
    labels: torch.Tensor,
    *,
    mining: str,
    margin: float,
    soft_margin: bool,
    reduction: str,
    return_stats: bool = False,
):
    """The batch-all or semi-hard triplet loss from a (B, B) distance matrix: ``(loss, stats or None)``.

    What :func:`triplet_loss` runs after computing the exact distances; the benchmarks feed it other
    distance matrices (``torch.cdist``) to time the plain-PyTorch formulation.

    Args:
        dist (Tensor): (B, B) float distances; the loss is differentiable with respect to them.
        labels (Tensor): (B,) integer class of each row.
        mining (str): ``"batch_all"`` or ``"semi_hard"`` (batch-hard mines from the embeddings).
        margin (float): the margin (ignored with ``soft_margin``).
        soft_margin (bool): softplus terms instead of the hinge.
        reduction (str): as :func:`triplet_loss`.
        return_stats (bool, optional): compute the logging dict (else ``None``). Default: ``False``.

    Raises:
        ParameterError: ``mining`` is neither ``"batch_all"`` nor ``"semi_hard"``, or bad ``dist``/``labels``.
    """
    b = dist.shape[0]
    if mining == "batch_all":
        term_sum, valid, active, _ = triplet_batch_all(dist, labels, margin=margin, soft=soft_margin)
        n_valid, n_active = valid.sum(), active.sum()
        if reduction == "none":
            out = term_sum / valid.clamp_min(1).to(term_sum.dtype)
        else:
            count = {"sum": None, "mean": n_valid, "mean_nonzero": n_active}[reduction]
            out = term_sum.sum() if count is None else term_sum.sum() / count.clamp_min(1).to(term_sum.dtype)
        return out, (_batch_all_stats(dist, labels, int(n_valid), int(n_active)) if return_stats else None)
    if mining != "semi_hard":
        raise ParameterError(
            f"mining={mining!r}: expected 'batch_all' or 'semi_hard' (batch-hard mines from the "
            "embeddings: use triplet_loss)"
        )
    negative = triplet_semi_hard_negatives(dist, labels, margin=margin)
    a_idx, p_idx = torch.nonzero(negative >= 0, as_tuple=True)
    d_ap, d_an = dist[a_idx, p_idx], dist[a_idx, negative[a_idx, p_idx]]  # the gathers carry the gradient
    terms = _hinge(d_ap - d_an, margin, soft_margin)
    valid = torch.ones_like(terms, dtype=torch.bool)
    out = _reduce(terms, valid, reduction, anchor_of=a_idx, batch=b)
    return out, (_stats(terms, valid, d_ap, d_an) if return_stats else None)


@torch.no_grad()
def _batch_all_stats(dist: torch.Tensor, labels: torch.Tensor, n_valid: int, n_active: int) -> dict:
    """Batch-all's logging dict. Mean distances are over the valid triplets: each positive pair counts
    once per negative of its anchor, and each negative pair once per positive."""
    pos_mask, neg_mask = triplet_masks(labels)
    n_pos, n_neg = pos_mask.sum(1).to(dist.dtype), neg_mask.sum(1).to(dist.dtype)
    pos_sum = float(((dist * pos_mask).sum(1) * n_neg).sum())
    neg_sum = float(((dist * neg_mask).sum(1) * n_pos).sum())
    return {
        "active_fraction": n_active / n_valid if n_valid else 0.0,
        "mean_positive_distance": pos_sum / n_valid if n_valid else 0.0,
        "mean_negative_distance": neg_sum / n_valid if n_valid else 0.0,
        "valid": n_valid,
    }


def triplet_margin_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    *,
    margin: float = 0.2,
    metric: str = "euclidean",
    soft_margin: bool = False,
    reduction: str = "mean",
    distance: str | None = None,
    squared: bool | None = None,
) -> torch.Tensor:
    """Triplet loss over explicit (anchor, positive, negative) rows, each (B, D), as
    ``torch.nn.TripletMarginLoss`` takes them (exact zero distance, zero subgradient there).

    Args:
        anchor (Tensor): (B, D) float.
        positive (Tensor): (B, D), of the anchor's dtype and device.
        negative (Tensor): (B, D), of the anchor's dtype and device.
        margin (float, optional): the margin (ignored with ``soft_margin``). Default: ``0.2``.
        metric (str, optional): ``"euclidean"``, ``"sqeuclidean"`` or ``"cosine"`` (1 - cosine similarity).
            Default: ``"euclidean"``.
        soft_margin (bool, optional): ``softplus(d(a, p) - d(a, n))`` instead of the hinge. Default: ``False``.
        reduction (str, optional): as :func:`triplet_loss`; ``"none"`` gives one term per triplet (B,).
            Default: ``"mean"``.
        distance (str or None, optional): deprecated spelling of ``metric`` (with ``squared``). Default: ``None``.
        squared (bool or None, optional): deprecated: ``metric="sqeuclidean"``. Default: ``None``.

    Returns:
        Tensor: the loss, a scalar or (B,), differentiable with respect to the three inputs.

    Raises:
        ParameterError: the three shapes differ or are not (B, D), or ``metric`` or ``reduction`` is
            not one of its choices.
    """
    if not (anchor.shape == positive.shape == negative.shape) or anchor.ndim != 2:
        raise ParameterError(
            f"anchor/positive/negative: expected three equal (B, D) shapes, got "
            f"{tuple(anchor.shape)}, {tuple(positive.shape)}, {tuple(negative.shape)}"
        )
    metric = resolve_metric(metric, distance, squared)
    if reduction not in REDUCTIONS:
        raise ParameterError(f"reduction={reduction!r}: expected one of {REDUCTIONS}")
    d_ap = paired_distance(anchor, positive, metric=metric)
    d_an = paired_distance(anchor, negative, metric=metric)
    terms = _hinge(d_ap - d_an, margin, soft_margin)
    return _reduce(terms, torch.ones_like(terms, dtype=torch.bool), reduction)


def contrastive_pair_loss(
    distances: torch.Tensor,
    same: torch.Tensor,
    *,
    pos_margin: float = 0.0,
    neg_margin: float = 1.0,
    power: int = 2,
    reduction: str = "mean",
) -> torch.Tensor:
    """Contrastive loss (Hadsell, Chopra, LeCun 2006) over pair distances.

    ``same * max(0, d - pos_margin)^power + (1 - same) * max(0, neg_margin - d)^power``; with
    ``pos_margin=0, power=2`` it is the paper's ``y d^2 + (1 - y) max(0, m - d)^2``.

    Args:
        distances (Tensor): (P,) float distance of each pair, e.g. from :func:`audiosiam.ops.paired_distance`.
        same (Tensor): (P,) whether each pair shares a class (bool, or 0/1: read as bool).
        pos_margin (float, optional): positive pairs closer than this cost nothing. Default: ``0.0``.
        neg_margin (float, optional): negative pairs farther than this cost nothing; ``>= pos_margin``.
            Default: ``1.0``.
        power (int, optional): the exponent of both hinges. Default: ``2``.
        reduction (str, optional): as :func:`triplet_loss`; ``"none"`` gives one term per pair (P,).
            Default: ``"mean"``.

    Returns:
        Tensor: the loss, a scalar or (P,), differentiable with respect to ``distances``.

    Raises:
        ParameterError: ``reduction`` is not one of ``REDUCTIONS``, or ``neg_margin < pos_margin``.
    """
    if reduction not in REDUCTIONS:
        raise ParameterError(f"reduction={reduction!r}: expected one of {REDUCTIONS}")
    same = same.to(torch.bool)
    terms = _contrastive_terms(distances, same, pos_margin, neg_margin, power)
    return _reduce(terms, torch.ones_like(same), reduction)


def _contrastive_terms(dist, same, pos_margin: float, neg_margin: float, power: int) -> torch.Tensor:
    """The one definition: ``max(0, d - pos_margin)^power`` for same-class pairs, ``max(0, neg_margin -
    d)^power`` for the others."""
    if neg_margin < pos_margin:
        raise ParameterError(
            f"neg_margin={neg_margin} < pos_margin={pos_margin}: negatives must be pushed farther "
            "than positives are pulled"
        )
    return torch.where(same, F.relu(dist - pos_margin), F.relu(neg_margin - dist)).pow(power)


def contrastive_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    pos_margin: float = 0.0,
    neg_margin: float = 1.0,
    power: int = 2,
    metric: str = "euclidean",
    reduction: str = "mean",
    return_stats: bool = False,
    distance: str | None = None,
):
    """Contrastive loss over every pair (i < j) of a labelled batch; see :func:`contrastive_pair_loss`.

    Args:
        embeddings (Tensor): (B, D) float; float16/bfloat16 are computed in float32.
        labels (Tensor): (B,) integer class of each embedding, on the embeddings' device.
        pos_margin (float, optional): positive pairs closer than this cost nothing. Default: ``0.0``.
        neg_margin (float, optional): negative pairs farther than this cost nothing. Default: ``1.0``.
        power (int, optional): the exponent of both hinges. Default: ``2``.
        metric (str, optional): ``"euclidean"``, ``"sqeuclidean"`` or ``"cosine"`` (1 - cosine similarity).
            Default: ``"euclidean"``.
        reduction (str, optional): as :func:`triplet_loss`, over the B (B - 1) / 2 pairs. With ``"none"``
            the result is the (B, B) matrix of pair terms (zero on and below the diagonal).
            Default: ``"mean"``.
        return_stats (bool, optional): deprecated: ``(loss, stats)`` instead of the loss (use
            ``ContrastiveLoss(track_stats=True).last_stats``). Default: ``False``.
        distance (str or None, optional): deprecated spelling of ``metric``. Default: ``None``.

    Returns:
        Tensor: the loss (scalar, or (B, B) with ``reduction="none"``), differentiable with respect to
        ``embeddings``.

    Raises:
        ParameterError: ``embeddings`` is not (B, D), ``labels`` not (B,) integer on the same device, or
            ``metric`` or ``reduction`` is not one of its choices.
    """
    metric = resolve_metric(metric, distance)
    loss, stats = contrastive_loss_and_stats(
        embeddings, labels, pos_margin=pos_margin, neg_margin=neg_margin, power=power, metric=metric,
        reduction=reduction, stats=_stats_asked(return_stats),
    )  # fmt: skip
    return (loss, stats) if return_stats else loss


def contrastive_loss_and_stats(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    pos_margin: float,
    neg_margin: float,
    power: int,
    metric: str,
    reduction: str,
    stats: bool,
) -> tuple[torch.Tensor, dict | None]:
    """:func:`contrastive_loss` and, when ``stats``, its logging dict (mean distances over the positive and
    the negative pairs; ``"valid"`` is the number of pairs); ``None`` otherwise. What
    :class:`~audiosiam.losses.ContrastiveLoss` calls; ``metric`` already resolved."""
    _check(embeddings, labels, reduction)
    dist = _distances(embeddings, metric)
    b = dist.shape[0]
    upper = torch.triu(torch.ones(b, b, dtype=torch.bool, device=dist.device), diagonal=1)
    same = labels[:, None] == labels[None, :]
    terms = _contrastive_terms(dist, same, pos_margin, neg_margin, power)
    if reduction == "none":
        out = torch.where(upper, terms, torch.zeros_like(terms))
    else:
        out = _reduce(terms, upper, reduction)
    if not stats:
        return out, None
    terms, dist = terms.detach(), dist.detach()
    pos, neg = upper & same, upper & ~same
    logged = {
        "active_fraction": float((terms[upper] > 0).float().mean()) if upper.any() else 0.0,
        "mean_positive_distance": float(dist[pos].mean()) if pos.any() else 0.0,
        "mean_negative_distance": float(dist[neg].mean()) if neg.any() else 0.0,
        "valid": int(upper.sum()),
    }
    return out, logged
