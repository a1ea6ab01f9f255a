"""The twin (Siamese) network: one encoder, shared weights, applied to two or three inputs."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ParameterError


class SiameseNetwork(nn.Module):
    """Applies one embedding model to every input, so all branches share the same weights.

    Args:
        encoder (torch.nn.Module): maps a batch of inputs to L2-normalised embeddings (an ``EmbeddingModel``).

    ``forward(a, b)`` returns the cosine similarity per pair (B,); ``forward(a, p, n)`` returns the three
    embeddings for a triplet loss. The inputs are encoded in one batched call, which both shares weights
    by construction and keeps batch-norm statistics common to the branches.
    """

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings of one batch.

        Args:
            x (Tensor): a batch the encoder takes, e.g. waveforms (B, time) for an ``EmbeddingModel``.

        Returns:
            Tensor: (B, D) L2-normalised embeddings.
        """
        return self.encoder(x)

    def forward(self, *inputs: torch.Tensor):
        """Encode a pair or a triplet of batches in one call.

        Args:
            *inputs (Tensor): two or three batches of equal size B, each as :meth:`embed` takes.

        Returns:
            Tensor or tuple of Tensor: for a pair, the cosine similarity per pair (B,); for a triplet, the
            three (B, D) embeddings.

        Raises:
            ParameterError: not two or three inputs, or batches of different sizes.
        """
        if len(inputs) not in (2, 3):
            raise ParameterError(f"SiameseNetwork takes a pair or a triplet of batches, got {len(inputs)} inputs")
        sizes = [x.shape[0] for x in inputs]
        if len(set(sizes)) != 1:
            raise ParameterError(f"inputs: batches must have equal sizes, got {sizes}")
        embeddings = self.encoder(torch.cat(inputs)).split(sizes[0])
        if len(inputs) == 2:
            return (embeddings[0] * embeddings[1]).sum(dim=1)
        return embeddings

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Euclidean distance between the unit embeddings of each pair (B,): sqrt(2 - 2 cos).

        Args:
            a (Tensor): the first batch of the pairs.
            b (Tensor): the second, of the same size B.

        Returns:
            Tensor: (B,) distances in [0, 2].
        """
        return (2.0 - 2.0 * self(a, b)).clamp_min(0).sqrt()
