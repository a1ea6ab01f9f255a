"""Pieces shared by the classify, verify, enroll and embed subcommands."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Sequence

from ..errors import NoAudioFilesError, ParameterError

# Counts differing by more than this factor get a warning: with few clips, the big class dominates k-NN
# votes and its prototype is far better estimated than the small class's.
IMBALANCE_WARNING_RATIO = 5


# One vocabulary on every command: --model, --device, --format, --no-progress mean the same everywhere.


class DeprecatedOption(argparse.Action):
    """An old spelling kept for one release: stores into the new option's destination, with a warning."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(
            f"audiosiam: {option_string} is deprecated and will be removed in the next release; use {self.new}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def add_deprecated(parser: argparse.ArgumentParser, old: str, new: str, dest: str, **kwargs) -> None:
    parser.add_argument(old, dest=dest, action=DeprecatedOption, new=new, help=argparse.SUPPRESS, **kwargs)


def similarity_threshold(text: str) -> float:
    """argparse ``type`` of every threshold option: a number in [-1, 1] (see ``decision.check_threshold``)."""
    from ..fewshot.rules import check_threshold

    try:
        return check_threshold(float(text), "value")
    except (ValueError, ParameterError) as exc:  # argparse then names the option and exits with 2
        raise argparse.ArgumentTypeError(str(exc).removeprefix("value=")) from None


def open_share(text: str) -> float:
    """argparse ``type`` of a share strictly between 0 and 1 (``--expected-unknown``)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value < 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text!r}: expected a share in (0, 1), e.g. 0.2")
    return value


# Option values are checked by the parser (argparse ``type=``): a value wrong by itself is a usage error,
# exit code 2 with the option named, before any work. Problems found once a command runs exit 1.


def _number(text: str, kind: type):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected {'a whole number' if kind is int else 'a number'}")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a finite number")
    return value


def positive_int(text: str) -> int:
    """argparse ``type`` of a count of at least 1 (``--batch-size``, ``--epochs``, ...)."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return value


def positive_number(text: str) -> float:
    """argparse ``type`` of a finite number above 0 (seconds, rates)."""
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text}: must be > 0")
    return value


def non_negative_number(text: str) -> float:
    """argparse ``type`` of a finite number of at least 0."""
    value = _number(text, float)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text}: must be >= 0")
    return value


def seconds(text: str) -> float:
    """argparse ``type`` of a window length or step in seconds: above 0, at most a week
    (``models.sliding.MAX_SECONDS``: `--segment-hop 1e9` is a slip, and overflows the frame indices)."""
    from ..models.sliding import MAX_SECONDS

    value = positive_number(text)
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"{text}: at most {MAX_SECONDS:.0f} seconds (a week)")
    return value


def whole_numbers(text: str) -> list[int]:
    """argparse ``type`` of a comma-separated list of counts of at least 1 (``--channels``, ``--blocks``)."""
    values = [part.strip() for part in text.split(",")]
    try:
        return [positive_int(part) for part in values]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected whole numbers of at least 1 separated by commas, e.g. 2,2,2"
        ) from None


def neighbours(text: str) -> int:
    """argparse ``type`` of ``-k``: 1 to ``fewshot.rules.MAX_K`` neighbours (``check_k``)."""
    from ..fewshot.rules import check_k

    try:
        return check_k(_number(text, int), "value")
    except ParameterError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("value=")) from None


def add_model_option(parser: argparse.ArgumentParser, *, device: bool = True) -> None:
    parser.add_argument(
        "--model",
        default=None,
        metavar="NAME_OR_PATH",
        help="bundled preset name ('default', 'speaker'; see 'audiosiam info') or a checkpoint file "
        "(default: the bundled default model)",
    )
    if device:
        parser.add_argument(
            "--device", default="cpu", choices=("cpu", "cuda"), help="where the model runs (default: cpu)"
        )


def add_precision_option(parser: argparse.ArgumentParser, scope: str = "over recordings") -> None:
    """``--precision`` of the network over long recordings; the choices are ``models.sliding.PRECISIONS``,
    written out because the parser is built before torch is imported."""
    parser.add_argument(
        "--precision",
        choices=("auto", "int8", "float32"),
        default="auto",
        help=f"the network's arithmetic {scope}: int8 makes the search ~1.4x faster on the CPU with the "
        "same results to a few per thousand; auto: int8 where the model carries its ranges (the bundled "
        "ones do) and runs on the CPU (default: auto)",
    )


def add_format_option(parser: argparse.ArgumentParser, choices=("table", "csv", "json")) -> None:
    parser.add_argument(
        "--format",
        choices=choices,
        default="table",
        help=f"output format on stdout, one of {', '.join(choices)} (default: table)",
    )


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars (default: shown when stderr is a terminal)"
    )


def show_progress(args) -> bool:
    return not getattr(args, "no_progress", False) and sys.stderr.isatty()


def load_model_from_args(args):
    from ..devices import resolve_device
    from ..models import load_model

    return load_model(args.model, device=resolve_device(getattr(args, "device", "cpu"), what="--device"))


def collect_queries(items: Sequence[str]) -> list[Path]:
    """Files as given, folders expanded to the audio files below them (sorted), in argument order. A folder
    holding no audio is reported on stderr and passed on as it is, so that it counts as one failed query
    (the exit code says so) while the other queries still run."""
    from ..io import find_audio_files

    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            try:
                out.extend(find_audio_files(path))
            except NoAudioFilesError as exc:
                print(f"audiosiam: {printable(str(exc))}", file=sys.stderr)
                out.append(path)  # read per file like the rest: "is a folder", one failure
        else:
            out.append(path)  # a missing file is reported per file when it is read, not here
    if not out:
        raise NoAudioFilesError("no query files given")
    return out


def read_support_folder(root: str | Path, min_classes: int = 2) -> tuple[list[Path], list[str]]:
    """Clips and labels of a ``--support`` folder, read by ``audiosiam.data.items.folder_items()`` (its rules),
    at least ``min_classes`` classes (two for a new gallery: classification by example cannot tell one
    class from nothing; one when adding to a gallery that has others), with a warning about very unequal
    class sizes."""
    from ..data.items import folder_items

    try:
        items = folder_items(root, min_classes=min_classes, what=f"--support {root}")
    except ParameterError as exc:
        raise ParameterError(f"{exc} (to compare two clips, use `audiosiam verify A B`)") from None
    counts: dict[str, int] = {}
    for item in items:
        counts[item.label] = counts.get(item.label, 0) + 1
    if max(counts.values()) > IMBALANCE_WARNING_RATIO * min(counts.values()):
        warnings.warn(
            f"{root}: very unequal class sizes ({', '.join(f'{k}: {v}' for k, v in counts.items())}); "
            "the default nearest-prototype rule copes, but give small classes more examples if you can",
            UserWarning,
            stacklevel=2,
        )
    return [Path(item.path) for item in items], [item.label for item in items]


def write_rows(rows: list[dict], fmt: str, stream=None, columns: Sequence[str] = ()) -> None:
    """Rows of equal keys as an aligned table, CSV or JSON; with no rows, the table and the CSV still get
    their header line (``columns``), so a script reading the output sees the same shape either way. CSV
    text cells that a spreadsheet would run as formulas get a leading ``'`` (``files.spreadsheet_safe``)."""
    stream = stream or sys.stdout
    if fmt == "json":  # NaN is not JSON: a missing number is null
        json.dump(
            [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()} for row in rows],
            stream,
            indent=2,
            allow_nan=False,
        )
        stream.write("\n")
        return
    keys = list(rows[0]) if rows else list(columns)
    if not keys:
        return
    if fmt == "csv":
        from ..files import spreadsheet_safe

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in rows)
        stream.write(buffer.getvalue())
        return
    cells = [[_cell(row[k]) for k in keys] for row in rows]
    widths = [max(len(k), *(len(r[i]) for r in cells)) if cells else len(k) for i, k in enumerate(keys)]
    stream.write("  ".join(k.ljust(w) for k, w in zip(keys, widths)).rstrip() + "\n")
    for r in cells:
        stream.write("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else printable(str(value))


def printable(text: str) -> str:
    """``text`` for a terminal: every character that is not printable (newline, tab, carriage return, the
    escape that starts a terminal control code, ...) written as Python writes it in a string (``\\n``,
    ``\\x1b``). A file or class name holding them would otherwise break a table's or a message's one line,
    or drive the terminal. Used for human-readable output only; CSV and JSON carry the names unchanged.

    Example:
        >>> printable("a\\nb\\x1b[31m")
        'a\\\\nb\\\\x1b[31m'
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def report_failures(failures, command: str, what: str = "clip") -> None:
    """One line per input that could not be used (the error names the file), then a count."""
    for failure in failures:
        print(f"audiosiam {command}: skipped {what}: {printable(str(failure.error))}", file=sys.stderr)
    report_skipped(len(failures), command, what)


def report_skipped(count: int, command: str, what: str = "clip") -> None:
    """The count of inputs skipped, on stderr, from one on ("1 clip skipped", "3 clips skipped"): the line a
    script or a person looks for at the end, there whatever the number."""
    if count:
        print(f"audiosiam {command}: {count} {what}{'' if count == 1 else 's'} skipped", file=sys.stderr)


def parse_where(items: Sequence[str], option: str = "--where") -> dict[str, list[str]] | None:
    """``--where COL=V1,V2`` (or ``--exclude``) options, repeatable, as ``{COL: [V1, V2]}``; None when none."""
    where: dict[str, list[str]] = {}
    for item in items:
        col, _, values = item.partition("=")
        if not col or not values:
            verb = "drop" if option == "--exclude" else "keep"
            raise ParameterError(
                f"{option} {item!r}: expected COL=V1,V2 ({verb} the manifest rows whose COL is V1 or V2)"
            )
        where[col] = [*where.get(col, []), *values.split(",")]
    return where or None
