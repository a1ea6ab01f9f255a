"""Feature and augmentation modules.

``LogMelSpectrogram`` builds its window and filterbank once, keeps them as buffers (so ``.to(device)``
moves them) and delegates to :mod:`audiosiam.functional`. Its :meth:`~LogMelSpectrogram.config` is
stored in model checkpoints so a checkpoint maps raw waveforms to embeddings with nothing to get wrong.

Augmentations act on waveforms (``(time,)`` or ``(batch, time)``) or on spectrograms (SpecAugment).
Each draws its randomness from the ``generator`` passed to ``forward`` (or torch's global one), so a
training run seeded per example is reproducible whatever the number of DataLoader workers.

A file per idea: ``frontend`` (:class:`LogMelSpectrogram`), ``waveform`` (one clip's augmentations),
``batch`` (mixing within a batch), ``spectrogram`` (SpecAugment), ``compose`` and ``draws`` (how settings
are drawn). Everything public is importable from ``audiosiam.transforms``.
"""

from __future__ import annotations

from .._deprecated import withdrawn_exports
from .batch import MixBatch
from .compose import Compose
from .frontend import LogMelSpectrogram
from .spectrogram import SpecAugment
from .waveform import (
    AddNoise,
    BandLimit,
    MixBackground,
    RandomEqualizer,
    RandomGain,
    Reverb,
    SpeedPerturb,
    TimeShift,
)

__all__ = [
    "LogMelSpectrogram",
    "Compose",
    "RandomGain",
    "AddNoise",
    "MixBackground",
    "TimeShift",
    "BandLimit",
    "SpeedPerturb",
    "Reverb",
    "RandomEqualizer",
    "MixBatch",
    "SpecAugment",
]

# Exported before 0.1.0, internal (or elsewhere) now: still found here for one release, with a warning.
__getattr__ = withdrawn_exports(
    __name__,
    {
        "synthetic_room_responses": "audiosiam.transforms.waveform",
    },
)
