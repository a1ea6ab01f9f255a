"""An opt-in on-disk cache of decoded, resampled waveforms.

Decoding and resampling cost more than the log-mel itself, so repeated epochs read float32 arrays
instead. An entry is keyed by the file's absolute path, size and modification time and by the target
sample rate: change the file or the setting and the entry is simply not found (and rewritten).
Writes are atomic (temporary file + rename), so an interrupted run never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

CACHE_VERSION = 1  # bump when the decoding pipeline changes what a cached waveform holds


class WaveformCache:
    """Folder of ``.npy`` waveforms keyed by (path, size, mtime, sample_rate).

    Args:
        folder (str or os.PathLike): where the entries live (created if missing); entries are spread over
            sub-folders named by the first two hex digits of their key.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _key(self, path: str, sample_rate: int) -> Path | None:
        try:
            stat = os.stat(path)
        except OSError:
            return None
        raw = f"{CACHE_VERSION}|{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}|{sample_rate}"
        digest = hashlib.sha1(raw.encode()).hexdigest()
        return self.folder / digest[:2] / f"{digest}.npy"

    def get(self, path: str, sample_rate: int) -> torch.Tensor | None:
        """The cached waveform of ``path`` at ``sample_rate``, or ``None`` when there is none.

        Args:
            path (str): the audio file the waveform was decoded from.
            sample_rate (int): the sample rate the waveform was resampled to.

        Returns:
            Tensor or None: the waveform as stored by :meth:`put` (float32), or ``None`` when the file is
            gone, has changed (size or modification time), was never cached at this rate, or the entry is
            damaged (it is then decoded again and overwritten).
        """
        key = self._key(path, sample_rate)
        if key is None or not key.is_file():
            return None
        try:
            return torch.from_numpy(np.load(key, allow_pickle=False))
        except (OSError, ValueError):
            return None  # damaged entry: decode again and overwrite it

    def put(self, path: str, sample_rate: int, waveform: torch.Tensor) -> None:
        """Store ``waveform`` as the decoded form of ``path`` at ``sample_rate``.

        The entry is written to a temporary file and renamed, so an interrupted run never leaves a
        half-written one. Nothing is stored when ``path`` cannot be stat'ed.

        Args:
            path (str): the audio file ``waveform`` was decoded from.
            sample_rate (int): the sample rate ``waveform`` is at.
            waveform (Tensor): the decoded samples, any shape (CPU); stored as float32.
        """
        key = self._key(path, sample_rate)
        if key is None:
            return
        key.parent.mkdir(parents=True, exist_ok=True)
        tmp = key.with_name(f"{key.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, waveform.numpy().astype(np.float32, copy=False))
        os.replace(tmp, key)
