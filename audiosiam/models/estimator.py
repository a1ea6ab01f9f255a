"""Embeddings as a scikit-learn transformer, so an audiosiam model can feed any scikit-learn estimator."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

__all__ = ["AudioEmbedder"]


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
            from . import load_model

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
        embeddings, _, _ = self.model.embed_all(X, sample_rate=self.sample_rate, batch_size=self.batch_size)
        return embeddings.numpy()
