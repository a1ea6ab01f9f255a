"""Writing files so that a failure never leaves a half-written one, and two writers never collide.

:func:`atomic_write` is the one way audiosiam writes its outputs (checkpoints, training state,
galleries, embeddings): the content goes to a temporary file of its own in the same folder (named by
process and a random part, so two processes saving one path never share it), which then replaces the
target in one ``os.replace``. On any failure the temporary file is removed and the old target is intact.
A process killed with SIGKILL cannot remove its temporary file; the next write of the same target does,
once the process that named it is gone.

:func:`locked` serialises read-modify-write updates of one file between processes (``enroll --add-to``),
so that two concurrent updates both land instead of one silently replacing the other.

:func:`atomic_write_together` writes files that only make sense as a pair (``embed``'s ``.npy`` and its
``.csv`` index): every temporary is complete before any target is replaced, so a failed write (a full disk)
changes none of them; the renames run under a lock and a journal, so a writer killed between two renames is
completed by the next one that opens the pair (``finish_interrupted_commit``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator, Mapping

from .errors import AudiosiamError, ParameterError
from .paths import failure_reason

_TEMPORARY = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp")


class FileLockTimeout(AudiosiamError):
    """Another process held a file's lock for longer than we were willing to wait."""


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file, then move it onto ``path``.

    Args:
        path (str or os.PathLike): the file to write; missing parent folders are created. An existing file
            is replaced only once ``write`` has succeeded.
        write (Callable[[Path], object]): fills the file at the path it is given (a temporary file in the
            same folder, so the final ``os.replace`` stays on one file system); its return value is ignored.

    Returns:
        Path: ``path``.

    Raises:
        Exception: whatever ``write`` or the file system raises (``OSError`` for an unwritable place);
            callers turn that into their own error naming the file. The temporary file is removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphaned_temporaries(path)
    tmp = _temporary(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def _journal(path: Path) -> Path:
    return path.with_name(f".{path.name}.commit")


def atomic_write_together(writes: Mapping[str | os.PathLike, Callable[[Path], object]]) -> list[Path]:
    """Write several files as one: after a failure or a kill, either all of them are the new ones or all the
    old ones (or, for a writer killed between two renames, the next call for the same first file completes it).

    Every ``write(tmp)`` runs first; only when all temporaries are complete are the targets replaced, under
    :func:`locked` on the first path and a journal (``.<first>.commit``, naming each temporary and its
    target) that is written before the first rename and removed after the last. A second writer waits for the
    lock, so the pair on disk is always one writer's.

    Args:
        writes (Mapping[str or os.PathLike, Callable[[Path], object]]): target -> the function that fills its
            temporary file (as :func:`atomic_write`); the first target names the lock and the journal.

    Returns:
        list[Path]: the targets, in order.

    Raises:
        Exception: whatever a ``write`` or the file system raises (``OSError`` for a full disk or an
            unwritable place), with no target changed and the temporaries removed.
    """
    targets = [Path(p) for p in writes]
    temporaries: list[Path] = []
    try:
        for target, write in zip(targets, writes.values()):
            target.parent.mkdir(parents=True, exist_ok=True)
            temporaries.append(_temporary(target))
            write(temporaries[-1])
        with locked(targets[0]):
            finish_interrupted_commit(targets[0], lock=False)
            for target in targets:
                _remove_orphaned_temporaries(target)
            plan = [[str(tmp.resolve()), str(target.resolve())] for tmp, target in zip(temporaries, targets)]
            journal = atomic_write(_journal(targets[0]), lambda j: Path(j).write_text(json.dumps(plan)))
            for tmp, target in zip(temporaries, targets):
                os.replace(tmp, target)
            journal.unlink()
    finally:
        for tmp in temporaries:
            tmp.unlink(missing_ok=True)
    return targets


def finish_interrupted_commit(path: str | os.PathLike, *, lock: bool = True) -> bool:
    """Complete the renames of an :func:`atomic_write_together` whose writer was killed between them (its
    journal beside ``path`` names temporaries that were all complete before the first rename).

    Args:
        path (str or os.PathLike): the first target of the group.
        lock (bool, optional): take the group's lock (``False`` when the caller holds it). Default: ``True``.

    Returns:
        bool: whether there was an interrupted commit to complete.
    """
    path = Path(path)
    journal = _journal(path)
    if not journal.exists():
        return False
    with locked(path) if lock else contextlib.nullcontext():
        try:
            plan = json.loads(journal.read_text())
        except (OSError, ValueError):  # removed by the writer we waited for, or unreadable
            plan = []
        for entry in plan if isinstance(plan, list) else []:
            tmp, target = (Path(p) for p in entry) if _is_pair(entry) else (None, None)
            # only a temporary of that very target, beside it: a crafted journal renames nothing else
            m = _TEMPORARY.match(tmp.name) if tmp is not None and tmp.parent == target.parent else None
            if m is not None and m["target"] == target.name and tmp.exists():  # not yet renamed
                os.replace(tmp, target)
        journal.unlink(missing_ok=True)
    return True


def _is_pair(entry) -> bool:
    return isinstance(entry, list) and len(entry) == 2 and all(isinstance(p, str) for p in entry)


def write_output(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """:func:`atomic_write` for a file a user named (``--out``, ``--json``, ``--plot``): a folder or an
    unwritable place (missing permission, full disk) is a :class:`~audiosiam.errors.ParameterError` that
    names the path, and nothing is left behind.

    Args:
        path (str or os.PathLike): the file to write.
        write (Callable[[Path], object]): fills the temporary file at the path it is given.

    Returns:
        Path: ``path``.

    Raises:
        ParameterError: ``path`` is a folder or cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise ParameterError(f"{path}: is a folder; give a file name to write")
    try:
        return atomic_write(path, write)
    except OSError as exc:
        raise ParameterError(f"{path}: cannot be written ({failure_reason(exc, path)}); choose another place") from None


# What a spreadsheet reads as the start of a formula (OWASP, "CSV Injection"): a file or class named
# `=HYPERLINK(...)` must arrive as text, not run when the CSV is opened.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """A cell for a file a spreadsheet may open (CSV, Raven and Audacity tables): a string that a spreadsheet
    would read as a formula gets a leading ``'``, as OWASP recommends; everything else, numbers included
    (a negative score stays a number), is returned unchanged.

    Args:
        value (Any): the cell.

    Returns:
        Any: ``value``, or ``"'" + value`` for a string starting with ``=``, ``+``, ``-``, ``@``, a tab or a
        carriage return.

    Example:
        >>> spreadsheet_safe("=1+1"), spreadsheet_safe(-0.25)
        ("'=1+1", -0.25)
    """
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _remove_orphaned_temporaries(path: Path) -> None:
    """Delete the temporary files of ``path`` left by writers that were killed (their process is gone)."""
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        m = _TEMPORARY.match(entry.name)
        if m is None or m["target"] != path.name or _process_alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # one of ours: possibly being written by another thread
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


@contextlib.contextmanager
def locked(path: str | os.PathLike, *, timeout: float = 120.0) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` between processes for the duration of the block.

    The lock is an advisory ``flock`` on a sidecar file ``.<name>.lock`` beside ``path`` (left in place:
    removing a lock file races with the next process opening it). Every audiosiam process that updates
    ``path`` in place takes it; readers need not, since writes are atomic anyway. On systems without
    ``fcntl`` (Windows) the block runs unlocked.

    Args:
        path (str or os.PathLike): the file about to be read, changed and written back.
        timeout (float, optional): seconds to wait for another process to finish. Default: ``120.0``.

    Yields:
        Path: ``path``.

    Raises:
        FileLockTimeout: another process kept the lock for longer than ``timeout``.
        ParameterError: the lock file cannot be made beside ``path`` (a read-only or missing place).
    """
    path = Path(path)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield path
        return
    lock_path = path.with_name(f".{path.name}.lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a+b")
    except OSError as exc:
        raise ParameterError(
            f"{path}: cannot be locked for the update ({failure_reason(exc, lock_path)}: its lock file "
            f"{lock_path.name} goes beside it); choose a place audiosiam may write"
        ) from None
    with handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise FileLockTimeout(
                        f"{path}: another audiosiam process has been updating this file for over {timeout:.0f} s "
                        f"(lock {lock_path}); wait for it to finish, or remove the lock file if no such process "
                        "is running"
                    ) from None
                time.sleep(0.05)
        try:
            yield path
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
