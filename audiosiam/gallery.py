"""Deprecated: moved to :mod:`audiosiam.fewshot.gallery`. This module re-exports its names for one release."""

import warnings

from .fewshot.gallery import (  # the names it had when it moved
    FORMAT_VERSION,
    Gallery,
    gallery_path,
    model_fingerprint,
)

warnings.warn(
    "audiosiam.gallery moved to audiosiam.fewshot.gallery (import from there; this alias goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
__all__ = ["Gallery", "gallery_path", "model_fingerprint", "FORMAT_VERSION"]
