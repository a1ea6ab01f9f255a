"""Deprecated: moved to :mod:`audiosiam.fewshot.calibration`. This module re-exports its names for one release."""

import warnings

from .fewshot.calibration import *  # noqa: F403
from .fewshot.calibration import __all__ as _moved
from .fewshot.fitting import fit_calibration, open_set_episodes

warnings.warn(
    "audiosiam.calibration moved to audiosiam.fewshot.calibration"
    " (import from there; this alias goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
__all__ = [*_moved, "fit_calibration", "open_set_episodes"]
