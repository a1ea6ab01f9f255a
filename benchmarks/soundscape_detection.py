#!/usr/bin/env python3
"""Few-shot sound event detection on synthetic soundscapes: audiosiam's EventDetector against a baseline.

    python benchmarks/soundscape_detection.py [--events MANIFEST] [--background MANIFEST] [--json out.json]

For every class of ``--events`` with enough clips (3 examples plus ``--targets``), seeded:

* a soundscape of ``--seconds`` seconds: a background of ambience recordings from ``--background`` laid
  end to end, into which ``--targets`` other clips of the class and ``--distractors`` clips of other
  classes are mixed at random times and SNRs (``audiosiam.detection.make_soundscape``; uniform in
  ``--snr`` dB, measured over each clip's sounding part);
* clips longer than ``--max-clip-seconds`` (10) keep their first 10 s;
* both detectors get the same 3 examples and must find the targets; distractors found count as false
  positives. Scored with the DCASE rule (IoU >= 0.3, one to one; ``audiosiam.detection.score_events``),
  counts summed over all soundscapes (and over the seeds of ``--seed 0 1 2``, each drawn as alone).

The baseline differs from audiosiam in the embedding only: the same windows, threshold rule, event rule and
placing windows (``calibrated_threshold``, ``curve_events``), but each window is the mean and standard deviation over
time of a 64-band dB log-mel, each dimension standardised over the recording's windows, compared by
cosine to the examples' mean (the hand-made-features baseline of ``benchmarks/generality.py``).

Rules of the detector are chosen on soundscapes of *training* classes, never on these defaults (the dev
sets of ``docs/experiments/2026-12-02-find-threshold-97-percent.md``, issue 17): ``--events
.../train_environmental.csv --seed 0 1 2 3``, ``--events .../train_kinds.csv --repeats 3 --seed 0 1``, and for
words ``--events ../shared/data/speech_commands_dev/manifest.csv --where label=up,down,go,stop --repeats 10`` with
``--events ../shared/data/fsdd/manifest.csv --label-column digit --where digit=0,1,2,3,4 --repeats 6``.

Defaults score the held-out environmental classes (``heldout_environmental.csv``: in no training run of
any bundled model) over the ambience recordings of the corpus (``background_ambience.csv``, which were
mixed into training clips as background noise, never used as a class).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from audiosiam import load_audio, load_model  # noqa: E402
from audiosiam.data.locations import training_data  # noqa: E402
from audiosiam.detection import EventDetector, ScoreCurve, score_events  # noqa: E402
from audiosiam.detection.curves import calibrated_threshold, curve_events, typical_match  # noqa: E402
from audiosiam.detection.events import Event  # noqa: E402
from audiosiam.detection.soundscapes import make_soundscape, random_placements  # noqa: E402
from audiosiam.functional import log_mel_spectrogram  # noqa: E402
from audiosiam.models.sliding import PRECISIONS  # noqa: E402

DATA = training_data() / "manifests"
RATE = 16000


def read_manifest(path: Path, label_column: str = "label", where: dict | None = None) -> dict[str, list[str]]:
    """{label: [paths]} of a CSV manifest (paths relative to it), rows kept where ``where`` says."""
    by_label = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if where and any(row[col] not in values for col, values in where.items()):
                continue
            by_label[row[label_column]].append(str(path.parent / row["path"]))
    return dict(by_label)


def background(paths: list[str], seconds: float, rng: np.random.Generator) -> torch.Tensor:
    """Ambience recordings in a random order, end to end, to ``seconds``, at -30 dBFS RMS."""
    pieces, total = [], 0
    while total < seconds * RATE:
        wave = load_audio(paths[rng.integers(len(paths))], RATE)
        pieces.append(wave / wave.pow(2).mean().sqrt().clamp_min(1e-8) * 10 ** (-30 / 20))
        total += wave.numel()
    return torch.cat(pieces)[: int(seconds * RATE)]


def background_stretches(bg: torch.Tensor, count: int, rng: np.random.Generator) -> list[torch.Tensor]:
    """``count`` stretches of 5 s of a soundscape's background before anything was mixed into it: what a user
    would clip from a stretch of the recording where the sound does not occur, to give as ``--negative``.
    Drawn from their own generator, so the soundscapes are the same with or without them."""
    length = min(5 * RATE, bg.numel())
    starts = rng.integers(0, bg.numel() - length + 1, size=count)
    return [bg[s : s + length] for s in starts]


def _statistics_windows(db: torch.Tensor, window: int, hop: int) -> torch.Tensor:
    """(n, 128): the log-mel mean and standard deviation of every window of ``db`` (1, 64, T)."""
    window = min(window, db.shape[-1])  # a clip shorter than a window: one window of its length
    mean = torch.nn.functional.avg_pool1d(db, window, hop)[0]
    std = (torch.nn.functional.avg_pool1d(db.square(), window, hop)[0] - mean.square()).clamp_min(0).sqrt()
    return torch.cat([mean, std]).T


def _statistics_scores(db: torch.Tensor, window: int, hop: int, examples: torch.Tensor, negatives=()):
    """(scores of each window, the examples' features, the best window score of the negatives or None):
    log-mel mean/std windows of ``db`` (1, 64, T), of the negatives' (1, 64, T') and the examples' (k, 128)
    mean/std, each dimension standardised over the recording's windows, cosine to the examples' mean."""
    windows = _statistics_windows(db, window, hop)
    centre, scale = windows.mean(0), windows.std(0).clamp_min(1e-6)

    def normalised(feats):
        return torch.nn.functional.normalize((feats - centre) / scale, dim=1)

    ex = normalised(examples)
    prototype = torch.nn.functional.normalize(ex.mean(0), dim=0)
    negative_best = max(
        (float((normalised(_statistics_windows(n, window, hop)) @ prototype).max()) for n in negatives), default=None
    )
    return (normalised(windows) @ prototype)[:, None].numpy(), ex, negative_best


def baseline_curve(
    detector: EventDetector, wave: torch.Tensor, examples: list[torch.Tensor], negatives: list[torch.Tensor] = ()
) -> ScoreCurve:
    """The baseline's scores on the detector's window grid, with the detector's threshold rule (negatives
    included), and on its locating grid (windows of its placing length at the same starts), so events are placed
    by the same rule."""
    window = round(detector.window_seconds_ * 100)  # 10 ms log-mel frames
    hop = round(detector.hop_seconds_ * 100)
    db = log_mel_spectrogram(wave, RATE, n_mels=64, normalize=None)[None]  # (1, 64, T)
    raw = torch.stack(
        [
            torch.cat([m.mean(-1), m.std(-1)])
            for m in (log_mel_spectrogram(c, RATE, n_mels=64, normalize=None) for c in examples)
        ]
    )
    negative_dbs = [log_mel_spectrogram(n, RATE, n_mels=64, normalize=None)[None] for n in negatives]
    scores, ex, negative_best = _statistics_scores(db, window, hop, raw, negative_dbs)
    fallback = float(np.median(scores))  # one example: no typical match to measure
    threshold = calibrated_threshold(
        scores[:, 0], typical_match(ex, fallback), negative_best, background_quantile=detector.background_quantile
    )
    locating = {}
    if detector.locate_seconds_ is not None:  # placing windows at the windows' starts, as the detector's
        length = round(detector.locate_seconds_ * 100)
        locate_scores = _statistics_scores(db, length, hop, raw)[0]
        locating = {
            "locate_starts": np.arange(locate_scores.shape[0]) * hop / 100,
            "locate_scores": locate_scores,
            "locate_seconds": length / 100,
        }
    return ScoreCurve(
        file="soundscape",
        labels=detector.labels_,
        starts=np.arange(scores.shape[0]) * hop / 100,
        scores=scores,
        thresholds=np.array([threshold]),
        window_seconds=window / 100,
        hop_seconds=hop / 100,
        duration=wave.numel() / RATE,
        **locating,
    )


def run(args) -> dict:
    where = {}
    for item in args.where:
        col, _, values = item.partition("=")
        where[col] = values.split(",")
    classes = read_manifest(args.events, args.label_column, where)
    ambience = [p for paths in read_manifest(args.background).values() for p in paths]
    model = load_model(args.model)
    need = args.shots + args.targets
    eligible = sorted(label for label, paths in classes.items() if len(paths) >= need)
    if args.max_classes:
        eligible = eligible[: args.max_classes]
    totals = {"audiosiam": [], "baseline": []}
    truth_all = []
    seconds_of_audio, elapsed = 0.0, 0.0
    # Each seed draws its soundscapes (and negatives) as a run with that seed alone would: pooled seeds are
    # separate runs. ``k`` numbers a seed's own soundscapes.
    per_seed = [label for label in eligible for _ in range(args.repeats)]
    jobs = [(seed, k, label) for seed in args.seed for k, label in enumerate(per_seed)]
    rngs = {seed: np.random.default_rng(seed) for seed in args.seed}
    options = {"background_quantile": args.background_quantile} if args.background_quantile else {}
    for n, (seed, k, label) in enumerate(jobs):
        rng = rngs[seed]
        paths = list(rng.permutation(classes[label]))
        cap = int(args.max_clip_seconds * RATE)
        examples = [load_audio(p, RATE)[:cap] for p in paths[: args.shots]]
        targets = [(load_audio(p, RATE)[:cap], label) for p in paths[args.shots : need]]
        others = [p for other, ps in classes.items() if other != label for p in ps]
        distractors = [
            (load_audio(p, RATE)[:cap], "distractor") for p in rng.choice(others, size=args.distractors, replace=False)
        ]
        bg = background(ambience, args.seconds, rng)
        placements = random_placements(
            targets + distractors, args.seconds, snr_db=tuple(args.snr), seed=int(rng.integers(1 << 31))
        )
        wave, truth = make_soundscape(bg, placements, sample_rate=RATE)
        truth = [e for e in truth if e.label == label]
        truth_all += [Event(f"{n}", e.label, e.start, e.end) for e in truth]
        detector = EventDetector(model, precision=args.precision, locate_seconds=args.locate or None, **options)
        negatives = background_stretches(bg, args.negatives, np.random.default_rng([seed, k]))
        detector.fit(examples, labels=label, negatives=negatives, sample_rate=RATE)
        t0 = time.perf_counter()
        found = [Event("soundscape", e.label, e.start, e.end, e.score) for e in detector.detect(wave, sample_rate=RATE)]
        elapsed += time.perf_counter() - t0
        seconds_of_audio += args.seconds
        base = curve_events(baseline_curve(detector, wave, examples, negatives), [detector.event_seconds_[0]])
        for name, events in (("audiosiam", found), ("baseline", base)):
            totals[name] += [Event(f"{n}", e.label, e.start, e.end, e.score) for e in events]
        print(
            f"[{n + 1}/{len(jobs)}] seed {seed} {label}: {len(truth)} true, audiosiam {len(found)} "
            f"({score_events(found, truth)['f_measure']:.2f}), baseline {len(base)} "
            f"({score_events(base, truth)['f_measure']:.2f})",
            file=sys.stderr,
        )
    result = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "classes": len(eligible),
        "soundscapes": len(jobs),
        "true_events": len(truth_all),
        "detector_real_time_factor": seconds_of_audio / elapsed if elapsed else None,
    }
    for name, events in totals.items():
        score = score_events(events, truth_all)
        result[name] = {k: score[k] for k in ("precision", "recall", "f_measure", "tp", "fp", "fn")}
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=Path, default=DATA / "heldout_environmental.csv", help="manifest: path,label")
    ap.add_argument("--label-column", default="label", help="the manifest column with the class (default: label)")
    ap.add_argument("--where", action="append", default=[], metavar="COL=V1,V2", help="keep only these rows")
    ap.add_argument("--repeats", type=int, default=1, help="soundscapes per class, each with other clips")
    ap.add_argument("--background", type=Path, default=DATA / "background_ambience.csv", help="manifest of ambience")
    ap.add_argument("--model", default="default", help="preset or checkpoint (default: default)")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each soundscape (default: 60)")
    ap.add_argument("--shots", type=int, default=3, help="examples per class (default: 3)")
    ap.add_argument("--targets", type=int, default=3, help="target events per soundscape (default: 3)")
    ap.add_argument("--distractors", type=int, default=4, help="events of other classes (default: 4)")
    ap.add_argument("--snr", type=float, nargs=2, default=(0.0, 12.0), help="SNR range in dB (default: 0 12)")
    ap.add_argument(
        "--max-clip-seconds", type=float, default=10.0, help="clips longer than this keep their start (default: 10)"
    )
    ap.add_argument("--max-classes", type=int, default=0, help="score only the first N classes (0: all)")
    ap.add_argument(
        "--precision", default="auto", choices=PRECISIONS, help="the trunk's arithmetic over recordings (default: auto)"
    )
    ap.add_argument(
        "--locate",
        type=float,
        default=0.32,
        help="placing windows' length in s, both detectors (0: off; default: 0.32)",
    )
    ap.add_argument(
        "--background-quantile",
        type=float,
        default=0.0,
        help="share of windows the threshold stays above, both detectors (0: EventDetector's default)",
    )
    ap.add_argument(
        "--negatives",
        type=int,
        default=0,
        help="give both detectors this many 5 s stretches of each soundscape's own background as negatives "
        "(default: 0)",
    )
    ap.add_argument(
        "--seed", type=int, nargs="+", default=[0], help="one or more seeds; several: their counts pooled (default: 0)"
    )
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
