"""Few-shot classification: enrol a few labelled clips per class, then label new clips or answer ``unknown``.

One room per idea:

* ``rules``: how similarities to enrolled clips become class scores (prototype, k-NN),
  and equal-error thresholds.
* ``gallery``: the enrolled embeddings, their search (FAISS for large galleries) and
  the ``.asg`` file.
* ``calibration``: the calibration map that turns class scores into probabilities over
  the classes and ``unknown`` (inference), and its adaptation to a gallery.
* ``fitting``: fitting that map once per model on validation episodes.
* ``classifier``: :class:`FewShotClassifier`, which puts them together.
"""

from .calibration import CalibrationMap, ClassStatistics, FeatureLimits
from .classifier import UNKNOWN, Decisions, FewShotClassifier
from .gallery import Gallery

__all__ = [
    "FewShotClassifier",
    "Decisions",
    "Gallery",
    "CalibrationMap",
    "UNKNOWN",
    "FeatureLimits",
    "ClassStatistics",
]
