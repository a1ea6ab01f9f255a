"""Deprecated: moved to ``audiosiam.fewshot.classifier``. This module re-exports its names for one release."""

from typing import Any, Sequence

from ._deprecated import moved
from .fewshot.classifier import (
    EXPECTED_UNKNOWN,
    UNKNOWN,
    Decisions,
    FewShotClassifier,
)  # the names it had when it moved
from .models.embedding import EmbedFailure
from .models.estimator import AudioEmbedder

moved("audiosiam.classify", "audiosiam.fewshot.classifier")
__all__ = [
    "FewShotClassifier",
    "Decisions",
    "UNKNOWN",
    "EXPECTED_UNKNOWN",
    "AudioEmbedder",
    "EmbedFailure",
    "embed_inputs",
]


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
