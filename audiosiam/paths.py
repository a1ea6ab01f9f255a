"""What is at a path, in words, and whether a command may write there: the checks every reader and writer
makes before it starts (a folder where a file should be, a pipe or device, a link loop, a read-only place),
so that a bad path fails at once with the path and the reason, never after minutes of work."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import ParameterError


def refuse_folders(*paths: str | os.PathLike | None) -> None:
    """Refuse output paths that name an existing folder or a place that cannot be written, before a command
    does its work (rather than after minutes of embedding, or by quietly writing ``<folder>.npy`` beside it).
    ``None`` is skipped.

    Args:
        *paths (str, os.PathLike or None): the files a command is about to write.

    Raises:
        ParameterError: one of them is a folder, or cannot be written (``refuse_unwritable``).
    """
    for path in paths:
        if path is not None and Path(path).is_dir():
            raise ParameterError(f"{path}: is a folder; give a file name to write")
        if path is not None:
            refuse_unwritable(Path(path).parent, path)


def refuse_unwritable(folder: str | os.PathLike, path: str | os.PathLike | None = None) -> None:
    """Refuse a folder that files cannot be written into (or made in): its nearest existing part is a file, on
    a read-only file system, or not writable by us. What ``mkdir`` and ``open`` would say after the work,
    said before it.

    Args:
        folder (str or os.PathLike): the folder to write into; it may not exist yet.
        path (str, os.PathLike or None, optional): the output the message names. Default: ``None`` (``folder``).

    Raises:
        ParameterError: the folder cannot be written, with why and what to do.
    """
    why = _unwritable(Path(folder))
    if why is not None:
        raise ParameterError(f"{path if path is not None else folder}: cannot be written ({why}); choose another place")


def _unwritable(folder: Path) -> str | None:
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if os.access(existing, os.W_OK | os.X_OK):
        return None
    try:
        if os.statvfs(existing).f_flag & os.ST_RDONLY:
            return f"{existing} is on a read-only file system"
    except OSError:
        pass
    return f"no permission to write in {existing}"


def make_folder(path: str | os.PathLike) -> Path:
    """``mkdir -p``, with a failure as a :class:`~audiosiam.errors.ParameterError` that names the folder.

    Args:
        path (str or os.PathLike): the folder.

    Returns:
        Path: ``path``.

    Raises:
        ParameterError: it cannot be made (a part of it is a file, a read-only file system, no permission).
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ParameterError(f"{path}: cannot be made ({failure_reason(exc, path)}); choose another place") from None
    return path


def failure_reason(exc: OSError, path: Path) -> str:
    """Why writing or making ``path`` failed, in words: a file where a folder should be is named as such."""
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        if exc.errno == errno.EEXIST and path.exists() and not path.is_dir():
            return f"{path} is a file, not a folder"
        why = _unwritable(path.parent)
        if why is not None:
            return why
    return exc.strerror or str(exc)


def as_path(value, what: str = "path") -> str | bytes:
    """``os.fspath(value)`` for a value that is a path (``str``, ``bytes`` or ``os.PathLike``), else a
    :class:`~audiosiam.errors.ParameterError` naming what was given (``load_audio(3)``, ``load_model(None)``).

    Args:
        value (Any): what the caller was given.
        what (str, optional): how the message names it. Default: ``"path"``.

    Returns:
        str or bytes: the path.

    Raises:
        ParameterError: not a path.
    """
    if not isinstance(value, (str, bytes, os.PathLike)):
        raise ParameterError(
            f"{what}={value!r}: expected a file path (str or pathlib.Path), got {type(value).__name__}"
        )
    return os.fspath(value)


_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def not_a_regular_file(path: str | os.PathLike, what: str = "file") -> tuple[str, str] | None:
    """What keeps ``path`` from being read as a file, in words, or ``None`` when it names a regular file
    (symbolic links followed). The one description of what is at a path that every reader (audio,
    checkpoints, galleries) gives, so a link loop is not called missing, nor a device empty.

    Args:
        path (str or os.PathLike): the path a reader was given.
        what (str, optional): what it should be, for the words (``"checkpoint file"``: "no such checkpoint
            file", "is a folder, not a checkpoint file"). Default: ``"file"``.

    Returns:
        tuple[str, str] or None: ``(kind, words)``: ``kind`` is ``"missing"``, ``"folder"``, ``"special"``
        (a pipe, device or socket: opening or reading it may block forever) or ``"unreachable"`` (a link
        loop, a folder that may not be searched); ``words`` continue the path in a message, e.g.
        ``"is a named pipe (FIFO), not a regular file (through the symbolic link to /tmp/p)"``.
    """
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            return "missing", f"is a symbolic link to a missing file ({os.readlink(path)})"
        return "missing", f"no such {what}"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "unreachable", "is a symbolic link loop (following its links never reaches a file)"
        if exc.errno == errno.ENOTDIR:
            return "missing", f"no such {what} (a part of its path is a file, not a folder)"
        return "unreachable", f"cannot be reached ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    through = f" (through the symbolic link to {os.path.realpath(path)})" if os.path.islink(path) else ""
    if stat.S_ISDIR(mode):
        return "folder", f"is a folder, not {'an' if what[0] in 'aeiou' else 'a'} {what}{through}"
    kind = next((words for test, words in _SPECIAL_KINDS if test(mode)), "a special file")
    return "special", f"is {kind}, not a regular file{through}"
