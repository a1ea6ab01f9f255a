"""The report of ``audiosiam find --report``: where each sound was found, and a player for each find.

Per recording: its spectrogram above the similarity over time with the thresholds and events
(:func:`audiosiam.plotting.plot_detection`), its thresholds, and a row per event (the command's own row)
with a player of exactly that stretch and a little context around it, and buttons that play the label's
examples beside it. Then the examples and negatives, and the settings that made the decisions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .audio import CONTEXT_SECONDS, AudioSources
from .classification import _numeric_columns, _options
from .page import render, write_page
from .pictures import plotted


def write_detection(
    path: str | os.PathLike,
    rows: Sequence[dict],
    searched: Sequence[tuple],
    detector,
    *,
    examples: Sequence[str | os.PathLike] = (),
    labels: Sequence[str] = (),
    negatives: Sequence[str | os.PathLike] = (),
    options: dict | None = None,
) -> Path:
    """Write the HTML report of a search.

    Args:
        path (str or os.PathLike): the page to write (atomically); linked audio is addressed relative to its
            folder (the size rule: ``audiosiam.report.audio``).
        rows (Sequence[dict]): the command's event rows (``audiosiam.detection.formats.event_rows()``:
            ``file``, ``label``, ``start``, ``end``, ``score``), in its order.
        searched (Sequence[tuple]): ``(recording, curve)`` per recording searched: the file and its
            :class:`~audiosiam.detection.ScoreCurve`; a row belongs to the recording whose ``curve.file``
            is its ``file``.
        detector (EventDetector): the fitted detector (its settings are shown).
        examples (Sequence[str or os.PathLike], optional): the example clips, playable beside the events of
            their label. Default: ``()``.
        labels (Sequence[str], optional): one label per example. Default: ``()``.
        negatives (Sequence[str or os.PathLike], optional): the negative clips. Default: ``()``.
        options (dict or None, optional): the command's settings (e.g. ``vars(args)``), shown as given.
            Default: ``None``.

    Returns:
        Path: ``path``.

    Raises:
        ParameterError: ``path`` is a folder or cannot be written.
    """
    from ..detection.events import Event
    from ..plotting import plot_detection

    sources = AudioSources(path)
    example_clips = [
        {"id": f"example-{n}", "label": str(label), "source": str(clip), "sound": sources.clip(clip)}
        for n, (clip, label) in enumerate(zip(examples, labels))
    ]
    negative_clips = [
        {"id": f"negative-{n}", "label": "negative", "source": str(clip), "sound": sources.clip(clip)}
        for n, clip in enumerate(negatives or ())
    ]
    columns = list(rows[0]) if rows else ["file", "label", "start", "end", "score"]
    numeric = _numeric_columns(rows, columns)
    recordings = []
    for n, (recording, curve) in enumerate(searched):
        own = [dict(row) for row in rows if row["file"] == curve.file]
        events = [Event(r["file"], r["label"], r["start"], r["end"], r["score"]) for r in own]
        threshold_of = dict(zip(curve.labels, np.asarray(curve.thresholds, dtype=float).tolist()))
        recordings.append(
            {
                "id": f"recording-{n}",
                "table_id": f"events-{n}",
                "file": curve.file,
                "sound": sources.clip(recording),
                "duration": curve.duration,
                "picture": plotted(
                    lambda p, c=curve, e=events, r=recording: plot_detection(c, e, p, recording=r),
                    f"the picture of {curve.file}",
                ),
                "labels": [
                    {
                        "label": label,
                        "threshold": threshold_of[label],
                        "median": float(np.median(curve.scores[:, c])) if len(curve.scores) else None,
                        "best": float(np.max(curve.scores[:, c])) if len(curve.scores) else None,
                        "events": sum(r["label"] == label for r in own),
                    }
                    for c, label in enumerate(curve.labels)
                ],
                "events": [
                    {
                        "row": row,
                        "id": f"event-{n}-{k}",
                        "sound": sources.stretch(recording, row["start"], row["end"], duration=curve.duration),
                        "margin": row["score"] - threshold_of.get(row["label"], float("nan")),
                        "examples": [clip for clip in example_clips if clip["label"] == row["label"]],
                    }
                    for k, row in enumerate(own)
                ],
            }
        )
    html = render(
        "detection.html",
        title=f"audiosiam find: {len(rows)} event{'s' * (len(rows) != 1)} in {len(recordings)} "
        f"recording{'s' * (len(recordings) != 1)}",
        columns=columns,
        numeric=numeric,
        recordings=recordings,
        filter_labels=sorted({str(r["label"]) for r in rows} | {str(label) for label in labels}),
        examples=example_clips,
        negatives=negative_clips,
        decision=_decision(detector, bool(negative_clips)),
        options=_options(options or {}),
        context=CONTEXT_SECONDS,
        embedded_mb=sources.embedded_bytes / 2**20,
    )
    return write_page(path, html)


def _decision(detector, negatives: bool) -> list[tuple[str, str]]:
    """The detector's settings as it used them (after fitting: the window chosen, the hop rounded)."""
    threshold = (
        f"fixed at {detector.threshold:.3f}"
        if detector.threshold is not None
        else f"calibrated per label and recording: halfway between the recording's typical window and the "
        f"examples' typical match, at least above {detector.background_quantile:.0%} of the recording's windows"
        + ("; raised above the negatives' best window" if negatives else "")
    )
    locate = detector.locate_seconds_
    return [
        ("labels", ", ".join(detector.labels_)),
        ("threshold", threshold),
        ("window", f"{detector.window_seconds_:.2f} s"),
        ("hop", f"{detector.hop_seconds_:.2f} s"),
        (
            "events placed by",
            "the stretch's centre" if locate is None else f"short windows of {locate:.2f} s (where it matches best)",
        ),
        (
            "expected event length",
            ", ".join(f"{label}: {s:.2f} s" for label, s in zip(detector.labels_, detector.event_seconds_)),
        ),
        ("arithmetic", detector.precision_),
    ]
