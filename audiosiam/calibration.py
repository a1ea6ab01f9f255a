"""Deprecated: moved to :mod:`audiosiam.fewshot.calibration`. This module re-exports its names for one release."""

import warnings

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

warnings.warn(
    "audiosiam.calibration moved to audiosiam.fewshot.calibration"
    " (import from there; this alias goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
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
