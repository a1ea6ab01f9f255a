"""`audiosiam classify`: label clips by their similarity to example clips."""

from __future__ import annotations

import argparse
import sys

from . import _common

EXAMPLES = """\
examples:
  # support/ has one subfolder of example clips per class (support/dog/*.wav, support/bell/*.wav, ...)
  audiosiam classify --support examples/support examples/query
  audiosiam classify --support support/ clips/*.flac --format csv > labels.csv
  audiosiam classify --gallery pets.asg new_recordings/ --plot why.png
  audiosiam classify --support support/ long_recording.flac --segments   # a row per 2 s stretch
  audiosiam classify --support examples/support examples/query --report answers.html   # look and listen

  # enrol once, classify many times without embedding the examples again
  audiosiam enroll support/ --out pets.asg

A clip gets the most probable answer: a class, or "unknown" (from none of them). The probabilities come
from the model's calibration map, learnt on classes held out of its training and adapted to the examples
(leave-one-out), under the share of clips you expect from classes never enrolled (--expected-unknown,
default 0.1; 0.5 if half your clips may be strangers); --target-false-accept RATE answers "unknown" so
that about that share of clips of classes never enrolled still get a label, --threshold by a fixed
similarity instead. Columns: "label" the answer and "prob" its probability; "closest" the most probable
class and "p_closest" its probability, also when the answer is unknown; "p_unknown"; "score" the cosine
similarity to the closest class; "runner_up" the next class, its probability and score.
--all-probabilities adds a "p:<class>" column per class (best with --format csv or json). Unreadable query
files are reported on stderr and the rest are still classified; the exit code is 1 if any query failed,
else 0.
"""


# The one-line summary `audiosiam --help` shows.
HELP = "label clips by example (support folder or saved gallery)"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "classify",
        help=HELP,
        description="Label audio clips by their similarity to a few example clips per class.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--support", metavar="DIR", help="folder with one subfolder of example clips per class")
    source.add_argument("--gallery", metavar="FILE", help="gallery saved by `audiosiam enroll`")
    p.add_argument("queries", nargs="+", metavar="QUERY", help="audio files or folders of them to classify")
    p.add_argument(
        "--rule",
        choices=("prototype", "knn"),
        default=None,
        help="nearest class prototype (default, or the gallery's) or k nearest clips vote",
    )
    p.add_argument(
        "-k", type=_common.neighbours, default=None, help="neighbours for --rule knn (default: 5, or the gallery's)"
    )
    p.add_argument(
        "--threshold",
        type=_common.similarity_threshold,
        default=None,
        help="fixed similarity below which a clip is 'unknown' (default: calibrated on the examples)",
    )
    p.add_argument(
        "--target-false-accept",
        type=_common.open_share,
        default=None,
        metavar="RATE",
        help="answer 'unknown' so that about this share of clips of classes never enrolled get a label, e.g. "
        "0.05 (default: the most probable answer, half the clips expected from unknown classes)",
    )
    p.add_argument(
        "--expected-unknown",
        type=_common.open_share,
        default=None,
        metavar="SHARE",
        help="share of the clips you expect from classes never enrolled, in (0, 1): the prior of the "
        "probabilities and of 'unknown' (default: 0.1, or the gallery's; lower keeps more labels, higher "
        "rejects more strangers)",
    )
    p.add_argument("--no-unknown", action="store_true", help="always answer the closest class")
    p.add_argument(
        "--all-probabilities", action="store_true", help="add a p:<class> column with every class's probability"
    )
    p.add_argument("--plot", metavar="PNG", help="also draw the example and query embeddings in 2-D to this file")
    p.add_argument(
        "--report",
        metavar="HTML",
        help="also write a page to open in a browser: each answer with a player of its clip, the nearest "
        "examples (playable), a spectrogram, the embedding map and the classes; clips up to 30 s are inside "
        "the page, longer ones linked by relative path",
    )
    p.add_argument(
        "--segments",
        action="store_true",
        help="label each stretch of long recordings instead of each file: windows of the model's length "
        "(2 s) every --segment-hop seconds, one row each with its start and end",
    )
    p.add_argument(
        "--segment-hop",
        type=_common.seconds,
        default=None,
        metavar="SECONDS",
        help="with --segments: step between windows (default: the window length, segments side by side)",
    )
    _common.add_progress_option(p)
    p.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first unreadable example clip (default: report it, use the others)",
    )
    _common.add_model_option(p)
    _common.add_precision_option(p, "over the recordings of --segments")
    _common.add_format_option(p)


def run(args) -> int:
    from ..fewshot import FewShotClassifier

    if args.plot:  # a folder or an unknown picture type is refused now, not after the work
        from ..plotting import picture_format

        picture_format(args.plot)
    from ..errors import ParameterError
    from ..paths import refuse_folders

    refuse_folders(args.report)

    reject = None if args.no_unknown else ("auto" if args.threshold is None else args.threshold)
    target = args.target_false_accept
    if target is not None and not 0.0 < target < 1.0:
        raise ParameterError(f"--target-false-accept {target}: expected a rate in (0, 1), e.g. 0.05")
    progress = _common.show_progress(args)
    if args.gallery:
        model = _common.load_model_from_args(args) if args.model else None
        clf = FewShotClassifier.load(args.gallery, model=model)  # its stored settings and calibration
        # only what the user asked to change: re-calibrates then, not otherwise
        asked = args.no_unknown or args.threshold is not None
        clf.set_params(
            rule=args.rule or clf.rule,
            n_neighbors=args.k or clf.n_neighbors,
            reject=reject if asked else clf.reject,
            expected_unknown=args.expected_unknown or clf.expected_unknown,
            target_false_accept=target if target is not None else clf.target_false_accept,
        )
    else:
        support, labels = _common.read_support_folder(args.support)
        clf = FewShotClassifier(
            _common.load_model_from_args(args),
            rule=args.rule or "prototype",
            n_neighbors=args.k or 5,
            reject=reject,
            target_false_accept=target,
            **({"expected_unknown": args.expected_unknown} if args.expected_unknown else {}),
        )
        clf.fit(support, labels, progress=progress, on_error="raise" if args.strict else "skip")
        _common.report_failures(clf.enrol_failures_, "classify", what="example")
    queries = _common.collect_queries(args.queries)
    if args.segments:
        return _classify_segments(clf, queries, args, progress)
    embeddings, kept, failures = clf.model_.embed_all(queries, on_error="skip", progress=progress)
    _common.report_failures(failures, "classify")
    rows = []
    if len(kept):
        decisions = clf.decide_embeddings(embeddings)
        rows = decisions.rows([str(queries[i]) for i in kept], all_probabilities=args.all_probabilities)
    _common.write_rows(rows, args.format, columns=_columns(clf, args))
    if args.plot and len(kept):
        from ..plotting import plot_gallery_and_queries

        plot_gallery_and_queries(clf, embeddings, [r["file"] for r in rows], [r["label"] for r in rows], args.plot)
        print(f"audiosiam classify: plot written to {args.plot}", file=sys.stderr)
    if args.report:
        _write_report(args, rows, clf, embeddings if len(kept) else None)
    return 1 if failures else 0


def _write_report(args, rows, clf, embeddings) -> None:
    from ..report import write_classification

    write_classification(args.report, rows, clf, embeddings, options=vars(args))
    print(f"audiosiam classify: report written to {args.report}", file=sys.stderr)


PREDICTION_COLUMNS = (
    "file",
    "label",
    "prob",
    "closest",
    "p_closest",
    "p_unknown",
    "score",
    "runner_up",
    "p_runner_up",
    "runner_up_score",
)


def _columns(clf, args, first=("file",)) -> tuple[str, ...]:
    columns = first + PREDICTION_COLUMNS[1:]
    return columns + tuple(f"p:{c}" for c in clf.classes_) if args.all_probabilities else columns


def _classify_segments(clf, queries, args, progress: bool) -> int:
    """``--segments``: every window of each recording (streamed, the windowing of ``audiosiam find``)
    labelled as a clip would be; one row per window with its start and end in seconds."""
    import torch

    from ..errors import AudioLoadError, ParameterError
    from ..io import read_blocks
    from ..models.sliding import SlidingEmbedder

    if args.plot:
        raise ParameterError("--plot draws whole clips; it cannot be combined with --segments")
    window = clf.model_.window_seconds
    hop = window if args.segment_hop is None else args.segment_hop
    if not hop > 0:
        raise ParameterError(f"--segment-hop {hop}: must be > 0 seconds")
    embedder = SlidingEmbedder(clf.model_, window, hop, precision=args.precision)
    rows, failed = [], 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(queries), desc="segments", unit="file", leave=False)
    # Recordings one after the other, their chunks embedded side by side (SlidingEmbedder.embed_each).
    pieces = embedder.embed_each((read_blocks(p, clf.model_.sample_rate) for p in queries), catch=(AudioLoadError,))
    parts: list = []
    for index, starts, embeddings, last, *_ in pieces:
        if isinstance(embeddings, AudioLoadError):
            failed += 1
            print(f"audiosiam classify: skipped clip: {_common.printable(str(embeddings))}", file=sys.stderr)
            parts = []  # what came before the error is not the whole recording
        elif len(starts):
            parts.append((starts, embeddings))
        if not last:
            continue
        if bar is not None:
            bar.update(1)
        if parts:
            starts = torch.cat([s for s, _ in parts])
            embeddings = torch.cat([e for _, e in parts])
            path = str(queries[index])
            decisions = clf.decide_embeddings(embeddings)
            decided = decisions.rows([path] * len(starts), all_probabilities=args.all_probabilities)
            for start, row in zip(starts.tolist(), decided):
                rows.append({"file": row.pop("file"), "start": round(start, 3), "end": round(start + window, 3), **row})
        parts = []
    if bar is not None:
        bar.close()
    _common.write_rows(rows, args.format, columns=_columns(clf, args, ("file", "start", "end")))
    if args.report:
        _write_report(args, rows, clf, None)
    _common.report_skipped(failed, "classify", "clip")
    return 1 if failed else 0
