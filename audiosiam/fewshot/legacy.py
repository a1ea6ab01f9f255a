"""The earlier rule, for models without a calibration map (checkpoints made before audiosiam had one): a
softmax temperature fitted leave-one-out on the enrolment clips, and ``unknown`` below the equal-error
threshold of their leave-one-out genuine and impostor scores (which needs a class with two clips). Its
``unknown`` column is 1 for a rejected query and 0 otherwise. Kept behind one path
(:class:`LegacyRule`, :func:`proba`) until such checkpoints are gone."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .gallery import Gallery
from .leave_one_out import legacy_scores
from .rules import equal_error_threshold

#: The temperature when no enrolment clip can be asked leave-one-out (one clip per class).
DEFAULT_TEMPERATURE = 0.05


def fit_temperature(scores: np.ndarray, targets: np.ndarray) -> float:
    """Temperature T minimising the negative log-likelihood of softmax(scores / T) at the true classes."""
    from scipy.optimize import minimize_scalar

    s = torch.as_tensor(scores, dtype=torch.float64)
    t = torch.as_tensor(targets, dtype=torch.long)

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(s / math.exp(log_t), t))

    result = minimize_scalar(nll, bounds=(math.log(1e-3), math.log(10.0)), method="bounded")
    return float(math.exp(result.x))


@dataclass(frozen=True)
class LegacyRule:
    """The earlier rule fitted on one gallery: its temperature, its threshold (``None``: no rejection) and the
    leave-one-out scores the threshold came from."""

    temperature: float
    threshold: float | None
    genuine: np.ndarray
    impostor: np.ndarray

    @classmethod
    def fit(cls, gallery: Gallery, rule: str, n_neighbors: int, reject) -> LegacyRule:
        """Fit on the enrolled clips, each asked without itself. ``reject``: ``"auto"`` (the equal-error
        threshold, with a warning when it cannot be placed), a fixed similarity, or ``None``."""
        genuine, impostor, scores, targets = legacy_scores(gallery, rule, n_neighbors)
        temperature = fit_temperature(scores, targets) if len(targets) else DEFAULT_TEMPERATURE
        threshold = None
        if reject == "auto":
            if len(genuine) and len(impostor):
                threshold = equal_error_threshold(genuine, impostor)
            else:
                warnings.warn(
                    "audiosiam: unknown rejection is off: calibrating it needs at least two classes and a class "
                    "with two or more clips; enrol more examples to get 'unknown' answers",
                    UserWarning,
                    stacklevel=5,
                )
        elif reject is not None:
            threshold = float(reject)
        return cls(temperature, threshold, genuine, impostor)


def class_proba(scores: torch.Tensor, temperature: float) -> np.ndarray:
    """(Q, C) a softmax of the scores at the fitted temperature, float64."""
    return torch.softmax(scores / temperature, dim=1).double().numpy()


def proba(scores: torch.Tensor, temperature: float, threshold: float | None, confidence: torch.Tensor) -> np.ndarray:
    """(Q, C) the softmax, or with a ``threshold`` (Q, C + 1): the softmax zeroed and an ``unknown`` column of 1
    where the confidence is below it."""
    closed = class_proba(scores, temperature)
    if threshold is None:
        return closed
    rejected = (confidence.numpy() < threshold)[:, None]
    return np.concatenate([np.where(rejected, 0.0, closed), rejected.astype(np.float64)], axis=1)
