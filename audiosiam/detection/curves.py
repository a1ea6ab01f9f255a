"""Score curves and the rule that turns them into events: steps 4 to 6 of
:mod:`audiosiam.detection.detector`'s docstring (thresholds, events, placing), which read nothing but a
recording's window scores, so they are tested, plotted and benchmarked on curves alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .._deprecated import renamed
from .events import Event


@dataclass
class ScoreCurve:
    """Every window's score for every label in one recording, and the thresholds that decide.

    Attributes:
        file (str): the recording (a path, or a description of a waveform).
        labels (list of str): the labels, in the order of the score columns.
        starts (ndarray): (n,) window start times in seconds.
        scores (ndarray): (n, len(labels)) cosine similarities to each label's prototype.
        thresholds (ndarray): (len(labels),) the threshold of each label in this recording.
        window_seconds (float): the windows' length.
        hop_seconds (float): the step between window starts.
        duration (float): the recording's length in seconds.
        locate_starts (ndarray or None): (m,) start times of the short windows that place events (the windows'
            starts; every hop over a recording shorter than one window); ``None``: events stay at their runs'
            centres. Default: ``None``.
        locate_scores (ndarray or None): (m, len(labels)) their scores. Default: ``None``.
        locate_seconds (float or None): their length. Default: ``None``.
        audible (ndarray or None): (n,) whether each window is loud enough to hold an event (step 5 of the
            detector's docstring); ``None``: every window is. Default: ``None``.
    """

    file: str
    labels: list[str]
    starts: np.ndarray
    scores: np.ndarray
    thresholds: np.ndarray
    window_seconds: float
    hop_seconds: float
    duration: float
    locate_starts: np.ndarray | None = None
    locate_scores: np.ndarray | None = None
    locate_seconds: float | None = None
    audible: np.ndarray | None = None

    @property
    def centres(self) -> np.ndarray:
        """(n,) the middle of each window, in seconds: where a plot puts its score."""
        return self.starts + self.window_seconds / 2

    # the old names of the locating windows' fields, read-only, for one release
    fine_starts = property(
        lambda self: self._renamed("fine_starts", "locate_starts"), doc="Deprecated: :attr:`locate_starts`."
    )
    fine_scores = property(
        lambda self: self._renamed("fine_scores", "locate_scores"), doc="Deprecated: :attr:`locate_scores`."
    )
    fine_window_seconds = property(
        lambda self: self._renamed("fine_window_seconds", "locate_seconds"), doc="Deprecated: :attr:`locate_seconds`."
    )

    def _renamed(self, old: str, new: str):
        renamed(f"ScoreCurve.{old}", new, stacklevel=4)
        return getattr(self, new)


def typical_match(embeddings: torch.Tensor, fallback: float) -> float:
    """How well a label's examples match it: the median similarity of each example to the normalised mean
    of the others (step 4 of the detector's docstring).

    Args:
        embeddings (Tensor): (k, D) L2-normalised embeddings of one label's examples.
        fallback (float): the answer for a single example, which has no others.

    Returns:
        float: the typical match ``p``.
    """
    if len(embeddings) < 2:
        return fallback
    others = torch.nn.functional.normalize(embeddings.sum(0, keepdim=True) - embeddings, dim=1)
    return float((embeddings * others).sum(1).median())


def calibrated_threshold(
    scores: np.ndarray, typical: float, negative_best: float | None = None, *, background_quantile: float = 0.97
) -> float:
    """The threshold of one label in one recording (step 4 of the detector's docstring).

    Args:
        scores (ndarray): (n,) the label's score of every window of the recording.
        typical (float): the examples' typical match (:func:`typical_match`).
        negative_best (float or None, optional): the best score of any window of the negative clips.
            Default: ``None``.
        background_quantile (float, optional): the share of windows assumed to be background, in (0, 1).
            Default: ``0.97``.

    Returns:
        float: ``max((median + typical) / 2, quantile)``, and above ``negative_best``.
    """
    median = float(np.median(scores)) if scores.size else 0.0
    floor = float(np.quantile(scores, background_quantile)) if scores.size else -1.0
    threshold = max((median + typical) / 2, floor)
    if negative_best is not None:
        threshold = max(threshold, float(np.nextafter(negative_best, np.inf)))  # a window that ties it is not found
    return threshold


def curve_events(curve: ScoreCurve, event_seconds: Sequence[float]) -> list[Event]:
    """Events from a score curve and its thresholds (steps 5 and 6 of the detector's docstring).

    Args:
        curve (ScoreCurve): the scores, thresholds and window grid of one recording.
        event_seconds (Sequence[float]): each label's expected event length (its examples' median).

    Returns:
        list[Event]: in time order, with the curve's ``file``.
    """
    if curve.scores.shape[0] == 0:
        return []
    margin = curve.scores - curve.thresholds[None]
    best = margin.argmax(axis=1)
    on = margin[np.arange(len(best)), best] >= 0
    if curve.audible is not None:
        on &= curve.audible
    found = []
    for c, label in enumerate(curve.labels):
        found += _label_events(curve, c, float(event_seconds[c]), _runs(np.flatnonzero(on & (best == c)), bridge=1))
    return sorted(found, key=lambda e: (e.start, e.label))


def _label_events(curve: ScoreCurve, c: int, event_seconds: float, runs: list[np.ndarray]) -> list[Event]:
    """One event per run of label ``c``, runs whose events overlap joined into one run and placed again
    (step 5 of the detector's docstring), until no two events of the label overlap."""
    while True:
        events = [_run_event(curve, c, event_seconds, run) for run in runs]
        order = sorted(range(len(events)), key=lambda i: events[i].start)
        groups: list[list[int]] = []
        reach = -np.inf  # the furthest end of the group being built: any overlap with it joins the group
        for i in order:
            if groups and events[i].start < reach:
                groups[-1].append(i)
                reach = max(reach, events[i].end)
            else:
                groups.append([i])
                reach = events[i].end
        if len(groups) == len(runs):
            return events
        runs = [np.sort(np.concatenate([runs[i] for i in group])) for group in groups]


def _run_event(curve: ScoreCurve, c: int, event_seconds: float, run: np.ndarray) -> Event:
    window = curve.window_seconds
    first, last = float(curve.starts[run[0]]), float(curve.starts[run[-1]])
    length = last - first
    if length <= window + event_seconds:  # what one event of the label's length lights up: that event
        centre, half = (first + last + window) / 2, min(event_seconds, length + window) / 2
        start, end = centre - half, centre + half
    else:  # a longer sound: the run's windows, less what of a window the label's sounds do not fill
        trim = max(0.0, window - event_seconds) / 2
        start, end = first + trim, last + window - trim
    centre = _located_centre(curve, c, first, last + window)
    if centre is not None:  # the same length, where the stretch matches best at the finer scale, inside it
        length = end - start
        start = min(max(centre - length / 2, first), max(first, last + window - length))
        end = start + length
    start = max(0.0, start)
    if curve.duration > 0:
        end = min(curve.duration, end)
    if end <= start:  # squeezed out at the recording's edge: keep the windows themselves
        start, end = first, last + window
    return Event(curve.file, curve.labels[c], start, end, float(curve.scores[run, c].max()))


def _located_centre(curve: ScoreCurve, c: int, begin: float, end: float) -> float | None:
    """Where in ``[begin, end]`` label ``c`` matches best at the locating scale (step 6 of the detector's docstring):
    the centre of the locating windows inside it, weighted by the square of each one's score above their
    median; ``None`` without locating windows there (or none above the median)."""
    if curve.locate_scores is None or curve.locate_starts is None or not len(curve.locate_starts):
        return None
    length, tolerance = float(curve.locate_seconds), 1e-6
    lo = int(np.searchsorted(curve.locate_starts, begin - tolerance))
    hi = int(np.searchsorted(curve.locate_starts, end - length + tolerance, side="right"))
    if hi <= lo:
        return None
    scores = curve.locate_scores[lo:hi, c]
    weights = np.clip(scores - np.median(scores), 0.0, None) ** 2
    total = float(weights.sum())
    if total <= 0:
        return None
    return float((weights * (curve.locate_starts[lo:hi] + length / 2)).sum() / total)


def _runs(indices: np.ndarray, bridge: int) -> list[np.ndarray]:
    """Split sorted indices into runs, joining neighbours with at most ``bridge`` indices missing between."""
    if indices.size == 0:
        return []
    return np.split(indices, np.flatnonzero(np.diff(indices) > bridge + 1) + 1)
