"""`audiosiam verify`: are two clips the same sound, word or phrase?"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import ParameterError
from . import _common

EXAMPLES = """\
examples:
  audiosiam verify a.wav b.wav
  audiosiam verify --model speaker alice_1.flac unknown_caller.flac   # same voice?
  audiosiam verify a.wav b.wav --threshold 0.6 --format json
  audiosiam verify --pairs trials.csv --format csv > scores.csv      # a row per pair, one model load

Prints the cosine similarity of the two clips' embeddings, the probability that they are the same (from
the model's calibration map, as classify's probabilities: B asked against a class enrolled with A alone,
as many different pairs expected as same ones) and the decision: "same" when P(same) >= 0.5. The
threshold printed is the similarity at which P(same) = 0.5 for this model (the one `audiosiam info` shows
and `evaluate` scores), so the decision and its probability never disagree. --threshold decides by a
similarity of your own instead. A model without a calibration map prints no probability and decides at
the equal-error threshold stored with it.

--pairs FILE reads a CSV whose header names the columns a and b (other columns, e.g. a label, are kept in
the output); relative paths are taken from the CSV's folder. Each distinct file is embedded once; pairs
with an unreadable file are reported on stderr and left out. Exit code 0 whatever the decisions; 1 when a
clip (or, with --pairs, any clip) cannot be read.
"""
# The one-line summary `audiosiam --help` shows.
HELP = "decide whether two clips are the same sound (or speaker, with --model speaker)"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "verify",
        help=HELP,
        description="Compare two clips: cosine similarity of their embeddings and a same/different decision.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("a", metavar="A", nargs="?", help="first audio file")
    p.add_argument("b", metavar="B", nargs="?", help="second audio file")
    p.add_argument("--pairs", metavar="CSV", help="verify every pair of a trial list (columns a,b) instead")
    p.add_argument(
        "--threshold",
        type=_common.similarity_threshold,
        default=None,
        help="similarity at or above which the clips count as the same (default: where the model's P(same) "
        "reaches 0.5)",
    )
    _common.add_progress_option(p)
    _common.add_model_option(p)
    _common.add_format_option(p)


def _decide(model, similarity, threshold: float | None):
    """Decisions ("same" / "different") (P,), P(same) (P,) (None without a map) and the threshold shown."""
    import numpy as np

    from ..fewshot.verification import same_probability, verification_threshold

    similarity = np.asarray(similarity, dtype=np.float64)
    p_same = same_probability(model, similarity)
    if threshold is not None:
        same = similarity >= threshold
    else:
        threshold = verification_threshold(model)
        if threshold is None:
            raise ParameterError(
                "this model carries no calibration map and no verification threshold; pass one with --threshold "
                "(`audiosiam evaluate` reports the equal-error threshold of a model on your data)"
            )
        same = p_same >= 0.5 if p_same is not None else similarity >= threshold
    return np.where(same, "same", "different"), p_same, float(threshold)


def run(args) -> int:
    if args.pairs:
        if args.a or args.b:
            raise ParameterError("give either two clips A B or --pairs CSV, not both")
        return _run_pairs(args)
    if not (args.a and args.b):
        raise ParameterError("give two clips to compare (A B), or a trial list with --pairs CSV")
    model = _common.load_model_from_args(args)
    similarity = float(model.similarity(args.a, args.b))
    decisions, p_same, threshold = _decide(model, [similarity], args.threshold)
    decision = str(decisions[0])
    p = None if p_same is None else float(p_same[0])
    row = {
        "a": args.a,
        "b": args.b,
        "similarity": similarity,
        "p_same": p,
        "threshold": threshold,
        "decision": decision,
    }
    if args.format == "json":
        print(json.dumps(row, indent=2))
    elif args.format == "csv":
        _common.write_rows([row], "csv")
    else:
        chance = "" if p is None else f", P(same) {p:.3f}"
        print(
            f"{decision}: similarity {similarity:.3f} {'>=' if decision == 'same' else '<'} threshold "
            f"{threshold:.3f}{chance}"
        )
        print(f"  A: {_common.printable(args.a)}\n  B: {_common.printable(args.b)}")
    return 0


def read_pairs(path: str) -> list[dict]:
    """The rows of a trial list: a CSV with columns ``a`` and ``b``; relative paths joined to its folder.

    Raises:
        ParameterError: the file cannot be read, is not a CSV with those columns, or lists no pair.
    """
    import csv
    from pathlib import Path

    trial = Path(path)
    try:
        with open(trial, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ParameterError(f"--pairs {path}: cannot read the trial list ({exc})") from None
    if "a" not in columns or "b" not in columns:
        raise ParameterError(
            f"--pairs {path}: expected a CSV whose header names the columns a and b (found {columns or 'none'})"
        )
    if not rows:
        raise ParameterError(f"--pairs {path}: the trial list holds no pairs")
    for number, row in enumerate(rows, start=2):
        for key in ("a", "b"):
            if not row.get(key):
                raise ParameterError(f"--pairs {path}: line {number} has no {key}")
            row[key] = str(trial.parent / row[key]) if not Path(row[key]).is_absolute() else row[key]
    return rows


def _run_pairs(args) -> int:
    rows = read_pairs(args.pairs)
    model = _common.load_model_from_args(args)
    files = list(dict.fromkeys(f for row in rows for f in (row["a"], row["b"])))
    embeddings, kept, failures = model.embed_all(files, on_error="skip", progress=_common.show_progress(args))
    _common.report_failures(failures, "verify")
    index = {files[i]: j for j, i in enumerate(kept)}
    usable = [row for row in rows if row["a"] in index and row["b"] in index]
    if len(usable) < len(rows):
        print(f"audiosiam verify: {len(rows) - len(usable)} pairs left out (a clip could not be read)", file=sys.stderr)
    out = []
    if usable:
        a = embeddings[[index[row["a"]] for row in usable]]
        b = embeddings[[index[row["b"]] for row in usable]]
        similarity = (a * b).sum(1).double().numpy()
        decisions, p_same, threshold = _decide(model, similarity, args.threshold)
        for i, row in enumerate(usable):
            out.append(
                {
                    **row,
                    "similarity": float(similarity[i]),
                    "p_same": None if p_same is None else float(p_same[i]),
                    "decision": str(decisions[i]),
                }
            )
        print(
            f"audiosiam verify: threshold {threshold:.3f} (similarity where P(same) = 0.5)"
            if args.threshold is None
            else f"audiosiam verify: threshold {threshold:.3f} (--threshold)",
            file=sys.stderr,
        )
    _common.write_rows(out, args.format)
    return 1 if failures else 0
