"""Ctrl-C on the command line: exit code 130 and one line, whatever the process was doing.

Python turns SIGINT into a ``KeyboardInterrupt`` wherever the main thread happens to be. During start-up
that is often inside an import (numpy, scipy, sklearn, torch), which then leaves half-initialised modules
behind: the next use of one fails with an unrelated error (a ``RecursionError`` in numpy's ``__getattr__``),
and a library may swallow the interrupt or block in its clean-up. So the command line's handler remembers
the interrupt before raising it (``cli.main`` then answers 130 to whatever error follows), and if the
process has not ended :data:`GRACE_SECONDS` later, or on a second Ctrl-C, ends it at once with 130.
Nothing is lost by that: every write is atomic (``audiosiam.files``), as against a kill.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

__all__ = ["install", "uninstall", "interrupted", "exit_now", "GRACE_SECONDS"]

# How long an interrupted command may take to unwind (temporary files removed, workers stopped).
GRACE_SECONDS = 5.0

_interrupted = threading.Event()
_previous: list = []
_timers: list[threading.Timer] = []


def interrupted() -> bool:
    """Whether Ctrl-C arrived since :func:`install`."""
    return _interrupted.is_set()


def exit_now(say: bool = True) -> None:
    """End the process at once with exit code 130, buffers flushed.

    Args:
        say (bool, optional): print that it was interrupted first. Default: ``True``.
    """
    try:
        if say:
            print("audiosiam: interrupted", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(130)


def _on_sigint(signum, frame):
    if _interrupted.is_set():  # a second Ctrl-C: now
        exit_now()
    _interrupted.set()
    timer = threading.Timer(GRACE_SECONDS, exit_now)
    timer.daemon = True
    timer.start()
    _timers.append(timer)
    raise KeyboardInterrupt


def install() -> None:
    """Handle Ctrl-C as the module docstring says (from the main thread; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        return
    _interrupted.clear()
    previous = signal.signal(signal.SIGINT, _on_sigint)
    if previous is not _on_sigint:
        _previous.append(previous)


def uninstall() -> None:
    """Put back the handler :func:`install` replaced and call off a pending exit (for in-process callers
    of ``cli.main``, such as tests, whose process goes on)."""
    while _timers:
        _timers.pop().cancel()
    if threading.current_thread() is threading.main_thread() and _previous:
        signal.signal(signal.SIGINT, _previous.pop())
