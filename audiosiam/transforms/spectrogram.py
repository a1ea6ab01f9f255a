"""Augmentation of spectrograms: time and frequency masks (:class:`SpecAugment`)."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ParameterError
from .draws import check_probability


class SpecAugment(nn.Module):
    """SpecAugment masking (Park et al., 2019) on (..., n_mels, frames): masked cells take the mean value.

    Args:
        time_masks (int, optional): number of time masks. Default: ``2``.
        time_width (int, optional): maximum width of a time mask, in frames (each drawn uniformly from 0 to
            this). Default: ``20``.
        freq_masks (int, optional): number of frequency masks. Default: ``2``.
        freq_width (int, optional): maximum width of a frequency mask, in bands. Default: ``8``.
        p (float, optional): probability of masking each example, in [0, 1]. Default: ``1.0``.

    Raises:
        ParameterError: a count or width is negative, or ``p`` is outside [0, 1].
    """

    def __init__(
        self, *, time_masks: int = 2, time_width: int = 20, freq_masks: int = 2, freq_width: int = 8, p: float = 1.0
    ):
        super().__init__()
        if min(time_masks, time_width, freq_masks, freq_width) < 0:
            raise ParameterError("SpecAugment: mask counts and widths must be >= 0")
        self.time_masks, self.time_width = time_masks, time_width
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.p = check_probability(p)

    def forward(self, spec: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mask each example, independently, with probability ``p``.

        Args:
            spec (Tensor): (..., n_mels, frames) float; each (n_mels, frames) slice is an example.
            generator (torch.Generator or None, optional): source of every random draw; ``None`` uses
                torch's global one. Default: ``None``.

        Returns:
            Tensor: a new tensor of the input's shape; masked cells hold their example's mean before masking.
        """
        rows = spec.reshape(-1, spec.shape[-2], spec.shape[-1]).clone()
        n_mels, frames = rows.shape[-2:]
        for i in range(rows.shape[0]):
            if float(torch.rand((), generator=generator)) >= self.p:
                continue
            fill = rows[i].mean()
            for count, width, size, axis in (
                (self.time_masks, self.time_width, frames, 1),
                (self.freq_masks, self.freq_width, n_mels, 0),
            ):
                for _ in range(count):
                    w = int(torch.randint(0, min(width, size) + 1, (1,), generator=generator))
                    start = int(torch.randint(0, size - w + 1, (1,), generator=generator))
                    if axis == 1:
                        rows[i, :, start : start + w] = fill
                    else:
                        rows[i, start : start + w, :] = fill
        return rows.reshape(spec.shape)
