"""Several augmentations as one, sharing the generator they are given (:class:`Compose`)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class Compose(nn.Module):
    """Apply augmentations in order, passing the same generator along.

    Args:
        transforms (Sequence[nn.Module]): each called as ``t(x, generator)``.
    """

    def __init__(self, transforms: Sequence[nn.Module]):
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Apply every transform in turn.

        Args:
            x (Tensor): the input of the first transform (a waveform or a spectrogram).
            generator (torch.Generator or None, optional): passed to every transform. Default: ``None``.

        Returns:
            Tensor: the output of the last transform.
        """
        for t in self.transforms:
            x = t(x, generator)
        return x
