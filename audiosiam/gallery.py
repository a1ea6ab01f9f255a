"""Deprecated: moved to ``audiosiam.fewshot.gallery``. This module re-exports its names for one release."""

from ._deprecated import moved
from .fewshot.gallery import (  # the names it had when it moved
    FORMAT_VERSION,
    Gallery,
    gallery_path,
    model_fingerprint,
)

moved("audiosiam.gallery", "audiosiam.fewshot.gallery")
__all__ = ["Gallery", "gallery_path", "model_fingerprint", "FORMAT_VERSION"]
