"""Teacher embeddings on disk, computed once per clip and keyed by the file's content.

Distillation (``audiosiam train --teacher``) needs the teacher's embedding of every clip it applies to; the
teacher (aiSFX: 44.1 kHz, a 4.7M-parameter CNN) is ~20x slower than the student, so computing them in the
training loop would cost most of a run. An entry is keyed by the sha256 of the file's bytes (a file moved
or copied keeps its entry; a file changed in place gets a new one) under a folder named by the teacher's
identity (its architecture, front end, length policy and the bytes of its weights), so a different teacher
never reads another's entries. Entries are ``.npy`` files written atomically: a killed run, or two ranks of
a DDP run writing at once, leaves whole entries or none. Rebuild the whole cache with
``python scripts/teacher_cache.py RECIPE --rebuild``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..files import atomic_write
from .locations import teacher_cache

CACHE_VERSION = 1  # bump when what an entry holds changes


def teacher_identity(model) -> str:
    """16 hex digits naming a teacher by everything that decides its embeddings.

    Args:
        model (EmbeddingModel): the teacher.

    Returns:
        str: a digest of its architecture, front-end config, encoder config, length policy and weights.
    """
    from ..models.checkpoint_file import architecture_of

    digest = hashlib.sha256()
    described = {
        "version": CACHE_VERSION,
        "architecture": architecture_of(model),
        "frontend": model.frontend.config(),
        "encoder": model.encoder.config.to_dict(),
        "policy": model.policy(),
    }
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _content_key(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class TeacherCache:
    """The embeddings of one teacher, one ``.npy`` per distinct file content, in the sub-folder
    ``self.folder`` of ``folder`` that the teacher's identity names.

    Args:
        teacher (EmbeddingModel): the teacher model (in eval mode while embedding).
        folder (str, os.PathLike or None, optional): the cache's root; the teacher's entries go to a
            sub-folder named by ``teacher_identity()``. ``None``: ``teacher_cache()``.
            Default: ``None``.

    Attributes:
        computed (int): entries the last :meth:`embeddings` call computed (the rest were read).
    """

    def __init__(self, teacher, folder: str | os.PathLike | None = None):
        self.teacher = teacher
        self.folder = Path(folder if folder is not None else teacher_cache()) / teacher_identity(teacher)
        self.computed = 0

    def _entry(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npy"

    def _read(self, key: str) -> torch.Tensor | None:
        entry = self._entry(key)
        try:
            return torch.from_numpy(np.load(entry, allow_pickle=False))
        except (OSError, ValueError):  # missing, or damaged: computed again and overwritten
            return None

    def embeddings(self, paths: Sequence[str], *, batch_size: int = 16, progress: bool = False) -> torch.Tensor:
        """The teacher's embedding of every file, read from the cache or computed and stored.

        Args:
            paths (Sequence[str]): audio files (repeats allowed; each distinct content is embedded once).
            batch_size (int, optional): files embedded per call of the teacher. Default: ``16``.
            progress (bool, optional): a progress bar over the files to compute. Default: ``False``.

        Returns:
            Tensor: (len(paths), D) float32, rows L2-normalised, in the order of ``paths``.

        Raises:
            AudioLoadError: a file the teacher cannot read (training reads the same files first, and
                leaves out the ones it cannot).
        """
        key_of = {path: _content_key(path) for path in dict.fromkeys(paths)}  # each file read once
        keys = [key_of[p] for p in paths]
        found: dict[str, torch.Tensor] = {}
        missing: dict[str, str] = {}
        for path, key in zip(paths, keys):
            if key in found or key in missing:
                continue
            row = self._read(key)
            if row is None:
                missing[key] = path
            else:
                found[key] = row
        todo = list(missing.items())
        batches = range(0, len(todo), batch_size)
        if progress and todo:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="teacher embeddings", unit="batch", leave=False)
        for start in batches:
            part = todo[start : start + batch_size]
            rows = self.teacher.embed([path for _, path in part])
            for (key, _), row in zip(part, rows):
                atomic_write(self._entry(key), lambda tmp, row=row: np.save(tmp, row.numpy().astype(np.float32)))
                found[key] = row
        self.computed = len(todo)
        if not paths:
            return torch.zeros(0, self.teacher.embedding_dim)
        return torch.stack([found[key] for key in keys]).float()

    def clear(self) -> None:
        """Delete this teacher's entries (the next :meth:`embeddings` computes them again)."""
        shutil.rmtree(self.folder, ignore_errors=True)
