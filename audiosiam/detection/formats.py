"""Writing detected events in the formats people open them with.

* ``table``, ``csv``, ``json``: one row per event with the keys ``file``, ``label``, ``start``, ``end``,
  ``score`` (seconds from the start of the recording; JSON: a list of objects with exactly those keys).
* ``audacity``: a label track per recording (tab-separated ``start``, ``end``, ``label``), which Audacity
  imports with File > Import > Labels next to the recording.
* ``raven``: a Raven selection table per recording (tab-separated, Raven's own column names plus
  ``Annotation`` and ``Score``), opened in Raven Pro or Raven Lite with the recording. The frequency
  columns span the band the model analyses (0 Hz to half its sample rate).

A label or file name that a spreadsheet would read as a formula (``=1+1``) is written with a leading ``'``
in every format a spreadsheet may open (csv, audacity, raven; ``files.spreadsheet_safe``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence, TextIO

from ..files import spreadsheet_safe
from .events import Event

#: The keys of an event row (:func:`event_rows`) and the columns of the table, csv and json formats.
EVENT_COLUMNS = ("file", "label", "start", "end", "score")
#: The formats written as one file per recording, and the suffix each file name takes.
PER_RECORDING_FORMATS = {"audacity": ".txt", "raven": ".Table.1.selections.txt"}
_RAVEN_COLUMNS = (
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Annotation",
    "Score",
)


def event_rows(events: Iterable[Event]) -> list[dict]:
    """One dict per event with exactly the keys :data:`EVENT_COLUMNS` (times to the millisecond, scores to 4
    decimals).

    Args:
        events (Iterable[Event]): the events.

    Returns:
        list[dict]: ``{"file", "label", "start", "end", "score"}`` per event, in the given order.
    """
    return [
        {
            "file": e.file,
            "label": e.label,
            "start": round(e.start, 3),
            "end": round(e.end, 3),
            "score": round(e.score, 4),
        }
        for e in events
    ]


def write_audacity(events: Sequence[Event], stream: TextIO) -> None:
    """An Audacity label track: one ``start<TAB>end<TAB>label`` line per event, in seconds.

    Args:
        events (Sequence[Event]): the events of one recording.
        stream (TextIO): where to write.
    """
    for e in events:
        stream.write(f"{e.start:.6f}\t{e.end:.6f}\t{spreadsheet_safe(e.label)}\n")


def write_raven(events: Sequence[Event], stream: TextIO, *, high_freq: float = 8000.0) -> None:
    """A Raven selection table: a header line, then one numbered selection per event.

    Args:
        events (Sequence[Event]): the events of one recording.
        stream (TextIO): where to write.
        high_freq (float, optional): the selections' upper frequency in Hz. Default: ``8000.0``.
    """
    stream.write("\t".join(_RAVEN_COLUMNS) + "\n")
    for n, e in enumerate(events, start=1):
        label = spreadsheet_safe(e.label)
        cells = (n, "Spectrogram 1", 1, f"{e.start:.6f}", f"{e.end:.6f}", "0.0", f"{high_freq:.1f}", label)
        stream.write("\t".join(str(c) for c in cells) + f"\t{e.score:.4f}\n")


def track_names(recordings: Sequence[str | os.PathLike], suffix: str) -> list[str]:
    """File names for one output per recording: the recording's name without its extension plus
    ``suffix``; recordings that share a name get their folder path in front (``a__b__rec.txt``).

    Args:
        recordings (Sequence[str or os.PathLike]): the recordings, in order.
        suffix (str): e.g. ``".txt"``.

    Returns:
        list[str]: one distinct name per recording.
    """
    paths = [Path(r) for r in recordings]
    stems = [p.stem for p in paths]
    names = []
    for p, stem in zip(paths, stems):
        if stems.count(stem) > 1:
            stem = "__".join([*p.parent.parts[-3:], stem]).replace(os.sep, "_").lstrip("_")
        names.append(stem + suffix)
    for i, name in enumerate(names):  # still equal (same folders and names): number them
        if names.count(name) > 1:
            names[i] = f"{i:04d}_{name}"
    return names
