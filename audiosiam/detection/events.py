"""Sound events and their scoring against a ground truth, with the DCASE few-shot detection rule.

A detection matches a true event when both have the same file and label and their intersection over
union (IoU) in time is at least ``min_iou`` (0.3 in DCASE 2022-2024 task 5). Matching is one to one: the
largest possible number of detections is paired with true events (a bipartite matching, not a greedy
one, so a detection that overlaps two true events cannot take the one another detection needed), and
among the matchings of that size the one with the highest total IoU. Unpaired detections are false
positives, unpaired true events false negatives.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ..errors import ParameterError


@dataclass(frozen=True)
class Event:
    """One occurrence of a sound.

    Attributes:
        file (str): the recording it is in.
        label (str): what sound it is.
        start (float): its onset, seconds from the start of the recording.
        end (float): its offset in seconds; ``end > start``.
        score (float): how sure the detector was (1.0 for a true event). Default: ``1.0``.
    """

    file: str
    label: str
    start: float
    end: float
    score: float = 1.0

    def __post_init__(self):
        if not (np.isfinite(self.start) and np.isfinite(self.end)) or self.end <= self.start or self.start < 0:
            raise ParameterError(
                f"event {self.label!r} in {self.file}: start={self.start}, end={self.end}; expected "
                "0 <= start < end, both finite"
            )


def _iou(a: Event, b: Event) -> float:
    overlap = min(a.end, b.end) - max(a.start, b.start)
    if overlap <= 0:
        return 0.0
    return overlap / (max(a.end, b.end) - min(a.start, b.start))


def match_events(
    detected: Sequence[Event], truth: Sequence[Event], *, min_iou: float = 0.3
) -> list[tuple[int, int, float]]:
    """The one-to-one matching of detections to true events (see the module docstring).

    Args:
        detected (Sequence[Event]): the detector's events.
        truth (Sequence[Event]): the true events.
        min_iou (float, optional): the smallest IoU that counts as a match, in (0, 1]. Default: ``0.3``.

    Returns:
        list[tuple[int, int, float]]: ``(detected index, truth index, IoU)`` for every matched pair.

    Raises:
        ParameterError: ``min_iou`` outside (0, 1].
    """
    from scipy.optimize import linear_sum_assignment

    if not 0 < min_iou <= 1:
        raise ParameterError(f"min_iou={min_iou}: expected a value in (0, 1]")
    groups: dict[tuple[str, str], tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    for i, e in enumerate(detected):
        groups[(e.file, e.label)][0].append(i)
    for j, e in enumerate(truth):
        groups[(e.file, e.label)][1].append(j)
    pairs = []
    for det_idx, true_idx in groups.values():
        if not det_idx or not true_idx:
            continue
        iou = np.array([[_iou(detected[i], truth[j]) for j in true_idx] for i in det_idx])
        eligible = iou >= min_iou - 1e-12  # a match at exactly the bound counts, despite rounding
        # Maximise the number of pairs first, total IoU second: each eligible pair is worth 1 + IoU / (n + 1),
        # so no IoU gain can outweigh one more pair.
        worth = np.where(eligible, 1.0 + iou / (min(iou.shape) + 1), 0.0)
        rows, cols = linear_sum_assignment(-worth)
        pairs += [(det_idx[r], true_idx[c], float(iou[r, c])) for r, c in zip(rows, cols) if eligible[r, c]]
    return sorted(pairs)


def _prf(tp: int, fp: int, fn: int) -> dict:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f_measure": f, "tp": tp, "fp": fp, "fn": fn}


def score_events(detected: Iterable[Event], truth: Iterable[Event], *, min_iou: float = 0.3) -> dict:
    """Event-based precision, recall and F-measure of detections against the ground truth.

    Args:
        detected (Iterable[Event]): the detector's events (any files and labels).
        truth (Iterable[Event]): the true events.
        min_iou (float, optional): the smallest IoU that counts as a match. Default: ``0.3`` (DCASE).

    Returns:
        dict: ``precision``, ``recall``, ``f_measure`` (0 where undefined), ``tp``, ``fp``, ``fn`` over all
        events, and ``per_label``: the same per label.
    """
    detected, truth = list(detected), list(truth)
    matched = match_events(detected, truth, min_iou=min_iou)
    hit_det = {i for i, _, _ in matched}
    hit_true = {j for _, j, _ in matched}
    labels = sorted({e.label for e in detected} | {e.label for e in truth})
    per_label = {}
    for label in labels:
        tp = sum(1 for i in hit_det if detected[i].label == label)
        fp = sum(1 for i, e in enumerate(detected) if e.label == label and i not in hit_det)
        fn = sum(1 for j, e in enumerate(truth) if e.label == label and j not in hit_true)
        per_label[label] = _prf(tp, fp, fn)
    return {**_prf(len(matched), len(detected) - len(matched), len(truth) - len(matched)), "per_label": per_label}
