"""Ctrl-C on the command line: exit code 130 and one line, whatever the process was doing.

Python turns SIGINT into a ``KeyboardInterrupt`` wherever the main thread happens to be. During start-up
that is often inside an import (numpy, scipy, sklearn, torch), which then leaves half-initialised modules
behind: the next use of one fails with an unrelated error (a ``RecursionError`` in numpy's ``__getattr__``),
and a library may swallow the interrupt or block in its clean-up. Worse, where a library's Python code
runs as a callback of its C++ code, an exception raised there can reach a C++ frame that may not throw, and
the process aborts (``terminate called after throwing an instance of 'pybind11::error_already_set'``,
exit -6). So for the command line (``install(process=True)``) the handler raises the interrupt only when
it lands in audiosiam's own Python code, which no C++ code calls back; anywhere else (an import, torch's
Python layer, a library's callback) it ends the process at once with 130. Where it raises, it remembers
the interrupt first (``cli.main`` then answers 130 to whatever error follows), and if the process has not
ended :data:`GRACE_SECONDS` later, or on a second Ctrl-C, ends it at once with 130. Nothing is lost by
ending at once: every write is atomic (``audiosiam.files``), as against a kill, and a temporary file left
behind is removed by the next write of its target.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

# How long an interrupted command may take to unwind (temporary files removed, workers stopped).
GRACE_SECONDS = 5.0

_interrupted = threading.Event()
_OUR_CODE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_end_outside_our_code = False
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
    if _end_outside_our_code and not _in_our_code(frame):
        exit_now()
    timer = threading.Timer(GRACE_SECONDS, exit_now)
    timer.daemon = True
    timer.start()
    _timers.append(timer)
    raise KeyboardInterrupt


def _in_our_code(frame) -> bool:
    return frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_OUR_CODE)


def install(process: bool = False) -> None:
    """Handle Ctrl-C as the module docstring says (from the main thread; elsewhere a no-op).

    Args:
        process (bool, optional): the process is the command line's own (``python -m audiosiam``): an
            interrupt outside audiosiam's code ends it at once. ``False`` (an in-process caller of
            ``cli.main``): the interrupt is always raised, as Python does. Default: ``False``.
    """
    global _end_outside_our_code
    if threading.current_thread() is not threading.main_thread():
        return
    _end_outside_our_code = process
    _interrupted.clear()
    previous = signal.signal(signal.SIGINT, _on_sigint)
    if previous is not _on_sigint:
        _previous.append(previous)


def uninstall() -> None:
    """Put back the handler :func:`install` replaced and call off a pending exit (for in-process callers
    of ``cli.main``, such as tests, whose process goes on)."""
    global _end_outside_our_code
    _end_outside_our_code = False
    while _timers:
        _timers.pop().cancel()
    if threading.current_thread() is threading.main_thread() and _previous:
        signal.signal(signal.SIGINT, _previous.pop())
