"""A batch of answers, scored once: the labels, probabilities, scores and confidence of every query, of
which :meth:`FewShotClassifier.predict`, ``predict_proba``, the CLI's rows and the HTML report are views."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: The answer, and the last probability column, for a query from no enrolled class.
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Decisions:
    """The classifier's answers for a batch of queries, computed once: every view (``predict``,
    ``predict_proba``, the CLI's table, the HTML report) reads these arrays.

    Attributes:
        classes (numpy.ndarray): (C,) the enrolled classes, the columns of ``scores``.
        scores (numpy.ndarray): (Q, C) class scores (cosine to the prototype, or the k-NN vote).
        proba (numpy.ndarray): (Q, C + 1) probabilities with ``unknown`` last when ``rejects``, else (Q, C).
        labels (numpy.ndarray): (Q,) the answers (a class or ``"unknown"``), dtype object.
        rejects (bool): whether ``unknown`` can be answered (``proba`` has its column).
        confidence (numpy.ndarray): (Q,) the rule's confidence (what a fixed threshold compares).
    """

    classes: np.ndarray
    scores: np.ndarray
    proba: np.ndarray
    labels: np.ndarray
    rejects: bool
    confidence: np.ndarray

    @property
    def p_unknown(self) -> np.ndarray:
        """(Q,) P(unknown); NaN where rejection is off."""
        return self.proba[:, -1] if self.rejects else np.full(len(self.labels), math.nan)

    @property
    def ranked(self) -> np.ndarray:
        """(Q, C) class indices from the most to the least probable (ties by score)."""
        closed = self.proba[:, : len(self.classes)]
        return np.lexsort((-self.scores, -closed), axis=1) if closed.size else np.empty(closed.shape, np.int64)

    def rows(self, names: Sequence[str], *, all_probabilities: bool = False) -> list[dict]:
        """One dict per query: ``file``, ``label``, ``prob`` (of the label), ``closest`` (the most probable
        class) and ``p_closest``, ``p_unknown`` (``None`` when rejection is off), ``score`` (of the closest
        class), ``runner_up``, ``p_runner_up`` and ``runner_up_score`` (``None`` with one class); with
        ``all_probabilities``, a ``p:<class>`` entry per class.

        Args:
            names (Sequence[str]): (Q,) what each query is (its file).
            all_probabilities (bool, optional): add every class's probability. Default: ``False``.

        Returns:
            list[dict]: the rows, in query order.
        """
        ranked, c = self.ranked, len(self.classes)
        column = {str(name): j for j, name in enumerate(self.classes)}
        if self.rejects:
            column[UNKNOWN] = self.proba.shape[1] - 1
        out = []
        for i, name in enumerate(names):
            best = int(ranked[i, 0])
            second = int(ranked[i, 1]) if c > 1 else None
            label = str(self.labels[i])
            row = {
                "file": name,
                "label": label,
                "prob": float(self.proba[i, column[label]]),
                "closest": str(self.classes[best]),
                "p_closest": float(self.proba[i, best]),
                "p_unknown": float(self.proba[i, -1]) if self.rejects else None,
                "score": float(self.scores[i, best]),
                "runner_up": None if second is None else str(self.classes[second]),
                "p_runner_up": None if second is None else float(self.proba[i, second]),
                "runner_up_score": None if second is None else float(self.scores[i, second]),
            }
            if all_probabilities:
                row.update({f"p:{name_}": float(self.proba[i, j]) for j, name_ in enumerate(self.classes)})
            out.append(row)
        return out
