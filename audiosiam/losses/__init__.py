"""Metric-learning losses for Siamese training: triplet (batch-hard, batch-all, semi-hard, explicit)
and contrastive, as functions and as modules; relational distillation from a teacher."""

from .distillation import relational_distillation_loss
from .functional import (
    contrastive_loss,
    contrastive_pair_loss,
    triplet_loss,
    triplet_margin_loss,
)
from .modules import ContrastiveLoss, TripletLoss

__all__ = [
    "ContrastiveLoss",
    "TripletLoss",
    "contrastive_loss",
    "triplet_loss",
    "contrastive_pair_loss",
    "triplet_margin_loss",
    "relational_distillation_loss",
]
