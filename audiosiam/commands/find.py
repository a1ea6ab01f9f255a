"""`audiosiam find`: where do sounds like a few examples occur in long recordings?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import _common

EXAMPLES = """\
examples:
  audiosiam find --example bark1.wav --example bark2.wav --example bark3.wav recordings/ --label dog
  audiosiam find --support examples/ recordings/       # examples/<label>/*.wav: several sounds at once
  audiosiam find --support examples/ night.flac --negative wind.wav --negative traffic.wav
  audiosiam find --support examples/ recordings/ --format raven --out tables/ --plot pictures/
  audiosiam find --support examples/ night.flac --report night.html   # look at and listen to each event

Each event is a row: file, label, start and end in seconds, score (its best cosine similarity to the
label's examples). The threshold is set per label and recording from the examples and the recording
itself: halfway between the recording's typical window and the examples' typical match, and above 97%
of the recording's windows (so the sought sound is assumed to fill at most about 3% of a recording: for
a sound that fills more, lower --background-quantile, e.g. 0.9 for up to 10%); --negative clips raise
it above their best-matching window (a few seconds of the recording's own background, or a similar
sound that must not be found), --threshold replaces it. --plot draws, per recording, its spectrogram
above the similarity over time with the threshold and the events, so you see why something was (not)
found. --report writes one page to open in a browser: per recording that picture and a player for
each event (the stretch with 0.5 s either side), its score and the examples beside it.

Recordings of any length are streamed (memory stays bounded). Unreadable recordings are reported on
stderr and the rest are searched; the exit code is 1 if any failed, else 0.
"""

HELP = "find where sounds like a few examples occur in long recordings"

FORMATS = ("table", "csv", "json", "audacity", "raven")


def _non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text}: must be >= 0 seconds")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be between 0 and 1 (e.g. 0.97: above 97% of windows)")
    return value


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "find",
        help=HELP,
        description="Find where sounds like a few example clips occur in recordings (few-shot event detection).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--example", action="append", metavar="FILE", help="an example clip of the sound to find (repeat it)"
    )
    source.add_argument("--support", metavar="DIR", help="folder with one subfolder of example clips per label")
    p.add_argument("recordings", nargs="+", metavar="RECORDING", help="audio files or folders of them to search")
    p.add_argument("--label", default=None, help="the label of the --example clips (default: target)")
    p.add_argument(
        "--negative",
        action="append",
        default=[],
        metavar="FILE_OR_DIR",
        help="clips of sounds that must not be found (repeat it; folders are searched for audio)",
    )
    p.add_argument(
        "--threshold",
        type=_common.similarity_threshold,
        default=None,
        help="fixed similarity above which a window is an event (default: calibrated per recording)",
    )
    p.add_argument(
        "--background-quantile",
        type=_share,
        default=0.97,
        metavar="SHARE",
        help="the calibrated threshold stays above this share of a recording's windows (default: 0.97, "
        "for sounds that fill at most ~3%% of a recording)",
    )
    p.add_argument(
        "--hop",
        type=_common.seconds,
        default=0.16,
        metavar="SECONDS",
        help="step between windows (default: 0.16)",
    )
    p.add_argument(
        "--window",
        type=_common.seconds,
        default=None,
        metavar="SECONDS",
        help="window length (default: the examples' median length, kept between 1 s and 2 s)",
    )
    p.add_argument(
        "--locate",
        type=_non_negative_seconds,
        default=0.32,
        metavar="SECONDS",
        help="length of the short windows that place each event where its stretch matches best "
        "(0: at the stretch's centre; default: 0.32)",
    )
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="for --format audacity/raven: write one file per recording into this folder "
        "(needed for more than one recording)",
    )
    p.add_argument("--plot", metavar="DIR", help="also draw one picture per recording into this folder")
    p.add_argument(
        "--report",
        metavar="HTML",
        help="also write a page to open in a browser: per recording its picture, and each event with a "
        "player of its stretch, its score and the examples; stretches up to 30 s are inside the page, "
        "longer recordings linked by relative path",
    )
    _common.add_progress_option(p)
    _common.add_model_option(p)
    _common.add_precision_option(p)


def _examples(args) -> tuple[list[Path], list[str]]:
    if args.example:
        return [Path(e) for e in args.example], [args.label or "target"] * len(args.example)
    if args.label:
        print("audiosiam find: --label is ignored with --support (labels are its folder names)", file=sys.stderr)
    from ..data.items import folder_items

    items = folder_items(args.support, min_classes=1, what=f"--support {args.support}")
    return [Path(i.path) for i in items], [i.label for i in items]


def run(args) -> int:
    from ..detection import EventDetector
    from ..detection.formats import EVENT_COLUMNS, PER_RECORDING_FORMATS, event_rows, track_names
    from ..errors import AudioLoadError, ParameterError
    from ..io import audio_duration

    per_recording = args.format in PER_RECORDING_FORMATS
    recordings = _common.collect_queries(args.recordings)
    if per_recording and args.out is None and len(recordings) > 1:
        raise ParameterError(
            f"--format {args.format} writes one file per recording ({len(recordings)} here): give --out DIR"
        )
    if args.out and not per_recording:
        raise ParameterError("--out is for --format audacity or raven; other formats print to stdout (redirect it)")
    from ..paths import refuse_folders, refuse_unwritable

    for folder in (args.out, args.plot):  # refused now, not after the work
        if folder and Path(folder).exists() and not Path(folder).is_dir():
            raise ParameterError(f"{folder}: exists and is not a folder; give a folder to write into")
        if folder:
            refuse_unwritable(folder)

    refuse_folders(args.report)
    examples, labels = _examples(args)
    negatives = _common.collect_queries(args.negative) if args.negative else None
    detector = EventDetector(
        _common.load_model_from_args(args),
        hop_seconds=args.hop,
        window_seconds=args.window,
        threshold=args.threshold,
        background_quantile=args.background_quantile,
        locate_seconds=args.locate or None,
        precision=args.precision,
    )
    detector.fit(examples, labels, negatives)
    names = track_names(recordings, PER_RECORDING_FORMATS[args.format]) if per_recording else []
    plot_names = track_names(recordings, ".png") if args.plot else []
    bar = _progress_bar(args, recordings, audio_duration)
    events, failed, searched = [], 0, []
    results = detector.score_each(recordings, progress=bar.update if bar else None, catch=(AudioLoadError,))
    for n, (recording, curve) in enumerate(results):
        if isinstance(curve, AudioLoadError):
            failed += 1
            print(f"audiosiam find: skipped recording: {_common.printable(str(curve))}", file=sys.stderr)
            continue
        found = detector.events(curve)
        events += found
        if args.report:
            searched.append((recording, curve))
        if per_recording:
            _write_track(args, found, names[n])
        if args.plot:
            from ..plotting import plot_detection

            plot_detection(curve, found, Path(args.plot) / plot_names[n], recording=recording)
    if bar:
        bar.close()
    if not per_recording:
        _common.write_rows(event_rows(events), args.format, columns=EVENT_COLUMNS)
    if args.report:
        from ..report import write_detection

        write_detection(
            args.report,
            event_rows(events),
            searched,
            detector,
            examples=examples,
            labels=labels,
            negatives=negatives,
            options=vars(args),
        )
        print(f"audiosiam find: report written to {args.report}", file=sys.stderr)
    if args.plot:
        print(f"audiosiam find: pictures written to {args.plot}/", file=sys.stderr)
    _common.report_skipped(failed, "find", "recording")
    return 1 if failed else 0


def _write_track(args, events, name: str) -> None:
    from ..detection.formats import write_audacity, write_raven
    from ..files import write_output
    from ..paths import make_folder

    writer = write_audacity if args.format == "audacity" else write_raven
    if args.out is None:
        writer(events, sys.stdout)
        return

    def fill(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            writer(events, f)

    write_output(make_folder(args.out) / name, fill)


def _progress_bar(args, recordings, audio_duration):
    if not _common.show_progress(args):
        return None
    from tqdm.auto import tqdm

    from ..errors import AudioLoadError

    total = 0.0
    for recording in recordings:
        try:
            total += audio_duration(recording)
        except AudioLoadError:  # reported when it is searched
            pass
    return tqdm(total=round(total, 1), desc="searching", unit="s audio", leave=False, dynamic_ncols=True)
