"""Metric-learning losses for Siamese training: triplet (batch-hard, batch-all, semi-hard, explicit)
and contrastive, as functions and as modules; relational distillation from a teacher."""

from .distillation import relational_distillation_loss
from .functional import (
    MININGS,
    REDUCTIONS,
    contrastive_loss,
    contrastive_pair_loss,
    triplet_loss,
    triplet_margin_loss,
)
from .modules import ContrastiveLoss, TripletLoss

__all__ = [
    "MININGS",
    "REDUCTIONS",
    "ContrastiveLoss",
    "TripletLoss",
    "contrastive_loss",
    "contrastive_pair_loss",
    "relational_distillation_loss",
    "triplet_loss",
    "triplet_margin_loss",
]
