"""Embeddings as a scikit-learn transformer, so an audiosiam model can feed any scikit-learn estimator.

It keeps scikit-learn's estimator contract (``tests/models/test_estimator.py`` runs ``check_estimator``):
the constructor only stores its arguments, :meth:`AudioEmbedder.fit` never changes them (the model it
uses is ``model_``), an unfitted transformer refuses to transform, and ``get_params`` / ``set_params`` /
``clone`` work as everywhere. What does not apply is said in its tags: its inputs are clips (paths or
waveforms of any length), not rows of a fixed number of features, and its output is always float32.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..errors import ParameterError
from ..io.inputs import as_clips


class AudioEmbedder(TransformerMixin, BaseEstimator):
    """scikit-learn transformer from clips (paths or waveforms) to embeddings, for use in a ``Pipeline``.

    Args:
        model (EmbeddingModel, str or None, optional): the model, or a preset name or checkpoint path to
            load at :meth:`fit`; ``None``: the bundled default. Default: ``None``.
        sample_rate (int or None, optional): rate of waveform inputs (paths carry their own); required when
            there are any. Default: ``None``.
        batch_size (int, optional): windows per forward pass. Default: ``64``.

    Attributes:
        model_ (EmbeddingModel): the model :meth:`fit` chose (``model`` itself when it is one).
        n_features_out_ (int): the embedding size.

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
        """Choose the model (load it when ``model`` is a name, a path or ``None``); nothing is learnt from the
        clips, which are only checked to be a non-empty sequence.

        Args:
            X (sequence): the clips (paths and/or 1-D waveforms).
            y (Any, optional): ignored. Default: ``None``.

        Returns:
            AudioEmbedder: ``self``.

        Raises:
            ParameterError: ``X`` is empty or not a sequence of clips.
        """
        _check_clips(X)
        from . import resolve_model

        self.model_ = resolve_model(self.model)
        self.n_features_out_ = self.model_.embedding_dim
        return self

    def transform(self, X) -> np.ndarray:
        """(N, D) float32 L2-normalised embeddings.

        Args:
            X (sequence of str, Path, Tensor or array): N clips: paths and/or 1-D waveforms at ``sample_rate``.

        Returns:
            numpy.ndarray: (N, D) float32.

        Raises:
            sklearn.exceptions.NotFittedError: :meth:`fit` was not called.
        """
        check_is_fitted(self, "model_")
        _check_clips(X)
        embeddings, _, _ = self.model_.embed_all(X, sample_rate=self.sample_rate, batch_size=self.batch_size)
        return embeddings.numpy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # clips of any length, not rows of features
        tags.input_tags.string = True  # paths
        tags.transformer_tags.preserves_dtype = []  # always float32
        return tags


def _check_clips(X) -> None:
    """Refuse what cannot be a sequence of clips before any model is loaded: a string (one path given bare),
    a scalar, or nothing (io.inputs' rule for an argument of clips)."""
    if not as_clips(X, "X", single=False):
        raise ParameterError("X: no clips (an empty sequence); pass at least one path or waveform")
