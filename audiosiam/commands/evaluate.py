"""`audiosiam evaluate`: few-shot accuracy, verification, retrieval and open-set metrics of a model."""

from __future__ import annotations

import argparse
import json
import sys

from . import _common

EXAMPLES = """\
examples:
  audiosiam evaluate data/ --episodes 10000
  audiosiam evaluate fsdd/manifest.csv --model model.pt --label-column digit --where digit=5,6,7,8,9 \\
      --group-column speaker --k-shot 1 5 --json results.json --plot embeddings.png
  audiosiam evaluate voices.csv --model speaker --label-column speaker --cross-group
  audiosiam evaluate fsdd/manifest.csv --model no_theo.pt --label-column digit --where digit=5,6,7,8,9 \\
      --group-column speaker --query-group theo      # leave-one-speaker-out: theo's clips as queries

--model is a bundled preset name or a checkpoint (default: the bundled default); the older form
`evaluate MODEL DATA` still works for this release. The classes in DATA should be ones the model never saw.
Accuracy is the mean over seeded N-way K-shot episodes with a 95% confidence interval. --cross-group
draws query clips from other groups than their support (e.g. other speakers); --query-group draws
them from the named groups only (support from any). --open-set enrols half
of the classes and scores how well the best similarity separates their clips from the other half's.
"""


# The one-line summary `audiosiam --help` shows.
HELP = "few-shot, verification, retrieval and open-set metrics"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help=HELP,
        description="Evaluate an audiosiam model on labelled audio.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "data",
        nargs="+",
        metavar="DATA",
        help="class folder or CSV manifest (the older form MODEL DATA is still accepted)",
    )
    p.add_argument(
        "--label-column", default="label", help="manifest column(s) naming the class, comma-separated (default: label)"
    )
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="COL=V1,V2",
        help="keep only manifest rows whose COL is one of the values (repeatable)",
    )
    p.add_argument(
        "--group-column", default=None, help="manifest column with each clip's group, e.g. the speaker (default: none)"
    )
    p.add_argument("--n-way", type=_common.positive_int, default=5, help="classes per episode (default: 5)")
    p.add_argument(
        "--k-shot",
        type=_common.positive_int,
        nargs="+",
        default=[1, 5],
        help="support clips per class, one or more (default: 1 5)",
    )
    p.add_argument(
        "--n-query", type=_common.positive_int, default=5, help="query clips per class and episode (default: 5)"
    )
    p.add_argument(
        "--episodes", type=_common.positive_int, default=10000, help="seeded episodes per k-shot (default: 10000)"
    )
    p.add_argument(
        "--rule",
        choices=("prototype", "knn"),
        default="prototype",
        help="decision rule, as classify's (default: prototype)",
    )
    p.add_argument("-k", type=_common.neighbours, default=5, help="neighbours for --rule knn (default: 5)")
    p.add_argument("--cross-group", action="store_true", help="queries from other groups than the support")
    p.add_argument(
        "--query-group",
        action="append",
        default=[],
        metavar="GROUP",
        help="only this group's clips are queries (repeatable; needs --group-column), e.g. the "
        "speaker held out of training",
    )
    p.add_argument("--open-set", action="store_true", help="also report open-set AUROC (half the classes unknown)")
    p.add_argument(
        "--calibration",
        action="store_true",
        help="also report how far the classifier's answers and probabilities (with 'unknown') can be trusted, "
        "per k-shot: calibration error (15 bins), Brier score, accuracy at probability >= 0.9, false accepts "
        "and rejects of classes never enrolled (as many as --n-way), open-set AUROC",
    )
    p.add_argument(
        "--calibration-episodes",
        type=int,
        default=1000,
        help="seeded episodes per k-shot for --calibration; each enrols and calibrates a classifier (default: 1000)",
    )
    p.add_argument("--reliability-plot", metavar="PNG", help="with --calibration: draw the reliability diagrams")
    p.add_argument(
        "--target-false-accept",
        type=_common.open_share,
        default=None,
        metavar="RATE",
        help="with --calibration: the classifier's criterion for 'unknown', as classify's (default: the most "
        "probable answer)",
    )
    p.add_argument(
        "--expected-unknown",
        type=_common.open_share,
        default=None,
        metavar="SHARE",
        help="with --calibration: the classifier's prior share of clips from classes never enrolled, as "
        "classify's, and the mix the open-set metrics are weighted to (default: 0.1, classify's)",
    )
    p.add_argument(
        "--legacy-calibration",
        action="store_true",
        help="with --calibration: measure the earlier rule (fitted on the enrolment clips alone) instead of the "
        "model's calibration map, for comparison",
    )
    p.add_argument("--seed", type=int, default=0, help="episode seed (default: 0)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    p.add_argument("--plot", metavar="PNG", help="draw the embeddings in 2-D, coloured by class")
    _common.add_model_option(p)
    _common.add_progress_option(p)
    _common.add_format_option(p, ("table", "json"))


def run(args) -> int:

    from .. import evaluation as E
    from ..data import AudioClipDataset, load_sources
    from ..errors import ParameterError
    from ..evaluation.embedding import embed_dataset
    from ..evaluation.tables import format_table
    from ..files import write_output
    from ..paths import refuse_folders

    refuse_folders(args.json)
    for picture in (args.plot, args.reliability_plot):  # a folder or an unknown type: refused before the work
        if picture:
            from ..plotting import picture_format

            picture_format(picture)
    if args.reliability_plot and not args.calibration:
        raise ParameterError("--reliability-plot draws the --calibration results: add --calibration")
    if (args.target_false_accept is not None or args.legacy_calibration) and not args.calibration:
        raise ParameterError("--target-false-accept and --legacy-calibration set up --calibration: add --calibration")
    if args.expected_unknown is not None and not args.calibration:
        raise ParameterError("--expected-unknown sets up --calibration: add --calibration")
    if args.target_false_accept is not None and not 0.0 < args.target_false_accept < 1.0:
        raise ParameterError(f"--target-false-accept {args.target_false_accept}: expected a rate in (0, 1), e.g. 0.05")
    if args.query_group and not args.group_column:
        raise ParameterError("--query-group needs --group-column (the manifest column naming each clip's group)")
    if len(args.data) == 2 and args.model is None:  # the older form: evaluate MODEL DATA
        print(
            "audiosiam: `evaluate MODEL DATA` is deprecated and will be removed in the next release; use "
            "`evaluate DATA --model MODEL`",
            file=sys.stderr,
        )
        args.model, args.data = args.data
    elif len(args.data) == 1:
        args.data = args.data[0]
    else:
        raise ParameterError(f"DATA: expected one class folder or manifest, got {len(args.data)} ({args.data})")
    where = _common.parse_where(args.where)
    sources, _, _ = load_sources(
        [args.data], label_columns=args.label_column.split(","), where=where, group_column=args.group_column
    )
    dataset = AudioClipDataset(sources[0].items(), clip_seconds=None, on_error="skip")
    known = _open_set_classes(dataset, max(args.k_shot)) if args.open_set else None  # checked before the work
    model = _common.load_model_from_args(args)
    progress = _common.show_progress(args)
    emb, labels = embed_dataset(model, dataset, progress=progress)
    groups = dataset.groups if args.cross_group or args.query_group else None
    results = {
        "model": args.model or "default",
        "data": args.data,
        "clips": len(dataset),
        "classes": len(dataset.classes),
    }
    for k_shot in args.k_shot:
        results[f"{args.n_way}-way {k_shot}-shot"] = E.few_shot_accuracy(
            emb,
            labels,
            n_way=args.n_way,
            k_shot=k_shot,
            n_query=args.n_query,
            episodes=args.episodes,
            rule=args.rule,
            n_neighbors=args.k,
            groups=groups,
            cross_group=args.cross_group,
            query_groups=args.query_group or None,
            seed=args.seed,
            progress=progress,
        )
    from ..fewshot.verification import verification_threshold
    from ..models.info import model_info

    results["verification"] = E.verification_metrics(
        emb, labels, seed=args.seed, threshold=verification_threshold(model)
    )
    results["retrieval"] = E.retrieval_metrics(emb, labels)
    for k_shot in args.k_shot if args.open_set else ():
        results[f"open-set {k_shot}-shot"] = E.open_set_auroc(emb, labels, known, k_shot=k_shot, seed=args.seed)
    calibration = None if args.legacy_calibration else model_info(model).calibration
    if args.calibration and calibration is None and not args.legacy_calibration:
        print(
            "audiosiam evaluate: this model carries no calibration map; measuring the earlier rule "
            "(fit a map with scripts/fit_calibration.py)",
            file=sys.stderr,
        )
    from ..fewshot.classifier import EXPECTED_UNKNOWN

    for k_shot in args.k_shot if args.calibration else ():
        results[f"calibration {k_shot}-shot"] = E.calibration_metrics(
            emb,
            labels,
            n_way=args.n_way,
            k_shot=k_shot,
            n_query=args.n_query,
            episodes=args.calibration_episodes,
            rule=args.rule,
            n_neighbors=args.k,
            calibration=calibration,
            target_false_accept=args.target_false_accept,
            expected_unknown=args.expected_unknown or EXPECTED_UNKNOWN,
            seed=args.seed,
            progress=progress,
        )
    print(json.dumps(results, indent=2) if args.format == "json" else format_table(results))
    if args.json:
        write_output(args.json, lambda tmp: tmp.write_text(json.dumps(results, indent=2)))
    if args.plot:
        from ..plotting import plot_embeddings

        plot_embeddings(
            emb, [dataset.classes[i] for i in labels.tolist()], args.plot, title=f"{args.model} on {args.data}"
        )
        print(f"audiosiam evaluate: embeddings drawn in {args.plot}", file=sys.stderr)
    if args.reliability_plot:
        from ..plotting import plot_reliability

        calibration = {k: v for k, v in results.items() if k.startswith("calibration ")}
        plot_reliability(calibration, args.reliability_plot, title=f"{args.model or 'default'} on {args.data}")
        print(f"audiosiam evaluate: reliability diagrams drawn in {args.reliability_plot}", file=sys.stderr)
    return 0


def _open_set_classes(dataset, k_shot: int) -> list[int]:
    """The enrolled half of the classes for --open-set (the first half in sorted order), each of which
    must have more than ``k_shot`` clips (the rest of a class's clips are its queries)."""
    from collections import Counter

    from ..errors import ParameterError

    counts = Counter(dataset.labels)
    known = list(range(len(dataset.classes) // 2))
    short = [f"{dataset.classes[c]} ({counts[c]})" for c in known if counts[c] <= k_shot]
    if len(dataset.classes) < 2 or short:
        raise ParameterError(
            f"--open-set enrols {k_shot} clips of each of the first half of the classes and needs more than that: "
            + (
                f"too few clips in {', '.join(short[:5])}{' ...' if len(short) > 5 else ''}"
                if short
                else "there are fewer than 2 classes"
            )
            + "; lower --k-shot or add clips"
        )
    return known
