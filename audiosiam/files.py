"""Writing files so that a failure never leaves a half-written one, and two writers never collide.

:func:`atomic_write` is the one way audiosiam writes its outputs (checkpoints, training state,
galleries, embeddings): the content goes to a temporary file of its own in the same folder (named by
process and a random part, so two processes saving one path never share it), which then replaces the
target in one ``os.replace``. On any failure the temporary file is removed and the old target is intact.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file, then move it onto ``path``; returns ``path``.

    Raises whatever ``write`` or the file system raises (``OSError`` for an unwritable place); callers
    turn that into their own error naming the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
