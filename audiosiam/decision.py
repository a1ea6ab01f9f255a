"""Deprecated: moved to :mod:`audiosiam.fewshot.rules`. This module re-exports its names for one release."""

import warnings

from .fewshot.rules import *  # noqa: F403
from .fewshot.rules import __all__ as _moved

warnings.warn(
    "audiosiam.decision moved to audiosiam.fewshot.rules (import from there; this alias goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
__all__ = [*_moved]
