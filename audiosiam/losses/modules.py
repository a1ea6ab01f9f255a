"""``nn.Module`` forms of the losses: configure once, call on every batch."""

from __future__ import annotations

import torch
from torch import nn

from .functional import contrastive_loss, contrastive_pair_loss, triplet_loss, triplet_margin_loss

__all__ = ["TripletLoss", "ContrastiveLoss"]


class TripletLoss(nn.Module):
    """Triplet loss with online mining; see :func:`audiosiam.losses.triplet_loss` for every option.

    Call as ``loss(embeddings, labels)`` for a labelled batch, or ``loss.triplets(anchor, positive,
    negative)`` for explicit triplets. With ``track_stats=True``, after each labelled call ``last_stats``
    holds the logging dict (active fraction, mean distances); it is off by default because reading those
    numbers back is a device synchronisation per step on a GPU.

    Example:
        >>> criterion = TripletLoss(margin=0.2, mining="batch_hard")
        >>> criterion(model(waves), labels).backward()
    """

    def __init__(
        self,
        *,
        margin: float = 0.2,
        mining: str = "batch_hard",
        distance: str = "euclidean",
        squared: bool = False,
        soft_margin: bool = False,
        reduction: str = "mean",
        track_stats: bool = False,
    ):
        super().__init__()
        self.margin, self.mining, self.distance = margin, mining, distance
        self.squared, self.soft_margin, self.reduction = squared, soft_margin, reduction
        self.track_stats = track_stats
        self.last_stats: dict = {}

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = triplet_loss(
            embeddings,
            labels,
            margin=self.margin,
            mining=self.mining,
            distance=self.distance,
            squared=self.squared,
            soft_margin=self.soft_margin,
            reduction=self.reduction,
            return_stats=self.track_stats,
        )
        if not self.track_stats:
            return out
        loss, self.last_stats = out
        return loss

    def triplets(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        return triplet_margin_loss(
            anchor,
            positive,
            negative,
            margin=self.margin,
            distance=self.distance,
            squared=self.squared,
            soft_margin=self.soft_margin,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return (
            f"margin={self.margin}, mining={self.mining!r}, distance={self.distance!r}, squared={self.squared}, "
            f"soft_margin={self.soft_margin}, reduction={self.reduction!r}"
        )


class ContrastiveLoss(nn.Module):
    """Contrastive loss over all pairs of a labelled batch (``loss(embeddings, labels)``) or over given
    pairs (``loss.pairs(a, b, same)``); see :func:`audiosiam.losses.contrastive_loss`. ``track_stats`` as
    for :class:`TripletLoss`."""

    def __init__(
        self,
        *,
        pos_margin: float = 0.0,
        neg_margin: float = 1.0,
        power: int = 2,
        distance: str = "euclidean",
        reduction: str = "mean",
        track_stats: bool = False,
    ):
        super().__init__()
        self.pos_margin, self.neg_margin, self.power = pos_margin, neg_margin, power
        self.distance, self.reduction, self.track_stats = distance, reduction, track_stats
        self.last_stats: dict = {}

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = contrastive_loss(
            embeddings,
            labels,
            pos_margin=self.pos_margin,
            neg_margin=self.neg_margin,
            power=self.power,
            distance=self.distance,
            reduction=self.reduction,
            return_stats=self.track_stats,
        )
        if not self.track_stats:
            return out
        loss, self.last_stats = out
        return loss

    def pairs(self, a: torch.Tensor, b: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        from ..ops import paired_distance

        metric = "cosine" if self.distance == "cosine" else "euclidean"
        return contrastive_pair_loss(
            paired_distance(a, b, metric=metric),
            same,
            pos_margin=self.pos_margin,
            neg_margin=self.neg_margin,
            power=self.power,
            reduction=self.reduction,
        )
