"""Augmentation across a batch: another class's clip of the same batch mixed in (:class:`MixBatch`)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import ParameterError
from .draws import check_probability, check_range, mix_at_snr, uniform


class MixBatch(nn.Module):
    """Mix into each clip, with probability ``p``, another clip of the batch from a *different* class at an
    SNR drawn from ``snr_db``: a second sound in the scene that the embedding should learn to look past.

    Acts on a (batch, time) batch with its labels; the dominant clip keeps its label.

    Args:
        snr_db (tuple of float, optional): (low, high) range of the SNR of the clip over the one mixed in,
            in dB. Default: ``(5.0, 20.0)``.
        p (float, optional): probability of mixing into each clip, in [0, 1]. Default: ``0.3``.
    """

    def __init__(self, snr_db: Sequence[float] = (5.0, 20.0), p: float = 0.3):
        super().__init__()
        self.snr_db = check_range("snr_db", snr_db)
        self.p = check_probability(p)

    def forward(
        self, waves: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Mix into each clip, with probability ``p``, a clip of another class.

        Args:
            waves (Tensor): (batch, time) float.
            labels (Tensor): (batch,) class of each clip; a clip with no clip of another class in the batch
                is left as it is.
            generator (torch.Generator or None, optional): source of every random draw; ``None`` uses
                torch's global one. Default: ``None``.

        Returns:
            Tensor: a new (batch, time) tensor (the input is left untouched).

        Raises:
            ParameterError: ``waves`` is not (batch, time) or ``labels`` not (batch,).
        """
        if waves.ndim != 2 or waves.shape[0] != labels.shape[0]:
            raise ParameterError(
                f"MixBatch: expected (batch, time) waves and (batch,) labels, got "
                f"{tuple(waves.shape)} and {tuple(labels.shape)}"
            )
        out = waves.clone()
        apply = torch.rand(waves.shape[0], generator=generator) < self.p
        for i in torch.nonzero(apply).flatten().tolist():
            others = torch.nonzero(labels != labels[i]).flatten()
            if len(others) == 0:
                continue
            j = int(others[int(torch.randint(len(others), (1,), generator=generator))])
            out[i] = mix_at_snr(waves[i], waves[j], float(uniform(*self.snr_db, (), generator)))
        return out
