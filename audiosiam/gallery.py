"""Deprecated: moved to :mod:`audiosiam.fewshot.gallery`. This module re-exports its names for one release."""

import warnings

from .fewshot.gallery import *  # noqa: F403
from .fewshot.gallery import __all__ as _moved

warnings.warn(
    "audiosiam.gallery moved to audiosiam.fewshot.gallery (import from there; this alias goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
__all__ = [*_moved]
