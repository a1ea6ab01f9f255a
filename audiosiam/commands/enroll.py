"""`audiosiam enroll`: embed a support folder once and save it as a reusable gallery."""

from __future__ import annotations

import argparse
import contextlib
import json

from . import _common

EXAMPLES = """\
examples:
  audiosiam enroll examples/support --out examples.asg
  audiosiam classify --gallery examples.asg examples/query

The gallery stores embeddings, labels and the calibrated unknown threshold, not audio. It remembers which
model made it; classifying with another model is refused, because the similarities would be meaningless.
Add more classes later with `--add-to existing.asg`.
"""


# The one-line summary `audiosiam --help` shows.
HELP = "save example clips as a gallery for later classification"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "enroll",
        help=HELP,
        description="Embed a folder of example clips (one subfolder per class) and save it as a gallery file.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("support", metavar="DIR", help="folder with one subfolder of example clips per class")
    p.add_argument("--out", required=True, metavar="FILE", help="gallery file to write (.asg)")
    p.add_argument("--add-to", metavar="FILE", help="extend this existing gallery instead of starting anew")
    p.add_argument("--rule", choices=("prototype", "knn"), default="prototype", help="decision rule stored with it")
    p.add_argument("-k", type=_common.neighbours, default=5, help="neighbours for --rule knn (default: 5)")
    p.add_argument(
        "--strict", action="store_true", help="stop at the first unreadable clip (default: report it, enrol the others)"
    )
    _common.add_model_option(p)
    _common.add_progress_option(p)
    _common.add_format_option(p, ("table", "json"))


def run(args) -> int:
    from ..fewshot import FewShotClassifier
    from ..fewshot.gallery import gallery_path
    from ..files import locked
    from ..paths import refuse_folders

    refuse_folders(args.out)
    # adding one new class to a gallery of others is the common case: one class is enough then
    paths, labels = _common.read_support_folder(args.support, min_classes=1 if args.add_to else 2)
    progress = _common.show_progress(args)
    on_error = "raise" if args.strict else "skip"
    # With --add-to: read, extend and write back under one lock on the output, so that two processes
    # adding to one gallery at once both land (the second reads what the first wrote).
    # one lock per gallery file however --out is spelled (with or without .asg, through a link)
    with locked(gallery_path(args.out)) if args.add_to else contextlib.nullcontext():
        if args.add_to:
            model = _common.load_model_from_args(args) if args.model else None
            clf = FewShotClassifier.load(args.add_to, model=model)
            clf.add(paths, labels, progress=progress, on_error=on_error)
        else:
            clf = FewShotClassifier(_common.load_model_from_args(args), rule=args.rule, n_neighbors=args.k)
            clf.fit(paths, labels, progress=progress, on_error=on_error)
        _common.report_failures(clf.enrol_failures_, "enroll", what="example")
        out = clf.save(args.out)
    counts = clf.gallery_.counts()
    if args.format == "json":
        print(
            json.dumps(
                {
                    "gallery": str(out),
                    "clips": len(clf.gallery_),
                    "classes": counts,
                    "unknown_threshold": clf.threshold_,
                    "unknown_rule": _unknown_rule(clf),
                    "skipped": [f.source for f in clf.enrol_failures_],
                },
                indent=2,
            )
        )
        return 0
    print(f"audiosiam enroll: {len(clf.gallery_)} clips in {len(counts)} classes written to {out}")
    classes = ", ".join(f"{_common.printable(k)} ({v})" for k, v in counts.items())
    print(f"  classes: {classes}; unknown: {_unknown_rule(clf)}")
    return 0


def _unknown_rule(clf) -> str:
    """How the gallery decides ``unknown``: the calibration map, a similarity threshold, or off."""
    if clf.reject is None or not clf.rejects_:
        return "off"
    if clf.threshold_ is not None:
        return f"similarity below {clf.threshold_:.3f}"
    return "the model's calibration map" + (
        f" (target false-accept rate {clf.target_false_accept})" if clf.target_false_accept is not None else ""
    )
