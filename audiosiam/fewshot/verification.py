"""Verification: are two clips the same class (sound, word or voice)? One threshold per model.

A model with a calibration map answers "same" when P(same) >= 1/2
(:meth:`~audiosiam.fewshot.calibration.CalibrationMap.same_probability`: the second clip asked against a class
enrolled with the first alone), so the answer and its probability never disagree, and its verification
threshold is the similarity where P(same) crosses 1/2
(:meth:`~audiosiam.fewshot.calibration.CalibrationMap.same_threshold`): what ``info`` prints, ``verify``
decides by and ``evaluate`` scores. A model without a map (checkpoints made before maps existed) has the
equal-error threshold stored when it was trained.
"""

from __future__ import annotations

import numpy as np

from ..errors import CheckpointError
from ..models.info import model_info
from .calibration import CalibrationMap


def verification_map(model) -> CalibrationMap | None:
    """The calibration map verification uses (the prototype rule's; with one clip per class both rules give
    the same score), or ``None`` for a model without one.

    Args:
        model (EmbeddingModel): the model.

    Returns:
        CalibrationMap or None: the map.

    Raises:
        CheckpointError: the stored map is damaged.
    """
    stored = model_info(model).calibration
    if not isinstance(stored, dict):
        return None
    entry = stored if "weights" in stored else stored.get("prototype")
    return CalibrationMap.from_dict(entry) if isinstance(entry, dict) else None


def verification_threshold(model) -> float | None:
    """The model's one verification threshold: where P(same) crosses 1/2, or the stored equal-error
    threshold of a model without a map; ``None`` when it has neither.

    Args:
        model (EmbeddingModel): the model.

    Returns:
        float or None: a cosine similarity in [-1, 1].

    Raises:
        CheckpointError: the stored map or threshold is damaged.
    """
    cal = verification_map(model)
    if cal is not None:
        return cal.same_threshold()
    try:
        return model_info(model).verification_threshold
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None


def same_probability(model, similarity) -> np.ndarray | None:
    """P(same) of pairs with these similarities under the model's map, or ``None`` without a map.

    Args:
        model (EmbeddingModel): the model.
        similarity (float or array-like): (P,) cosine similarities.

    Returns:
        numpy.ndarray or None: (P,) probabilities.
    """
    cal = verification_map(model)
    return None if cal is None else cal.same_probability(similarity)
