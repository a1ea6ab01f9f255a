"""Decision rules: how similarities to enrolled clips become class scores, a confidence and a threshold.

The one place these rules live. Classification (:class:`~audiosiam.fewshot.FewShotClassifier`, the
``classify`` and ``enroll`` commands) and evaluation (:func:`~audiosiam.evaluation.few_shot_accuracy`,
``evaluate``) both call it, so what ``evaluate --rule knn`` measures is what ``classify --rule knn`` runs.

* ``"prototype"``: a class's score is the cosine similarity between the query and the class prototype,
  the normalised mean of its enrolled embeddings (Snell et al., 2017); the confidence is the best score.
* ``"knn"``: the query's ``k`` nearest enrolled clips vote with their similarities: a class's score is
  the summed similarity of its clips among them divided by ``k`` (so one clip at 0.90 outweighs two at
  0.30; a plain count would not). The confidence is the similarity of the nearest clip of the winner.
* Thresholds: :func:`equal_error_threshold` places a threshold between "genuine" and "impostor" scores
  where the share of genuine scores below it equals the share of impostors at or above it.

All inputs are L2-normalised embeddings (rows), similarities are cosines.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ..errors import ParameterError

#: The decision rules (``rule=``): the nearest class prototype, or a vote of the k nearest clips.
RULES = ("prototype", "knn")


#: More neighbours than this is a typing slip, not a setting: votes over 10,000 clips are the class sizes.
MAX_K = 10_000


def check_k(k, name: str = "k") -> int:
    """``k`` (neighbours of the ``"knn"`` rule) as an int, or ParameterError.

    Args:
        k (int): an integer from 1 to :data:`MAX_K`; not a float (2.5, 3.0, NaN), a string or a bool.
        name (str, optional): how the caller calls it, for the message. Default: ``"k"``.

    Returns:
        int: ``k``.

    Raises:
        ParameterError: not an integer, below 1 or above :data:`MAX_K`.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ParameterError(f"{name}={k!r}: expected a whole number of neighbours, e.g. 5")
    if not 1 <= k <= MAX_K:
        raise ParameterError(f"{name}={k}: expected between 1 and {MAX_K:,} neighbours")
    return int(k)


def check_rule(rule: str, k: int = 1, name: str = "k") -> None:
    """Raise ParameterError unless ``rule`` is one of :data:`RULES` and ``k`` passes ``check_k``.

    Args:
        rule (str): ``"prototype"`` or ``"knn"``.
        k (int, optional): the number of neighbours of ``"knn"`` (checked whatever the rule). Default: ``1``.
        name (str, optional): how the caller calls ``k``, for the message. Default: ``"k"``.

    Raises:
        ParameterError: ``rule`` is unknown, or ``k`` is not an integer from 1 to :data:`MAX_K`.
    """
    if rule not in RULES:
        raise ParameterError(f"rule={rule!r}: expected one of {RULES}")
    check_k(k, name)


def check_threshold(value, name: str = "threshold") -> float:
    """A similarity threshold as a float, or ParameterError: cosine similarities lie in [-1, 1], so a
    threshold outside that range (or NaN) would silently accept or reject everything.

    Args:
        value (float): the threshold.
        name (str, optional): how the caller calls it, for the message. Default: ``"threshold"``.

    Returns:
        float: ``value``.

    Raises:
        ParameterError: not a number, NaN, or outside [-1, 1].
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name}={value!r}: expected a cosine-similarity threshold, a number in [-1, 1]") from None
    if isinstance(value, bool) or not -1.0 <= number <= 1.0:  # NaN fails both comparisons
        raise ParameterError(
            f"{name}={value!r}: a cosine similarity lies in [-1, 1], so this threshold would "
            f"{'accept' if number < -1 else 'reject'} everything; pick one in [-1, 1] (0.5-0.8 is typical)"
        )
    return number


def prototypes(embeddings: torch.Tensor, codes: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(C, D) normalised class means of (N, D) ``embeddings`` whose class indices are ``codes`` (N,).

    Args:
        embeddings (Tensor): (N, D) L2-normalised rows, on the CPU.
        codes (Tensor): (N,) int64 class index of each row, in ``[0, n_classes)``.
        n_classes (int): C; a class without rows gets a zero prototype (similarity 0 to every query).

    Returns:
        Tensor: (C, D) unit prototypes, of the embeddings' dtype.
    """
    sums = torch.zeros(n_classes, embeddings.shape[1], dtype=embeddings.dtype).index_add_(0, codes, embeddings)
    return torch.nn.functional.normalize(sums, dim=1)


def prototype_scores(queries: torch.Tensor, protos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores (Q, C) = cosine to each prototype, and the confidence (Q,) = the best of them.

    Args:
        queries (Tensor): (Q, D) L2-normalised rows.
        protos (Tensor): (C, D) unit prototypes, from :func:`prototypes`.

    Returns:
        ``(scores (Q, C), confidence (Q,))``.
    """
    scores = queries @ protos.T
    return scores, scores.max(dim=1).values


def knn_scores(
    sims: torch.Tensor, neighbour_codes: torch.Tensor, n_classes: int, k: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores (Q, C) from each query's nearest enrolled clips, and the confidence (Q,).

    Args:
        sims (Tensor): (Q, k) similarities of each query's k nearest enrolled clips, on the CPU.
        neighbour_codes (Tensor): (Q, k) int64 class indices of those clips, in ``[0, n_classes)``.
        n_classes (int): C.
        k (int or None, optional): the divisor, so scores stay comparable when fewer clips exist;
            ``None`` means ``sims.shape[1]``. Default: ``None``.

    Returns:
        ``(scores (Q, C), confidence (Q,))``: the confidence is the similarity of the nearest clip of the
        winning class.
    """
    k = sims.shape[1] if k is None else int(k)
    scores = torch.zeros(sims.shape[0], n_classes, dtype=sims.dtype).scatter_add_(1, neighbour_codes, sims / k)
    winner = scores.argmax(dim=1, keepdim=True)
    confidence = sims.masked_fill(neighbour_codes != winner, -math.inf).max(dim=1).values
    return scores, confidence


def class_scores(
    queries: torch.Tensor,
    support: torch.Tensor,
    support_codes: torch.Tensor,
    n_classes: int,
    *,
    rule: str = "prototype",
    k: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores (Q, C) and confidences (Q,) of ``queries`` against a small enrolled set, by ``rule``.

    For large galleries :class:`~audiosiam.fewshot.gallery.Gallery` searches the neighbours (FAISS) and calls
    :func:`knn_scores` itself; the rule is the same.

    Args:
        queries (Tensor): (Q, D) L2-normalised rows, on the CPU.
        support (Tensor): (S, D) L2-normalised enrolled rows, on the CPU.
        support_codes (Tensor): (S,) int64 class index of each enrolled row, in ``[0, n_classes)``.
        n_classes (int): C.
        rule (str, optional): ``"prototype"`` or ``"knn"``. Default: ``"prototype"``.
        k (int, optional): neighbours of ``"knn"``; when ``k > S``, all S clips vote and the divisor is S.
            Default: ``1``.

    Returns:
        ``(scores (Q, C), confidence (Q,))``.

    Raises:
        ParameterError: ``rule`` is unknown or ``k < 1``.
    """
    check_rule(rule, k)
    if rule == "prototype":
        return prototype_scores(queries, prototypes(support, support_codes, n_classes))
    sims = queries @ support.T
    top = sims.topk(min(int(k), sims.shape[1]), dim=1)
    return knn_scores(top.values, support_codes[top.indices], n_classes, k=min(int(k), sims.shape[1]))


def equal_error_threshold(genuine: Sequence[float], impostor: Sequence[float]) -> float:
    """The threshold where the share of genuine scores below it equals the share of impostors at or above
    it; placed halfway between two neighbouring scores, so the clip that set it is not a coin toss.

    Args:
        genuine (Sequence[float]): scores of same-class trials (higher means more alike).
        impostor (Sequence[float]): scores of different-class trials.

    Returns:
        float: the threshold; accepting means ``score >= threshold``.

    Raises:
        ParameterError: either list is empty.
    """
    return equal_error_rate(genuine, impostor)[1]


def equal_error_rate(genuine: Sequence[float], impostor: Sequence[float]) -> tuple[float, float]:
    """``(eer, threshold)``: the equal error rate (mean of the false-reject and false-accept rates where they
    meet) and its threshold (:func:`equal_error_threshold`). Accepting means ``score >= threshold``.

    Args:
        genuine (Sequence[float]): scores of same-class trials (higher means more alike).
        impostor (Sequence[float]): scores of different-class trials.

    Returns:
        ``(eer, threshold)``, two floats; the EER lies in [0, 1].

    Raises:
        ParameterError: either list is empty.
    """
    genuine, impostor = np.sort(np.asarray(genuine, dtype=np.float64)), np.sort(np.asarray(impostor, dtype=np.float64))
    if len(genuine) == 0 or len(impostor) == 0:
        raise ParameterError("an equal-error threshold needs both genuine and impostor scores")
    candidates = np.unique(np.concatenate([genuine, impostor]))
    frr = np.searchsorted(genuine, candidates, side="left") / len(genuine)
    far = 1.0 - np.searchsorted(impostor, candidates, side="left") / len(impostor)
    best = int(np.argmin(np.abs(frr - far)))
    lower = candidates[best - 1] if best > 0 else candidates[best] - 1e-3
    return float((frr[best] + far[best]) / 2), float((lower + candidates[best]) / 2)
