"""Pieces shared by the classify, verify, enroll and embed subcommands."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import warnings
from pathlib import Path
from typing import Sequence

from ..errors import NoAudioFilesError, ParameterError

# Counts differing by more than this factor get a warning: with few clips, the big class dominates k-NN
# votes and its prototype is far better estimated than the small class's.
IMBALANCE_WARNING_RATIO = 5


def add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=None, metavar="NAME_OR_PATH",
        help="bundled preset name ('default', 'speaker'; see 'audiosiam info') or a checkpoint file; default: the bundled default model")


def add_format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table",
                        help="output format on stdout (default: table)")


def load_model_from_args(args):
    from ..models import load_model

    return load_model(args.model)


def collect_queries(items: Sequence[str]) -> list[Path]:
    """Files as given, folders expanded to the audio files below them (sorted), in argument order."""
    from ..io import find_audio_files

    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            out.extend(find_audio_files(path))
        else:
            out.append(path)  # a missing file is reported per file when it is read, not here
    if not out:
        raise NoAudioFilesError("no query files given")
    return out


def read_support_folder(root: str | Path) -> tuple[list[Path], list[str]]:
    """Clips and labels of a ``--support`` folder, read by :func:`audiosiam.data.folder_items` (its rules),
    at least two classes (classification by example cannot tell one class from nothing), with a warning
    about very unequal class sizes."""
    from ..data import folder_items

    try:
        items = folder_items(root, min_classes=2, what=f"--support {root}")
    except ParameterError as exc:
        raise ParameterError(f"{exc} (to compare two clips, use `audiosiam verify A B`)") from None
    counts: dict[str, int] = {}
    for item in items:
        counts[item.label] = counts.get(item.label, 0) + 1
    if max(counts.values()) > IMBALANCE_WARNING_RATIO * min(counts.values()):
        warnings.warn(f"{root}: very unequal class sizes ({', '.join(f'{k}: {v}' for k, v in counts.items())}); "
                      "the default nearest-prototype rule copes, but give small classes more examples if you can",
                      UserWarning, stacklevel=2)
    return [Path(item.path) for item in items], [item.label for item in items]


def write_rows(rows: list[dict], fmt: str, stream=None) -> None:
    """Rows of equal keys as an aligned table, CSV or JSON lines."""
    stream = stream or sys.stdout
    if fmt == "json":  # NaN is not JSON: a missing number is null
        json.dump([{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()} for row in rows],
                  stream, indent=2, allow_nan=False)
        stream.write("\n")
        return
    if not rows:
        return
    keys = list(rows[0])
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        stream.write(buffer.getvalue())
        return
    cells = [[_cell(row[k]) for k in keys] for row in rows]
    widths = [max(len(k), *(len(r[i]) for r in cells)) for i, k in enumerate(keys)]
    stream.write("  ".join(k.ljust(w) for k, w in zip(keys, widths)).rstrip() + "\n")
    for r in cells:
        stream.write("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else str(value)


def report_failures(failures, command: str, what: str = "clip") -> None:
    """One line per input that could not be used (the error names the file), then a count."""
    for failure in failures:
        print(f"audiosiam {command}: skipped {what}: {failure.error}", file=sys.stderr)
    if len(failures) > 1:
        print(f"audiosiam {command}: {len(failures)} {what}s skipped", file=sys.stderr)


def parse_where(items: Sequence[str], option: str = "--where") -> dict[str, list[str]] | None:
    """``--where COL=V1,V2`` (or ``--exclude``) options, repeatable, as ``{COL: [V1, V2]}``; None when none."""
    where: dict[str, list[str]] = {}
    for item in items:
        col, _, values = item.partition("=")
        if not col or not values:
            verb = "drop" if option == "--exclude" else "keep"
            raise ParameterError(f"{option} {item!r}: expected COL=V1,V2 ({verb} the manifest rows whose COL is V1 or V2)")
        where[col] = [*where.get(col, []), *values.split(",")]
    return where or None
