"""Classification by example: enrol a few labelled clips per class, then label new clips.

Decision rules (``rule=``): ``"prototype"`` (default) or ``"knn"``, as defined once in
``audiosiam.fewshot.rules`` (which evaluation uses too).

Probabilities and ``unknown`` come from the model's calibration map (``audiosiam.fewshot.calibration``,
stored in its checkpoint, learnt on validation classes when the model was made): ``predict_proba`` gives
one column per enrolled class and, when rejection is on, an ``"unknown"`` column (``proba_columns_``);
rows sum to 1 and ``predict`` is their most probable column, so a query answered ``unknown`` never shows
a class more probable than unknown. The probabilities hold for the share of queries from classes never
enrolled that the user expects (``expected_unknown``, default ``EXPECTED_UNKNOWN``: most uses sort
recordings of the classes one enrolled, strangers a minority); ``target_false_accept`` instead sets the
criterion by the share of strangers that get a label. The enrolment clips adapt the map's log-odds
leave-one-out when there are enough of them (``adapt``). :meth:`FewShotClassifier.decide_embeddings`
scores the queries once into :class:`Decisions`, of which ``predict``, ``predict_proba`` and the CLI's
rows are views. A fixed
similarity threshold (``reject=0.6``) decides ``unknown`` by the similarity alone; the probabilities are
then still the map's.

A model without a map (checkpoints made before it existed) falls back, with a warning, to the earlier
rule: a softmax temperature fitted leave-one-out on the enrolment clips and ``unknown`` below the
equal-error threshold of their leave-one-out genuine and impostor scores (which needs a class with two
clips); its ``unknown`` column is then 1 for rejected queries and 0 otherwise.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin

from .._deprecated import renamed
from ..errors import GalleryError, ParameterError
from ..io.inputs import as_clips, describe_input
from ..models.info import model_info
from . import legacy
from .calibration import CalibrationMap, adapt_log_odds, class_statistics, prior_offset
from .decisions import UNKNOWN, Decisions
from .gallery import Gallery, model_fingerprint
from .leave_one_out import map_log_odds
from .rules import check_k, check_rule, check_threshold, knn_scores, prototype_scores

#: The default share of queries from classes never enrolled: the setting that keeps at least 85% of the right
#: answers on every validation domain and shot count and still beats never answering unknown at 20% strangers
#: (benchmarks/decisions.py; its table is in the README).
EXPECTED_UNKNOWN = 0.1
# the settings the calibration depends on: a change of any (set_params) re-calibrates at the next use
_CALIBRATION_SETTINGS = (
    "rule",
    "n_neighbors",
    "k",
    "reject",
    "expected_unknown",
    "target_false_accept",
    "adapt",
    "calibration",
)
_LEGACY = "legacy"


def _number(value, name: str) -> float:
    """A stored setting as a finite float, or ValueError (a JSON string, bool, NaN or infinity is damage)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}={value!r}: expected a finite number")
    return float(value)


def _labels(y, what: str = "y") -> list[str]:
    """Class labels as the strings a gallery stores: each a ``str`` or a whole number (``np.str_``, ``np.int64``
    too); ``None``, floats, bools and objects are refused, and so are two labels that would become one class
    (``1`` and ``"1"``)."""
    if y is None or isinstance(y, (str, bytes)):
        raise ParameterError(
            f"{what}: expected one label per clip (a list), got {'None' if y is None else type(y).__name__}"
        )
    try:
        y = list(y)
    except TypeError:
        raise ParameterError(f"{what}: expected one label per clip (a list), got {type(y).__name__}") from None
    names: dict[str, Any] = {}
    for label in y:
        if isinstance(label, (bool, np.bool_)) or not isinstance(label, (str, int, np.integer)):
            raise ParameterError(
                f"{what}: the label {label!r} is a {type(label).__name__}; labels are text or whole numbers"
            )
        first = names.setdefault(str(label), label)
        if isinstance(first, str) != isinstance(label, str):
            raise ParameterError(
                f"{what}: the labels {first!r} and {label!r} would both be the class {str(label)!r}; use one spelling"
            )
    return [str(label) for label in y]


class FewShotClassifier(ClassifierMixin, BaseEstimator):
    """Label audio clips by their similarity to a few enrolled examples per class.

    Args:
        model (EmbeddingModel, str or None, optional): the model that embeds enrolment clips and queries,
            or a preset name or checkpoint path; ``None``: the bundled default (:func:`audiosiam.load_model`).
            A name is loaded when first needed, into ``model_``; ``model`` itself is never changed.
            Default: ``None``.
        rule (str, optional): ``"prototype"`` (nearest class mean) or ``"knn"`` (see
            ``audiosiam.fewshot.rules``). Default: ``"prototype"``.
        n_neighbors (int, optional): neighbours for ``rule="knn"`` (capped at the gallery size); unused by
            ``"prototype"``. Default: ``5``.
        reject (str, float or None, optional): ``"auto"``: ``unknown`` by the calibration map (module
            docstring); a float is a fixed cosine-similarity threshold; ``None`` never answers unknown (and
            ``predict_proba`` has no unknown column). Default: ``"auto"``.
        expected_unknown (float, optional): with ``reject="auto"``, the share of queries the user expects
            from classes never enrolled, in (0, 1): the prior under which the probabilities hold and the most
            probable answer is given (module docstring). Default: ``EXPECTED_UNKNOWN`` (0.1).
        target_false_accept (float or None, optional): with ``reject="auto"``, answer ``unknown`` so that
            this share of the queries of classes never enrolled gets a label (estimated on the model's
            validation episodes at the gallery's number of shots); it then decides instead of
            ``expected_unknown``. ``None``: ``expected_unknown`` decides. Default: ``None``.
        adapt (bool, optional): let the enrolment clips shift the map's log-odds leave-one-out when there
            are ten or more of each kind of query (``audiosiam.fewshot.calibration.adapt_log_odds()``).
            Default: ``True``.
        calibration (dict, str or None, optional): the map: ``None`` takes the model's
            (``model.info["calibration"]``), a dict is a map as a checkpoint stores it (one per rule, or
            one map), ``"legacy"`` forces the earlier rule. Default: ``None``.
        k (int, optional): the old name of ``n_neighbors``, for one release. Default: ``None``.
        batch_size (int, optional): windows per forward pass when embedding. Default: ``64``.

    Settings changed with ``set_params`` after :meth:`fit` take effect at the next use: the classifier
    re-calibrates on the clips it enrolled (nothing is embedded again). ``set_params`` itself only sets, as
    scikit-learn's contract asks. A new ``model`` needs a new :meth:`fit`.

    Raises:
        ParameterError: (at :meth:`fit`) an unknown ``rule``, ``k < 1`` or an invalid ``reject``.

    Example:
        >>> clf = FewShotClassifier().fit(["bark1.wav", "bark2.wav", "bell1.wav", "bell2.wav"],
        ...                               ["dog", "dog", "bell", "bell"])
        >>> clf.predict(["mystery.wav"])
        array(['dog'], dtype=object)
    """

    def __init__(
        self,
        model=None,
        *,
        rule: str = "prototype",
        n_neighbors: int = 5,
        reject: str | float | None = "auto",
        expected_unknown: float = EXPECTED_UNKNOWN,
        target_false_accept: float | None = None,
        adapt: bool = True,
        calibration: dict | str | None = None,
        batch_size: int = 64,
        k: int | None = None,
    ):
        self.model = model
        self.rule = rule
        self.n_neighbors = n_neighbors
        self.k = k  # the old name of n_neighbors, for one release (read by _neighbors)
        self.reject = reject
        self.expected_unknown = expected_unknown
        self.target_false_accept = target_false_accept
        self.adapt = adapt
        self.calibration = calibration
        self.batch_size = batch_size

    # ------------------------------------------------------------------ set-up
    def _model(self):
        """The model ``model`` names (``model_``): itself, or the preset or checkpoint it names, loaded once;
        ``model`` itself is never changed (scikit-learn's contract)."""
        if not hasattr(self, "model_") or self._model_of_ is not self.model:
            from ..models import resolve_model

            self.model_, self._model_of_ = resolve_model(self.model), self.model
        return self.model_

    def _neighbors(self) -> int:
        """``n_neighbors``, or the deprecated ``k`` where one was given."""
        if self.k is None:
            return self.n_neighbors
        renamed("FewShotClassifier(k=...)", "n_neighbors=...", stacklevel=4)
        return self.k

    def _check_params(self) -> None:
        check_rule(self.rule, self._neighbors(), "k" if self.k is not None else "n_neighbors")
        if not (self.reject is None or self.reject == "auto" or isinstance(self.reject, (int, float))):
            raise ParameterError(f"reject={self.reject!r}: expected 'auto', a similarity threshold, or None")
        if isinstance(self.reject, (int, float)):
            check_threshold(self.reject, "reject")
        prior_offset(self.expected_unknown)  # raises on a share outside (0, 1)
        f = self.target_false_accept
        if f is not None and (isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.0 < f < 1.0):
            raise ParameterError(f"target_false_accept={f!r}: expected a rate in (0, 1), e.g. 0.05, or None")
        if not (self.calibration is None or self.calibration == _LEGACY or isinstance(self.calibration, dict)):
            raise ParameterError(f"calibration={self.calibration!r}: expected None, a stored map (dict) or 'legacy'")

    def _embed(self, X, *, sample_rate=None, on_error="raise", progress=False):
        return self._model().embed_all(
            as_clips(X, "X"), sample_rate=sample_rate, batch_size=self.batch_size, on_error=on_error, progress=progress
        )

    # ------------------------------------------------------------------ enrolment
    def fit(
        self,
        X: Sequence[Any],
        y: Sequence[Any],
        *,
        sample_rate: int | None = None,
        progress: bool = False,
        on_error: str = "raise",
    ) -> "FewShotClassifier":
        """Enrol clips ``X`` (paths or waveforms) with labels ``y``, replacing any earlier enrolment.

        Calibrates on the enrolled clips: the calibration map's leave-one-out adaptation, or the earlier
        rule's temperature and threshold for a model without a map (module docstring).

        Args:
            X (sequence of str, Path, Tensor or array): the clips: paths and/or 1-D waveforms.
            y (sequence): one label per clip (turned into ``str``); ``"unknown"`` is reserved.
            sample_rate (int or None, optional): rate of the waveforms among ``X`` (files carry their own);
                required when there are any. Default: ``None``.
            progress (bool, optional): a progress bar while embedding. Default: ``False``.
            on_error (str, optional): ``"raise"`` (the first unusable clip's error) or ``"skip"``: unusable
                clips are left out and listed in ``enrol_failures_``; an error only when no clip is left.
                Default: ``"raise"``.

        Returns:
            FewShotClassifier: ``self``.

        Raises:
            ParameterError: invalid settings, ``X`` and ``y`` of different lengths, no clips, or a label
                ``"unknown"``.
            GalleryError: none of the clips could be enrolled.
        """
        self._check_params()
        model = self._model()
        self.gallery_ = Gallery(model.embedding_dim, model_fingerprint(model))
        return self.add(X, y, sample_rate=sample_rate, progress=progress, on_error=on_error)

    def add(
        self,
        X: Sequence[Any],
        y: Sequence[Any],
        *,
        sample_rate: int | None = None,
        progress: bool = False,
        on_error: str = "raise",
    ) -> "FewShotClassifier":
        """Enrol more clips without embedding the earlier ones again, then re-calibrate (``on_error`` as
        :meth:`fit`). On a classifier not fitted yet, the same as :meth:`fit`.

        Args:
            X (sequence of str, Path, Tensor or array): the clips: paths and/or 1-D waveforms.
            y (sequence): one label per clip (turned into ``str``); ``"unknown"`` is reserved.
            sample_rate (int or None, optional): rate of the waveforms among ``X`` (files carry their own).
                Default: ``None``.
            progress (bool, optional): a progress bar while embedding. Default: ``False``.
            on_error (str, optional): ``"raise"`` or ``"skip"``, as in :meth:`fit`; the skipped clips of this
                call are in ``enrol_failures_``. Default: ``"raise"``.

        Returns:
            FewShotClassifier: ``self``.

        Raises:
            ParameterError: ``X`` and ``y`` of different lengths, no clips, or a label ``"unknown"``.
            GalleryError: none of the clips could be enrolled.
        """
        if not hasattr(self, "gallery_"):
            return self.fit(X, y, sample_rate=sample_rate, progress=progress, on_error=on_error)
        X, y = as_clips(X, "X", single=False), _labels(y)
        if len(X) != len(y):
            raise ParameterError(f"X and y: {len(X)} clips but {len(y)} labels")
        if len(X) == 0:
            raise ParameterError("X: no clips to enrol")
        embeddings, kept, self.enrol_failures_ = self._embed(
            X, sample_rate=sample_rate, progress=progress, on_error=on_error
        )
        if not kept:
            raise GalleryError(
                f"none of the {len(X)} clips could be enrolled; the first problem: {self.enrol_failures_[0].error}"
            )
        self.add_embeddings(embeddings, [y[i] for i in kept], sources=[describe_input(X[i]) for i in kept])
        return self

    def add_embeddings(
        self, embeddings: torch.Tensor, labels: Sequence[Any], sources: Sequence[str] | None = None
    ) -> "FewShotClassifier":
        """Enrol precomputed embeddings (from the same model), then re-calibrate.

        Args:
            embeddings (Tensor or array): (N, D) embeddings of this classifier's model (re-normalised here).
            labels (sequence): N labels (turned into ``str``); ``"unknown"`` is reserved.
            sources (sequence of str or None, optional): N descriptions of where each came from (file
                paths), listed by ``sources_``; ``None``: ``""`` for each. Default: ``None``.

        Returns:
            FewShotClassifier: ``self``.
        """
        self._check_params()
        if not hasattr(self, "gallery_"):
            model = self._model()
            self.gallery_ = Gallery(model.embedding_dim, model_fingerprint(model))
        labels = _labels(labels, "labels")
        if UNKNOWN in labels:
            raise ParameterError(f"y: {UNKNOWN!r} is reserved for rejected queries; rename that class")
        self.gallery_.add(embeddings, labels, sources)
        self._calibrate()
        return self

    @property
    def classes_(self) -> np.ndarray:
        """(C,) the enrolled classes, in the order of ``predict_proba``'s columns (dtype object)."""
        return np.asarray(self.gallery_.classes, dtype=object)

    def _calibration_map(self) -> CalibrationMap | None:
        """The map of this classifier's rule, or ``None`` (the earlier rule; warned once per model)."""
        stored = self.calibration
        if stored is None:
            stored = model_info(self._model()).calibration
        if stored == _LEGACY:
            return None
        if isinstance(stored, dict):
            entry = stored if "weights" in stored else stored.get(self.rule)
            if entry is not None:
                return CalibrationMap.from_dict(entry)
        model = self._model()
        if not getattr(model, "_audiosiam_warned_uncalibrated", False):
            warnings.warn(
                f"audiosiam: this model carries no calibration map for rule {self.rule!r} (a checkpoint made before "
                "audiosiam had one): probabilities and 'unknown' use the earlier rule fitted on the enrolment "
                "clips alone; fit a map with scripts/fit_calibration.py",
                UserWarning,
                stacklevel=4,
            )
            if model is not None:
                try:
                    model._audiosiam_warned_uncalibrated = True
                except AttributeError:  # a model that takes no attributes is warned every time
                    pass
        return None

    def _settings(self) -> dict:
        return {name: getattr(self, name) for name in _CALIBRATION_SETTINGS}

    def _calibrated(self) -> None:
        """Re-calibrate a fitted classifier whose settings changed since it was calibrated (``set_params``
        only sets them, as scikit-learn asks; the enrolled embeddings are reused, nothing is embedded)."""
        fitted = hasattr(self, "gallery_") and len(self.gallery_)
        if fitted and getattr(self, "_calibrated_with_", None) != self._settings():
            self._check_params()
            self._calibrate()

    def _calibrate(self) -> None:
        self._calibrated_with_ = self._settings()
        g = self.gallery_
        classes, codes = g.label_indices()
        self.stats_ = class_statistics(g.embeddings, codes, len(classes))
        self.calibration_ = self._calibration_map()
        self.adapt_scale_, self.adapt_offset_, self.unknown_offset_ = 1.0, 0.0, 0.0
        self.prior_offset_ = 0.0
        if self.calibration_ is None:
            self._calibrate_legacy()
            return
        self.temperature_ = None
        self.threshold_ = None if self.reject in (None, "auto") else float(self.reject)
        if self.adapt:
            known, unknown = map_log_odds(self.gallery_, self.rule, self._neighbors(), self.stats_, self.calibration_)
            self.adapt_scale_, self.adapt_offset_ = adapt_log_odds(known, unknown)
        if self.reject == "auto" and self.target_false_accept is not None:
            self.unknown_offset_ = self.calibration_.unknown_offset(self.target_false_accept, self.stats_.shots)
        else:
            self.prior_offset_ = prior_offset(self.expected_unknown)

    def _calibrate_legacy(self) -> None:
        fitted = legacy.LegacyRule.fit(self.gallery_, self.rule, self._neighbors(), self.reject)
        self.temperature_, self.threshold_ = fitted.temperature, fitted.threshold
        self.loo_genuine_, self.loo_impostor_ = fitted.genuine, fitted.impostor

    # ------------------------------------------------------------------ queries
    def _check_fitted(self) -> None:
        if not hasattr(self, "gallery_") or len(self.gallery_) == 0:
            raise GalleryError("this classifier has no enrolled clips: call fit(clips, labels) first")
        self._calibrated()

    def scores_embeddings(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class scores (Q, C) and the confidence (Q,) used for rejection, for precomputed query embeddings.

        Args:
            embeddings (Tensor or array): (Q, D) query embeddings (normalised here).

        Returns:
            (Tensor, Tensor): scores (Q, C), columns in ``classes_`` order, and confidence (Q,).
        """
        self._check_fitted()
        g = self.gallery_
        q = torch.nn.functional.normalize(torch.as_tensor(embeddings, dtype=torch.float32), dim=1)
        classes, codes = g.label_indices()
        if self.rule == "prototype":
            return prototype_scores(q, g.prototypes()[1])
        sims, idx = g.search(
            q, min(int(self._neighbors()), len(g))
        )  # FAISS for large galleries; the rule is decision's
        return knn_scores(sims, codes[idx], len(classes))

    @property
    def rejects_(self) -> bool:
        """Whether this classifier can answer ``"unknown"`` (and ``predict_proba`` has an unknown column)."""
        self._check_fitted()
        return self.reject is not None and (self.calibration_ is not None or self.threshold_ is not None)

    @property
    def proba_columns_(self) -> np.ndarray:
        """The columns of ``predict_proba``: ``classes_``, then ``"unknown"`` when :attr:`rejects_`."""
        return np.asarray(list(self.classes_) + ([UNKNOWN] if self.rejects_ else []), dtype=object)

    def decide_embeddings(self, embeddings: torch.Tensor) -> Decisions:
        """Score precomputed query embeddings once and decide: the answers, their probabilities and scores.

        With ``reject="auto"`` and a calibration map, each answer is the most probable column of the
        probabilities (``expected_unknown``'s prior, or ``target_false_accept``'s criterion); with a fixed
        threshold, ``"unknown"`` below it; with ``reject=None``, the most probable class.

        Args:
            embeddings (Tensor or array): (Q, D) query embeddings (normalised here).

        Returns:
            Decisions: the answers and everything shown beside them.
        """
        scores, confidence = self.scores_embeddings(embeddings)
        proba = self._proba(scores, confidence)
        if self.calibration_ is not None and self.reject == "auto":
            labels = self.proba_columns_[proba.argmax(1)]
        else:
            labels = self.classes_[scores.argmax(dim=1).numpy()]
            if self.reject is not None and self.threshold_ is not None:
                labels = np.where(confidence.numpy() < self.threshold_, UNKNOWN, labels).astype(object)
        labels = np.asarray(labels, dtype=object)
        return Decisions(self.classes_, scores.numpy(), proba, labels, self.rejects_, confidence.numpy())

    def predict_embeddings(self, embeddings: torch.Tensor) -> np.ndarray:
        """Labels for precomputed query embeddings (``"unknown"`` where rejected): :meth:`decide_embeddings`'
        ``labels``.

        Args:
            embeddings (Tensor or array): (Q, D) query embeddings (normalised here).

        Returns:
            numpy.ndarray: (Q,) labels, dtype object.
        """
        return self.decide_embeddings(embeddings).labels

    def _proba(self, scores: torch.Tensor, confidence: torch.Tensor | None = None) -> np.ndarray:
        if self.calibration_ is None:  # the earlier rule: a softmax, and a hard unknown column
            return legacy.proba(scores, self.temperature_, self.threshold_ if self.rejects_ else None, confidence)
        offset = self.adapt_offset_ + self.prior_offset_ - self.unknown_offset_
        proba = self.calibration_.proba(scores.numpy(), self.stats_, offset=offset, scale=self.adapt_scale_)
        if self.reject is None:
            return proba[:, :-1] / proba[:, :-1].sum(1, keepdims=True)  # P(class | known)
        return proba

    def predict_proba_embeddings(self, embeddings: torch.Tensor) -> np.ndarray:
        """Calibrated probabilities for precomputed query embeddings; columns follow ``proba_columns_``
        (``classes_``, then ``"unknown"`` when rejection is on). Rows sum to 1.

        Args:
            embeddings (Tensor or array): (Q, D) query embeddings (normalised here).

        Returns:
            numpy.ndarray: (Q, C) or (Q, C + 1) float64.
        """
        scores, confidence = self.scores_embeddings(embeddings)
        return self._proba(scores, confidence)

    def class_proba_embeddings(self, embeddings: torch.Tensor) -> np.ndarray:
        """P(class | the query is of an enrolled class), (Q, C) in ``classes_`` order: the closed-set part of
        the probabilities (what ``predict_proba`` gives with ``reject=None``).

        Args:
            embeddings (Tensor or array): (Q, D) query embeddings (normalised here).

        Returns:
            numpy.ndarray: (Q, C) float64, rows sum to 1.
        """
        scores, _ = self.scores_embeddings(embeddings)
        if self.calibration_ is None:
            return legacy.class_proba(scores, self.temperature_)
        proba = self.calibration_.proba(scores.numpy(), self.stats_)[:, :-1]
        return proba / proba.sum(1, keepdims=True)

    def same_probability(self, similarity) -> np.ndarray:
        """P(same) of clip pairs with these cosine similarities (:meth:`CalibrationMap.same_probability`, the
        map of this classifier's rule), as ``verify`` reports it.

        Args:
            similarity (float or array-like): (P,) cosine similarities.

        Returns:
            numpy.ndarray: (P,) probabilities; NaN for a model without a calibration map.
        """
        cal = self._calibration_map()
        if cal is None:
            return np.full(np.atleast_1d(np.asarray(similarity)).shape, math.nan)
        return cal.same_probability(similarity)

    def decision_function(self, X, *, sample_rate: int | None = None) -> np.ndarray:
        """Class scores (Q, C): cosine similarity to each prototype, or the k-NN vote.

        Args:
            X (str, Path, Tensor, array or a sequence of them): one clip or several (paths or 1-D waveforms).
            sample_rate (int or None, optional): rate of the waveforms among ``X``. Default: ``None``.

        Returns:
            numpy.ndarray: (Q, C) float32, columns in ``classes_`` order.
        """
        embeddings, _, _ = self._embed(X, sample_rate=sample_rate)
        return self.scores_embeddings(embeddings)[0].numpy()

    def predict(self, X, *, sample_rate: int | None = None) -> np.ndarray:
        """Labels for clips ``X`` (paths or waveforms); ``"unknown"`` where nothing enrolled is similar enough.

        Args:
            X (str, Path, Tensor, array or a sequence of them): one clip or several (paths or 1-D waveforms).
            sample_rate (int or None, optional): rate of the waveforms among ``X``. Default: ``None``.

        Returns:
            numpy.ndarray: (Q,) labels, dtype object.
        """
        embeddings, _, _ = self._embed(X, sample_rate=sample_rate)
        return self.predict_embeddings(embeddings)

    def predict_proba(self, X, *, sample_rate: int | None = None) -> np.ndarray:
        """Calibrated probabilities over the enrolled classes and ``"unknown"`` (``proba_columns_`` order).

        Args:
            X (str, Path, Tensor, array or a sequence of them): one clip or several (paths or 1-D waveforms).
            sample_rate (int or None, optional): rate of the waveforms among ``X``. Default: ``None``.

        Returns:
            numpy.ndarray: (Q, C + 1) with rejection on (the last column is unknown), else (Q, C); rows sum
            to 1 and ``predict`` is the most probable column.
        """
        embeddings, _, _ = self._embed(X, sample_rate=sample_rate)
        return self.predict_proba_embeddings(embeddings)

    def kneighbors(
        self,
        X,
        n_neighbors: int = 5,
        return_distance: bool = True,
        *,
        sample_rate: int | None = None,
        k: int | None = None,
    ):
        """The ``n_neighbors`` nearest enrolled clips of each query, as scikit-learn's ``kneighbors`` gives
        them: cosine distances (1 - cosine similarity, nearest first) and gallery indices.

        Args:
            X (str, Path, Tensor, array or a sequence of them): one clip or several (paths or 1-D waveforms).
            n_neighbors (int, optional): neighbours per query, capped at the gallery size. Default: ``5``.
            return_distance (bool, optional): return the distances with the indices. Default: ``True``.
            sample_rate (int or None, optional): rate of the waveforms among ``X``. Default: ``None``.
            k (int or None, optional): deprecated spelling of ``n_neighbors``. Default: ``None``.

        Returns:
            ``(distances (Q, n), indices (Q, n))``, or ``indices`` alone; ``labels_[indices]`` and
            ``sources_`` say what and where the neighbours are.
        """
        if k is not None:
            warnings.warn(
                "kneighbors(k=...) is now kneighbors(n_neighbors=...), and it returns (distances, indices) as "
                "scikit-learn's does; the labels are labels_[indices]",
                DeprecationWarning,
                stacklevel=2,
            )
            n_neighbors = k
        self._check_fitted()
        n_neighbors = check_k(n_neighbors, "n_neighbors")
        embeddings, _, _ = self._embed(X, sample_rate=sample_rate)
        sims, idx = self.gallery_.search(embeddings, min(n_neighbors, len(self.gallery_)))
        return (1.0 - sims.numpy(), idx.numpy()) if return_distance else idx.numpy()

    @property
    def labels_(self) -> np.ndarray:
        """The label of each enrolled clip, in gallery order (what :meth:`kneighbors`' indices point at)."""
        self._check_fitted()
        return np.asarray(self.gallery_.labels, dtype=object)

    @property
    def sources_(self) -> list[str]:
        """Where each enrolled clip came from (its path; empty when not given), in gallery order."""
        return list(self.gallery_.sources)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Save the gallery, the classifier's settings and its calibration (no audio is needed to load it
        back).

        Args:
            path (str or Path): the gallery file; ``.asg`` is appended if missing.

        Returns:
            Path: the file written.

        Raises:
            GalleryError: nothing enrolled, or the file cannot be written.
        """
        self._check_fitted()
        self.gallery_.meta = {
            "rule": self.rule,
            "k": int(self._neighbors()),  # the file's key, as galleries of every version spell it
            "reject": self.reject,
            "expected_unknown": self.expected_unknown,
            "target_false_accept": self.target_false_accept,
            "adapt": bool(self.adapt),
            "model": getattr(self._model(), "source", None),
            "calibration": {
                "version": 2,
                "threshold": self.threshold_,
                "temperature": self.temperature_,
                "adapt_scale": self.adapt_scale_,
                "adapt_offset": self.adapt_offset_,
                "unknown_offset": self.unknown_offset_,
            },
        }
        return self.gallery_.save(path)

    @classmethod
    def load(cls, path: str | os.PathLike, model=None) -> "FewShotClassifier":
        """Load a gallery saved by :meth:`save` (or by an earlier audiosiam: its stored threshold and
        temperature are kept when the model has no calibration map, else the map calibrates it).

        Args:
            path (str or Path): the ``.asg`` file.
            model (EmbeddingModel, str, Path or None, optional): the model to embed queries with (a preset
                name or checkpoint path is loaded); ``None`` loads the model the gallery was made with (a
                bundled preset or checkpoint path recorded in it). A different model is refused. Default:
                ``None``.

        Raises:
            GalleryError: the file is missing or damaged, or ``model`` is not the one that made it.
            CheckpointError: ``model`` is ``None`` and the recorded model cannot be loaded.
        """
        gallery = Gallery.load(path)
        meta = gallery.meta

        def damaged(what: str) -> GalleryError:
            return GalleryError(f"{path}: damaged classifier settings ({what}); enrol the clips again")

        if len(gallery) == 0:
            raise GalleryError(f"{path}: holds no enrolled clips; enrol some (`audiosiam enroll DIR --out {path}`)")
        if UNKNOWN in gallery.labels:
            raise damaged(f"a class is named {UNKNOWN!r}, which is reserved for rejected queries")
        recorded, adapt = meta.get("model"), meta.get("adapt", True)
        if not (recorded is None or isinstance(recorded, str)):
            raise damaged(f"model={recorded!r}: expected the name or path of the model that made it")
        if not isinstance(adapt, bool):
            raise damaged(f"adapt={adapt!r}: expected true or false")
        if model is None or isinstance(model, (str, os.PathLike)):  # a preset name or a checkpoint path
            from ..models import load_model

            model = load_model(recorded if model is None else model)
        elif not isinstance(model, torch.nn.Module) or not hasattr(model, "embed_all"):
            raise ParameterError(
                f"model={model!r}: expected an EmbeddingModel, a preset name, a checkpoint path, or None "
                "(the gallery's own)"
            )
        gallery.check_fingerprint(model_fingerprint(model), path)
        clf = cls(
            model,
            rule=meta.get("rule", "prototype"),
            n_neighbors=meta.get("k", 5),
            reject=meta.get("reject", "auto"),
            expected_unknown=meta.get("expected_unknown", EXPECTED_UNKNOWN),
            target_false_accept=meta.get("target_false_accept"),
            adapt=adapt,
        )
        try:
            clf._check_params()
        except ParameterError as exc:
            raise damaged(str(exc)) from None
        clf.gallery_ = gallery
        stored = meta.get("calibration")
        if not (stored is None or isinstance(stored, dict)):
            raise GalleryError(f"{path}: damaged calibration (not a JSON object); enrol the clips again")
        classes, codes = gallery.label_indices()
        clf.stats_ = class_statistics(gallery.embeddings, codes, len(classes))
        clf.calibration_ = clf._calibration_map()
        try:
            threshold = stored.get("threshold") if stored else None
            threshold = None if threshold is None else check_threshold(_number(threshold, "threshold"), "threshold")
            if clf.calibration_ is not None and stored and stored.get("version") == 2:
                clf.threshold_ = threshold
                clf.adapt_scale_ = _number(stored.get("adapt_scale", 1.0), "adapt_scale")
                clf.adapt_offset_ = _number(stored.get("adapt_offset", 0.0), "adapt_offset")
                clf.unknown_offset_ = _number(stored.get("unknown_offset", 0.0), "unknown_offset")
                by_target = clf.reject == "auto" and clf.target_false_accept is not None
                clf.prior_offset_ = 0.0 if by_target else prior_offset(clf.expected_unknown)
                clf.temperature_ = None
            elif clf.calibration_ is None and stored and stored.get("temperature") is not None:
                clf.threshold_, clf.temperature_ = threshold, _number(stored["temperature"], "temperature")
                if clf.temperature_ <= 0:
                    raise ValueError(f"temperature={clf.temperature_}: expected a positive number")
                clf.adapt_offset_ = clf.unknown_offset_ = clf.prior_offset_ = 0.0
                clf.adapt_scale_ = 1.0
            else:  # saved before the calibration was stored, or by the earlier rule for a model that now has a map
                clf._calibrate()
            clf._calibrated_with_ = clf._settings()
        except (TypeError, ValueError) as exc:
            raise GalleryError(f"{path}: damaged calibration ({exc}); enrol the clips again") from None
        return clf
