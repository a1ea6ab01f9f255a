"""Deprecated: moved to ``audiosiam.fewshot.rules``. This module re-exports its names for one release."""

from ._deprecated import moved
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

moved("audiosiam.decision", "audiosiam.fewshot.rules")
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
