"""Deprecated: moved to :mod:`audiosiam.fewshot.rules`. This module re-exports its names for one release."""

import warnings

from .fewshot.rules import (  # the names it had when it moved
    MAX_K,
    RULES,
    check_k,
    check_rule,
    check_threshold,
    class_scores,
    equal_error_rate,
    equal_error_threshold,
    knn_scores,
    prototype_scores,
    prototypes,
)

warnings.warn(
    "audiosiam.decision moved to audiosiam.fewshot.rules (import from there; this alias goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
__all__ = [
    "RULES",
    "MAX_K",
    "check_k",
    "check_rule",
    "check_threshold",
    "prototypes",
    "prototype_scores",
    "knn_scores",
    "class_scores",
    "equal_error_threshold",
    "equal_error_rate",
]
