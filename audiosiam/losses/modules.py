"""``nn.Module`` forms of the losses: configure once, call on every batch."""

from __future__ import annotations

import torch
from torch import nn

from .functional import (
    contrastive_loss_and_stats,
    contrastive_pair_loss,
    resolve_metric,
    triplet_loss_and_stats,
    triplet_margin_loss,
)


class TripletLoss(nn.Module):
    """Triplet loss with online mining; see :func:`audiosiam.losses.triplet_loss` for every option.

    Call as ``loss(embeddings, labels)`` for a labelled batch, or ``loss.triplets(anchor, positive,
    negative)`` for explicit triplets. With ``track_stats=True``, after each labelled call ``last_stats``
    holds the logging dict (active fraction, mean distances); it is off by default because reading those
    numbers back is a device synchronisation per step on a GPU.

    Args:
        margin (float, optional): the margin, >= 0 (ignored with ``soft_margin``). Default: ``0.2``.
        mining (str, optional): ``"batch_hard"``, ``"batch_all"`` or ``"semi_hard"``, for labelled batches
            (explicit triplets need none). Default: ``"batch_hard"``.
        metric (str, optional): ``"euclidean"``, ``"sqeuclidean"`` or ``"cosine"`` (1 - cosine similarity).
            Default: ``"euclidean"``.
        soft_margin (bool, optional): ``softplus(d(a, p) - d(a, n))`` instead of the hinge. Default: ``False``.
        reduction (str, optional): ``"mean"``, ``"sum"``, ``"none"`` or ``"mean_nonzero"``. Default: ``"mean"``.
        track_stats (bool, optional): keep the logging dict of each labelled call in ``last_stats``.
            Default: ``False``.
        distance (str or None, optional): deprecated spelling of ``metric`` (with ``squared``). Default: ``None``.
        squared (bool or None, optional): deprecated: ``metric="sqeuclidean"``. Default: ``None``.

    The other options are checked when the loss is called, not here.

    Example:
        >>> criterion = TripletLoss(margin=0.2, mining="batch_hard")
        >>> criterion(model(waves), labels).backward()
    """

    def __init__(
        self,
        *,
        margin: float = 0.2,
        mining: str = "batch_hard",
        metric: str = "euclidean",
        soft_margin: bool = False,
        reduction: str = "mean",
        track_stats: bool = False,
        distance: str | None = None,
        squared: bool | None = None,
    ):
        super().__init__()
        self.margin, self.mining, self.metric = margin, mining, resolve_metric(metric, distance, squared)
        self.soft_margin, self.reduction = soft_margin, reduction
        self.track_stats = track_stats
        self.last_stats: dict = {}

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss of a labelled batch, mined online; :func:`~audiosiam.losses.triplet_loss`.

        Args:
            embeddings (Tensor): (B, D) float; float16/bfloat16 are computed in float32.
            labels (Tensor): (B,) integer class of each embedding, on the embeddings' device.

        Returns:
            Tensor: the loss, a scalar or (B,) with ``reduction="none"``.
        """
        loss, stats = triplet_loss_and_stats(
            embeddings,
            labels,
            margin=self.margin,
            mining=self.mining,
            metric=self.metric,
            soft_margin=self.soft_margin,
            reduction=self.reduction,
            stats=self.track_stats,
        )
        return _keep_stats(self, loss, stats)

    def triplets(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        """The loss of explicit triplets; :func:`~audiosiam.losses.triplet_margin_loss` (``mining`` and
        ``track_stats`` play no part).

        Args:
            anchor (Tensor): (B, D) float.
            positive (Tensor): (B, D), of the anchor's dtype and device.
            negative (Tensor): (B, D), of the anchor's dtype and device.

        Returns:
            Tensor: the loss, a scalar or (B,) with ``reduction="none"``.
        """
        return triplet_margin_loss(
            anchor,
            positive,
            negative,
            margin=self.margin,
            metric=self.metric,
            soft_margin=self.soft_margin,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return (
            f"margin={self.margin}, mining={self.mining!r}, metric={self.metric!r}, "
            f"soft_margin={self.soft_margin}, reduction={self.reduction!r}"
        )


class ContrastiveLoss(nn.Module):
    """Contrastive loss over all pairs of a labelled batch (``loss(embeddings, labels)``) or over given
    pairs (``loss.pairs(a, b, same)``); see :func:`audiosiam.losses.contrastive_loss`. ``track_stats`` as
    for :class:`TripletLoss`.

    Args:
        pos_margin (float, optional): positive pairs closer than this cost nothing. Default: ``0.0``.
        neg_margin (float, optional): negative pairs farther than this cost nothing. Default: ``1.0``.
        power (int, optional): the exponent of both hinges. Default: ``2``.
        metric (str, optional): ``"euclidean"``, ``"sqeuclidean"`` or ``"cosine"`` (1 - cosine similarity).
            Default: ``"euclidean"``.
        reduction (str, optional): ``"mean"``, ``"sum"``, ``"none"`` or ``"mean_nonzero"``. Default: ``"mean"``.
        track_stats (bool, optional): keep the logging dict of each labelled call in ``last_stats``.
            Default: ``False``.
        distance (str or None, optional): deprecated spelling of ``metric``. Default: ``None``.
    """

    def __init__(
        self,
        *,
        pos_margin: float = 0.0,
        neg_margin: float = 1.0,
        power: int = 2,
        metric: str = "euclidean",
        reduction: str = "mean",
        track_stats: bool = False,
        distance: str | None = None,
    ):
        super().__init__()
        self.pos_margin, self.neg_margin, self.power = pos_margin, neg_margin, power
        self.metric, self.reduction, self.track_stats = resolve_metric(metric, distance), reduction, track_stats
        self.last_stats: dict = {}

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss over every pair (i < j) of a labelled batch; :func:`~audiosiam.losses.contrastive_loss`.

        Args:
            embeddings (Tensor): (B, D) float; float16/bfloat16 are computed in float32.
            labels (Tensor): (B,) integer class of each embedding, on the embeddings' device.

        Returns:
            Tensor: the loss, a scalar or (B, B) with ``reduction="none"``.
        """
        loss, stats = contrastive_loss_and_stats(
            embeddings,
            labels,
            pos_margin=self.pos_margin,
            neg_margin=self.neg_margin,
            power=self.power,
            metric=self.metric,
            reduction=self.reduction,
            stats=self.track_stats,
        )
        return _keep_stats(self, loss, stats)

    def pairs(self, a: torch.Tensor, b: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        """The loss of given pairs ``(a[i], b[i])``; :func:`~audiosiam.losses.contrastive_pair_loss` of their
        distances (``track_stats`` plays no part).

        Args:
            a (Tensor): (P, D) float.
            b (Tensor): (P, D), of ``a``'s dtype and device.
            same (Tensor): (P,) whether each pair shares a class (bool, or 0/1: read as bool).

        Returns:
            Tensor: the loss, a scalar or (P,) with ``reduction="none"``.
        """
        from ..ops import paired_distance

        return contrastive_pair_loss(
            paired_distance(a, b, metric=self.metric),
            same,
            pos_margin=self.pos_margin,
            neg_margin=self.neg_margin,
            power=self.power,
            reduction=self.reduction,
        )


def _keep_stats(loss_module, loss, stats):
    """The loss of a labelled call; with ``track_stats`` its logging dict is kept in ``last_stats``."""
    if stats is not None:
        loss_module.last_stats = stats
    return loss
