"""The ``audiosiam`` command line.

Each subcommand lives in its own module under ``audiosiam/commands/`` and exposes two functions:

* ``add_parser(subparsers)`` builds its ``argparse`` parser (help text that teaches, with examples);
* ``run(args) -> int`` does the work and returns the exit code.

and ``HELP``, its one-line summary. A parser is built in full only for the subcommand being run: the
others get their summary alone, so ``audiosiam --help`` imports neither torch nor any option's defaults
(the ``train`` options come from ``TrainConfig``, which needs torch).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from ._version import __version__
from .commands._common import printable
from .errors import AudiosiamError

# Order is the order shown in --help: the everyday commands first.
SUBCOMMANDS = ("classify", "find", "verify", "enroll", "embed", "export", "train", "evaluate", "bench", "info")


def _available_commands():
    for name in SUBCOMMANDS:
        yield name, importlib.import_module(f"audiosiam.commands.{name}")


def _chosen_command(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the first word that is one), or None."""
    return next((word for word in argv if word in SUBCOMMANDS), None)


def build_parser(command: str | None = "*") -> argparse.ArgumentParser:
    """The ``audiosiam`` parser, with the full parser of ``command`` (``"*"``: every command; ``None``:
    none, summaries only)."""
    parser = argparse.ArgumentParser(
        prog="audiosiam",
        description="Classify audio clips by example with a twin (Siamese) CNN encoder.",
        epilog="Run 'audiosiam COMMAND --help' for the options and examples of one command.",
    )
    parser.add_argument("--version", action="version", version=f"audiosiam {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _available_commands():
        if command in ("*", name):
            module.add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=module.HELP, add_help=False)
    return parser


def _one_line_warning(command: str):
    """Warnings on the command line as one line each, without the library's source line under them."""

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"audiosiam {command}: warning: {printable(str(message))}", file=file or sys.stderr)

    return show


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (``None``: this process's arguments; then an interrupted command ends
    the process at once with 130, whatever its imports left behind: :mod:`audiosiam._interrupt`)."""
    from . import _interrupt

    process = argv is None
    _interrupt.install()
    try:
        code = _main(sys.argv[1:] if process else list(argv))
    except BaseException:  # after Ctrl-C, whatever it broke (a half-imported module) is the interrupt
        if not _interrupt.interrupted():
            raise
        print("audiosiam: interrupted", file=sys.stderr)
        code = 130
    finally:
        if not process:
            _interrupt.uninstall()
    if _interrupt.interrupted():
        if process:  # now: not through the clean-up of half-imported libraries, which may hang or fail
            _interrupt.exit_now(say=False)
        return 130
    if process:  # the work is done: a Ctrl-C from here on would only interrupt the interpreter's exit
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


def _main(argv: list[str]) -> int:
    command = _chosen_command(argv) or "audiosiam"
    try:
        parser = build_parser(_chosen_command(argv))
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        module = importlib.import_module(f"audiosiam.commands.{args.command}")
    except KeyboardInterrupt:  # Ctrl-C while torch is still importing
        print(f"audiosiam {command}: interrupted", file=sys.stderr)
        return 130
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(args.command)
            return int(module.run(args) or 0)
    except AudiosiamError as exc:
        print(f"audiosiam {args.command}: error: {printable(str(exc))}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # stdout closed early (`audiosiam info | head`): not an error worth a traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # the system refused a read or a write the command did not foresee: named, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(
            f"audiosiam {args.command}: error: {printable(where + (exc.strerror or str(exc)))} "
            "(check that the place exists, is writable and has room)",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(f"audiosiam {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
