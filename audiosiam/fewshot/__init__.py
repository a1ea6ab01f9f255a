"""Few-shot classification: enrol a few labelled clips per class, then label new clips or answer ``unknown``.

One room per idea:

* :mod:`~audiosiam.fewshot.rules`: how similarities to enrolled clips become class scores (prototype, k-NN),
  and equal-error thresholds.
* :mod:`~audiosiam.fewshot.gallery`: the enrolled embeddings, their search (FAISS for large galleries) and
  the ``.asg`` file.
* :mod:`~audiosiam.fewshot.calibration`: the calibration map that turns class scores into probabilities over
  the classes and ``unknown`` (inference), and its adaptation to a gallery.
* :mod:`~audiosiam.fewshot.fitting`: fitting that map once per model on validation episodes.
* :mod:`~audiosiam.fewshot.classifier`: :class:`FewShotClassifier`, which puts them together.
"""

from .calibration import CalibrationMap
from .classifier import UNKNOWN, FewShotClassifier
from .gallery import Gallery

__all__ = ["FewShotClassifier", "Gallery", "CalibrationMap", "UNKNOWN"]
