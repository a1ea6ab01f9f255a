"""The command line run in-process, as the tests call it."""

from __future__ import annotations

import io
import warnings
from contextlib import redirect_stderr, redirect_stdout

from audiosiam.cli import main


def cli(*args) -> tuple[int, str, str]:
    """``audiosiam ARGS...`` in this process: ``(exit code, stdout, stderr)``; arguments are turned into ``str``.

    The command runs under the warning filters of a fresh Python process, not the suite's (where warnings
    are errors): a command's warnings are part of its output, one line each on stderr, which tests read.
    """
    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(), redirect_stdout(out), redirect_stderr(err):
        warnings.resetwarnings()
        # Python's default filters, inserted last-first (each goes to the front)
        for category in (ResourceWarning, ImportWarning, PendingDeprecationWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", category=category)
        warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()
