"""Metric-learning losses for Siamese training: triplet (batch-hard, batch-all, semi-hard, explicit)
and contrastive, as functions and as modules; relational distillation from a teacher."""

from .._deprecated import withdrawn_exports
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

# Exported before 0.1.0, internal (or elsewhere) now: still found here for one release, with a warning.
__getattr__ = withdrawn_exports(
    __name__,
    {
        "MININGS": "audiosiam.losses.functional",
        "REDUCTIONS": "audiosiam.losses.functional",
    },
)
