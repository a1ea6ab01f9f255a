"""The command line run in-process, as the tests call it."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

from audiosiam.cli import main


def cli(*args) -> tuple[int, str, str]:
    """``audiosiam ARGS...`` in this process: ``(exit code, stdout, stderr)``; arguments are turned into ``str``."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()
