"""Deprecated: moved to ``audiosiam.fewshot.calibration``. This module re-exports its names for one release."""

from ._deprecated import moved
from .fewshot.calibration import (  # the names it had when it moved
    FEATURES,
    CalibrationMap,
    ClassStatistics,
    FeatureLimits,
    adapt_log_odds,
    class_statistics,
    decision_features,
    prior_offset,
)
from .fewshot.fitting import fit_calibration, open_set_episodes

moved("audiosiam.calibration", "audiosiam.fewshot.calibration")
__all__ = [
    "FEATURES",
    "ClassStatistics",
    "FeatureLimits",
    "CalibrationMap",
    "class_statistics",
    "decision_features",
    "adapt_log_odds",
    "prior_offset",
    "fit_calibration",
    "open_set_episodes",
]
