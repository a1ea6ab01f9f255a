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

__all__ = ["WaveformCache"]

CACHE_VERSION = 1  # bump when the decoding pipeline changes what a cached waveform holds


class WaveformCache:
    """Folder of ``.npy`` waveforms keyed by (path, size, mtime, sample_rate)."""

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
        key = self._key(path, sample_rate)
        if key is None or not key.is_file():
            return None
        try:
            return torch.from_numpy(np.load(key, allow_pickle=False))
        except (OSError, ValueError):
            return None  # damaged entry: decode again and overwrite it

    def put(self, path: str, sample_rate: int, waveform: torch.Tensor) -> None:
        key = self._key(path, sample_rate)
        if key is None:
            return
        key.parent.mkdir(parents=True, exist_ok=True)
        tmp = key.with_name(f"{key.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, waveform.numpy().astype(np.float32, copy=False))
        os.replace(tmp, key)
