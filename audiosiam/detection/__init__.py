"""Finding sounds in long recordings: the detector, events, their scoring, and soundscapes to score on.

* ``.detector``: :class:`EventDetector` (``fit`` a few examples, ``detect`` in recordings of any
  length) and the decision rule it is made of (its module docstring, step by step).
* ``.curves``: :class:`ScoreCurve` (every window's score for every label in one recording) and the
  rule's steps that read nothing else (thresholds, events, placing).

* ``.events``: :class:`Event` (file, label, start, end, score) and :func:`score_events`, event-based
  precision, recall and F-measure with the DCASE few-shot detection rule (a detection counts when its
  intersection over union with a true event of the same label and file is at least 0.3, one to one).
* ``.soundscapes``: ``make_soundscape()`` mixes events into a background at chosen times and SNRs
  and returns the ground truth, so that a detector can be scored on recordings whose answer is known;
  ``random_placements()`` draws non-overlapping times and SNRs.
"""

from .._deprecated import withdrawn_exports
from .curves import ScoreCurve
from .detector import EventDetector
from .events import Event, score_events

__all__ = [
    "EventDetector",
    "ScoreCurve",
    "Event",
    "score_events",
]

# Exported before 0.1.0, internal (or elsewhere) now: still found here for one release, with a warning.
__getattr__ = withdrawn_exports(
    __name__,
    {
        "Placement": "audiosiam.detection.soundscapes",
        "make_soundscape": "audiosiam.detection.soundscapes",
        "random_placements": "audiosiam.detection.soundscapes",
    },
)
