"""Classification by example: enrol a few labelled clips per class, then label new clips.

Decision rules (``rule=``): ``"prototype"`` (default) or ``"knn"``, as defined once in
:mod:`audiosiam.decision` (which evaluation uses too).

Unknown rejection is calibrated on the enrolment clips themselves, leave-one-out: every enrolled clip is
scored as a query against the gallery without it. Its similarity to its own class gives a "known"
score; its best similarity to any other class simulates a clip from a class nobody enrolled. The
threshold is the equal-error point of those two sets, so known clips are rejected about as often as
strangers are accepted. ``predict`` answers ``"unknown"`` below it.

``predict_proba`` is a softmax over the class scores at a temperature fitted (maximum likelihood) on the
same leave-one-out scores, so its probabilities are calibrated on this gallery rather than fixed.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin

from .decision import RULES, check_rule, check_threshold, equal_error_threshold, knn_scores, prototype_scores
from .errors import GalleryError, ParameterError
from .gallery import Gallery, model_fingerprint
from .models.embedding import EmbedFailure, describe_input

__all__ = ["FewShotClassifier", "AudioEmbedder", "embed_inputs", "UNKNOWN", "EmbedFailure"]

UNKNOWN = "unknown"
_RULES = RULES
_CALIBRATION_CLIPS = 2000


def embed_inputs(
    model,
    inputs: Sequence[Any],
    *,
    sample_rate: int | None = None,
    batch_size: int = 64,
    on_error: str = "raise",
    progress: bool = False,
):
    """``model.embed_all(...)``: kept as a name for existing code; see
    :meth:`audiosiam.models.EmbeddingModel.embed_all`.

    Args:
        model (EmbeddingModel): the model to embed with.
        inputs (sequence of str, Path, Tensor or array): paths and/or 1-D waveforms, in any mix.
        sample_rate (int or None, optional): rate of the waveforms among ``inputs`` (files carry their own);
            required when there are any. Default: ``None``.
        batch_size (int, optional): windows per forward pass. Default: ``64``.
        on_error (str, optional): ``"raise"`` (the first bad input's error) or ``"skip"`` (leave bad inputs
            out, each reported in ``failures``). Default: ``"raise"``.
        progress (bool, optional): a progress bar over the batches. Default: ``False``.

    Returns:
        :class:`~audiosiam.models.embedding.EmbeddingResult`: ``(embeddings, kept, failures)``, embeddings
        (K, D) L2-normalised float32 on the CPU.
    """
    return model.embed_all(inputs, sample_rate=sample_rate, batch_size=batch_size, on_error=on_error, progress=progress)


def _softmax(scores: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.softmax(scores / temperature, dim=1)


def _fit_temperature(scores: np.ndarray, targets: np.ndarray) -> float:
    """Temperature T minimising the negative log-likelihood of softmax(scores / T) at the true classes."""
    from scipy.optimize import minimize_scalar

    s = torch.as_tensor(scores, dtype=torch.float64)
    t = torch.as_tensor(targets, dtype=torch.long)

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(s / math.exp(log_t), t))

    result = minimize_scalar(nll, bounds=(math.log(1e-3), math.log(10.0)), method="bounded")
    return float(math.exp(result.x))


class FewShotClassifier(ClassifierMixin, BaseEstimator):
    """Label audio clips by their similarity to a few enrolled examples per class.

    Args:
        model (EmbeddingModel or None, optional): the model that embeds enrolment clips and queries;
            ``None`` loads the bundled default (:func:`audiosiam.load_model`) when first needed.
            Default: ``None``.
        rule (str, optional): ``"prototype"`` (nearest class mean) or ``"knn"`` (see
            :mod:`audiosiam.decision`). Default: ``"prototype"``.
        k (int, optional): neighbours for ``rule="knn"`` (capped at the gallery size); unused by
            ``"prototype"``. Default: ``5``.
        reject (str, float or None, optional): ``"auto"`` calibrates the unknown threshold leave-one-out on
            the enrolment clips; a float is a fixed cosine-similarity threshold; ``None`` never answers
            unknown. Default: ``"auto"``.
        batch_size (int, optional): windows per forward pass when embedding. Default: ``64``.

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
        k: int = 5,
        reject: str | float | None = "auto",
        batch_size: int = 64,
    ):
        self.model = model
        self.rule = rule
        self.k = k
        self.reject = reject
        self.batch_size = batch_size

    # ------------------------------------------------------------------ set-up
    def _model(self):
        if self.model is None:
            from .models import load_model

            self.model = load_model()
        return self.model

    def _check_params(self) -> None:
        check_rule(self.rule, self.k)
        if not (self.reject is None or self.reject == "auto" or isinstance(self.reject, (int, float))):
            raise ParameterError(f"reject={self.reject!r}: expected 'auto', a similarity threshold, or None")
        if isinstance(self.reject, (int, float)):
            check_threshold(self.reject, "reject")

    def _embed(self, X, *, sample_rate=None, on_error="raise", progress=False):
        if isinstance(X, (str, os.PathLike)) or (hasattr(X, "ndim") and X.ndim == 1):
            X = [X]  # one clip, not a sequence of characters or samples
        return self._model().embed_all(
            X, sample_rate=sample_rate, batch_size=self.batch_size, on_error=on_error, progress=progress
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

        Calibrates the unknown threshold and the probability temperature on the enrolled clips (module
        docstring).

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
        labels = [str(label) for label in labels]
        if UNKNOWN in labels:
            raise ParameterError(f"y: {UNKNOWN!r} is reserved for rejected queries; rename that class")
        self.gallery_.add(embeddings, labels, sources)
        self._calibrate()
        return self

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.gallery_.classes, dtype=object)

    def _calibrate(self) -> None:
        genuine, impostor, scores, targets = self._leave_one_out()
        self.temperature_ = _fit_temperature(scores, targets) if len(targets) else 0.05
        self.loo_genuine_, self.loo_impostor_ = genuine, impostor
        self.threshold_ = None
        if self.reject == "auto":
            if len(genuine) and len(impostor):
                self.threshold_ = equal_error_threshold(genuine, impostor)
            else:
                warnings.warn(
                    "audiosiam: unknown rejection is off: calibrating it needs at least two classes and a class "
                    "with two or more clips; enrol more examples to get 'unknown' answers",
                    UserWarning,
                    stacklevel=3,
                )
        elif self.reject is not None:
            self.threshold_ = float(self.reject)

    def _leave_one_out(self):
        """Scores of enrolled clips against the gallery without them (see the module docstring).

        At most ``_CALIBRATION_CLIPS`` clips (a seeded random subset) are scored, which bounds the cost
        on 100k-clip galleries and changes a threshold only by sampling noise.

        Returns:
            ``(genuine, impostor, scores, targets)``: own-class confidences of clips whose class has
            another member, best other-class confidences, and the class scores with true class indices
            used to fit the temperature.
        """
        g = self.gallery_
        classes, codes = g.label_indices()
        n, c = len(g), len(classes)
        generator = torch.Generator().manual_seed(0)
        sel = torch.randperm(n, generator=generator)[:_CALIBRATION_CLIPS].sort().values
        emb, ys = g.embeddings[sel], codes[sel]
        rows = torch.arange(len(sel))
        has_mate = torch.bincount(codes, minlength=c)[ys] >= 2
        if self.rule == "prototype":
            sums = torch.zeros(c, g.dim).index_add_(0, codes, g.embeddings)
            raw = emb @ sums.T
            norms = sums.norm(dim=1).expand(len(sel), c).clone()
            own_raw = raw[rows, ys]
            # The clip's own class without it: sum - e, whose norm follows from |e| = 1.
            norms[rows, ys] = (sums[ys].pow(2).sum(1) - 2 * own_raw + 1.0).clamp_min(0).sqrt()
            raw[rows, ys] = own_raw - 1.0
            scores = raw / norms.clamp_min(1e-12)
            own = scores[rows, ys]
            best_other = scores.index_put((rows, ys), torch.tensor(-math.inf)).max(dim=1).values
        else:
            k = min(int(self.k), n - 1)
            scores = torch.zeros(len(sel), c)
            if k >= 1:
                sims, idx = g.search(emb, k + 1)
                keep = idx != sel[:, None]
                keep[keep.all(dim=1), -1] = False  # self not among them (duplicates): drop the farthest
                sims, idx = sims[keep].view(-1, k), idx[keep].view(-1, k)
                scores.scatter_add_(1, codes[idx], sims / k)
            own, best_other = self._nearest_same_and_other(g, codes, sel)
        impostor = best_other[torch.isfinite(best_other)]
        return own[has_mate].numpy(), impostor.numpy(), scores[has_mate].numpy(), ys[has_mate].numpy()

    @staticmethod
    def _nearest_same_and_other(g: Gallery, codes: torch.Tensor, sel: torch.Tensor, block: int = 256):
        """For clips ``sel``: similarity of the nearest other clip of the same class and of another class."""
        own = torch.full((len(sel),), -math.inf)
        other = torch.full((len(sel),), -math.inf)
        for start in range(0, len(sel), block):
            part = sel[start : start + block]
            sims = g.embeddings[part] @ g.embeddings.T
            sims[torch.arange(len(part)), part] = -math.inf
            same = codes[part, None] == codes[None, :]
            own[start : start + block] = sims.masked_fill(~same, -math.inf).max(dim=1).values
            other[start : start + block] = sims.masked_fill(same, -math.inf).max(dim=1).values
        return own, other

    # ------------------------------------------------------------------ queries
    def _check_fitted(self) -> None:
        if not hasattr(self, "gallery_") or len(self.gallery_) == 0:
            raise GalleryError("this classifier has no enrolled clips: call fit(clips, labels) first")

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
        sims, idx = g.search(q, min(int(self.k), len(g)))  # FAISS for large galleries; the rule is decision's
        return knn_scores(sims, codes[idx], len(classes))

    def predict_embeddings(self, embeddings: torch.Tensor) -> np.ndarray:
        """Labels for precomputed query embeddings (``"unknown"`` where rejected).

        Args:
            embeddings (Tensor or array): (Q, D) query embeddings (normalised here).

        Returns:
            numpy.ndarray: (Q,) labels, dtype object.
        """
        scores, confidence = self.scores_embeddings(embeddings)
        labels = self.classes_[scores.argmax(dim=1).numpy()]
        if self.threshold_ is not None:
            labels = np.where(confidence.numpy() < self.threshold_, UNKNOWN, labels).astype(object)
        return labels

    def predict_proba_embeddings(self, embeddings: torch.Tensor) -> np.ndarray:
        """Calibrated class probabilities (Q, C) for precomputed query embeddings; columns follow ``classes_``.

        Args:
            embeddings (Tensor or array): (Q, D) query embeddings (normalised here).
        """
        scores, _ = self.scores_embeddings(embeddings)
        return _softmax(scores, self.temperature_).numpy()

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
        """Calibrated probabilities (Q, C) over the enrolled classes (``classes_`` order).

        Args:
            X (str, Path, Tensor, array or a sequence of them): one clip or several (paths or 1-D waveforms).
            sample_rate (int or None, optional): rate of the waveforms among ``X``. Default: ``None``.
        """
        embeddings, _, _ = self._embed(X, sample_rate=sample_rate)
        return self.predict_proba_embeddings(embeddings)

    def kneighbors(self, X, k: int = 5, *, sample_rate: int | None = None):
        """The ``k`` most similar enrolled clips of each query.

        Args:
            X (str, Path, Tensor, array or a sequence of them): one clip or several (paths or 1-D waveforms).
            k (int, optional): neighbours per query, capped at the gallery size. Default: ``5``.
            sample_rate (int or None, optional): rate of the waveforms among ``X``. Default: ``None``.

        Returns:
            ``(similarities (Q, k), indices (Q, k), labels (Q, k) of str)``; ``sources_`` maps indices to files.
        """
        self._check_fitted()
        embeddings, _, _ = self._embed(X, sample_rate=sample_rate)
        sims, idx = self.gallery_.search(embeddings, min(int(k), len(self.gallery_)))
        labels = np.asarray(self.gallery_.labels, dtype=object)[idx.numpy()]
        return sims.numpy(), idx.numpy(), labels

    @property
    def sources_(self) -> list[str]:
        return list(self.gallery_.sources)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Save the gallery, the classifier's settings and its calibration (no audio is needed to load it
        back, and loading does not calibrate again).

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
            "k": int(self.k),
            "reject": self.reject,
            "model": getattr(self._model(), "source", None),
            "calibration": {"threshold": self.threshold_, "temperature": self.temperature_},
        }
        return self.gallery_.save(path)

    @classmethod
    def load(cls, path: str | os.PathLike, model=None) -> "FewShotClassifier":
        """Load a gallery saved by :meth:`save`.

        Args:
            path (str or Path): the ``.asg`` file.
            model (EmbeddingModel or None, optional): the model to embed queries with; ``None`` loads the
                model the gallery was made with (a bundled preset or checkpoint path recorded in it). A
                different model is refused. Default: ``None``.

        Raises:
            GalleryError: the file is missing or damaged, or ``model`` is not the one that made it.
            CheckpointError: ``model`` is ``None`` and the recorded model cannot be loaded.
        """
        gallery = Gallery.load(path)
        meta = gallery.meta
        if model is None:
            from .models import load_model

            model = load_model(meta.get("model"))
        gallery.check_fingerprint(model_fingerprint(model), path)
        clf = cls(model, rule=meta.get("rule", "prototype"), k=meta.get("k", 5), reject=meta.get("reject", "auto"))
        try:
            clf._check_params()
        except ParameterError as exc:
            raise GalleryError(f"{path}: damaged classifier settings ({exc}); enrol the clips again") from None
        clf.gallery_ = gallery
        stored = meta.get("calibration")
        if isinstance(stored, dict) and isinstance(stored.get("temperature"), (int, float)):
            clf.threshold_, clf.temperature_ = stored.get("threshold"), float(stored["temperature"])
        else:  # galleries saved before the calibration was stored
            clf._calibrate()
        return clf

    def set_params(self, **params):
        """scikit-learn's ``set_params``; a change of rule, k or rejection re-calibrates a fitted classifier.

        Args:
            **params (Any): constructor parameters by name (``model``, ``rule``, ``k``, ``reject``,
                ``batch_size``).

        Returns:
            FewShotClassifier: ``self``.
        """
        changed = any(key in ("rule", "k", "reject") and getattr(self, key) != value for key, value in params.items())
        super().set_params(**params)
        if changed and hasattr(self, "gallery_") and len(self.gallery_):
            self._check_params()
            self._calibrate()
        return self


class AudioEmbedder(TransformerMixin, BaseEstimator):
    """scikit-learn transformer from clips (paths or waveforms) to embeddings, for use in a ``Pipeline``.

    Args:
        model (EmbeddingModel or None, optional): the model; ``None`` loads the bundled default at
            :meth:`fit`. Default: ``None``.
        sample_rate (int or None, optional): rate of waveform inputs (paths carry their own); required when
            there are any. Default: ``None``.
        batch_size (int, optional): windows per forward pass. Default: ``64``.

    Example:
        >>> from sklearn.pipeline import make_pipeline
        >>> from sklearn.svm import SVC
        >>> pipe = make_pipeline(AudioEmbedder(), SVC()).fit(train_paths, train_labels)
    """

    def __init__(self, model=None, *, sample_rate: int | None = None, batch_size: int = 64):
        self.model = model
        self.sample_rate = sample_rate
        self.batch_size = batch_size

    def fit(self, X, y=None):
        """Load the default model if none was given; nothing is learnt from the data.

        Args:
            X (sequence): ignored (scikit-learn API).
            y (Any, optional): ignored. Default: ``None``.

        Returns:
            AudioEmbedder: ``self``.
        """
        if self.model is None:
            from .models import load_model

            self.model = load_model()
        self.n_features_out_ = self.model.embedding_dim
        return self

    def transform(self, X) -> np.ndarray:
        """(N, D) float32 L2-normalised embeddings.

        Args:
            X (sequence of str, Path, Tensor or array): N clips: paths and/or 1-D waveforms at ``sample_rate``.

        Returns:
            numpy.ndarray: (N, D) float32.
        """
        if not hasattr(self, "n_features_out_"):
            self.fit(X)
        embeddings, _, _ = embed_inputs(self.model, X, sample_rate=self.sample_rate, batch_size=self.batch_size)
        return embeddings.numpy()
