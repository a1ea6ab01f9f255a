"""`audiosiam verify`: are two clips the same sound, word or phrase?"""

from __future__ import annotations

import argparse
import json

from . import _common

EXAMPLES = """\
examples:
  audiosiam verify a.wav b.wav
  audiosiam verify --model speaker alice_1.flac unknown_caller.flac   # same voice?
  audiosiam verify a.wav b.wav --threshold 0.6 --format json

Prints the cosine similarity of the two clips' embeddings, the probability that they are the same (from
the model's calibration map, as classify's probabilities: B asked against a class enrolled with A
alone), and the decision against the threshold. The default threshold is the model's own: the
equal-error point measured on held-out same/different pairs when the model was trained (its model card
says on which data). A model without a calibration map prints no probability. Exit code 0 whatever the
decision; 1 only when a clip cannot be read.
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
    p.add_argument("a", metavar="A", help="first audio file")
    p.add_argument("b", metavar="B", help="second audio file")
    p.add_argument(
        "--threshold",
        type=_common.similarity_threshold,
        default=None,
        help="similarity at or above which the clips count as the same (default: the model's)",
    )
    _common.add_model_option(p)
    _common.add_format_option(p)


def model_threshold(model) -> float:
    """The verification threshold a model was calibrated with (stored in its checkpoint)."""
    from ..errors import CheckpointError

    info = getattr(model, "info", {}) or {}
    threshold = info.get("verification_threshold")
    if threshold is None:
        threshold = (info.get("metrics") or {}).get("verification_threshold")
    if threshold is None:
        raise CheckpointError(
            "this model carries no calibrated verification threshold; pass one with --threshold "
            "(`audiosiam evaluate` reports the equal-error threshold of a model on your data)"
        )
    return float(threshold)


def same_probability(model, similarity: float) -> float | None:
    """P(same) of a pair from the model's calibration map (prototype rule), or None without a map."""
    import math

    from ..fewshot import FewShotClassifier

    if not (getattr(model, "info", None) or {}).get("calibration"):
        return None
    p = float(FewShotClassifier(model).same_probability(similarity)[0])
    return None if math.isnan(p) else p


def run(args) -> int:
    model = _common.load_model_from_args(args)
    threshold = args.threshold if args.threshold is not None else model_threshold(model)
    similarity = float(model.similarity(args.a, args.b))
    decision = "same" if similarity >= threshold else "different"
    p_same = same_probability(model, similarity)
    row = {
        "a": args.a,
        "b": args.b,
        "similarity": similarity,
        "p_same": p_same,
        "threshold": threshold,
        "decision": decision,
    }
    if args.format == "json":
        print(json.dumps(row, indent=2))
    elif args.format == "csv":
        _common.write_rows([row], "csv")
    else:
        chance = "" if p_same is None else f", P(same) {p_same:.3f}"
        print(
            f"{decision}: similarity {similarity:.3f} {'>=' if decision == 'same' else '<'} threshold "
            f"{threshold:.3f}{chance}"
        )
        print(f"  A: {args.a}\n  B: {args.b}")
    return 0
