"""Few-shot sound event detection: find where sounds like a few examples occur in long recordings.

How :class:`EventDetector` decides, step by step:

1. **Examples.** Each example clip is embedded as a clip
   (:meth:`~audiosiam.models.embedding.EmbeddingModel.embed`); a label's prototype is the normalised mean
   of its examples. Its expected event length is the median length of its examples' sounding part
   (``audiosiam.io.framing.active_span()``).
2. **Windows.** The recording is streamed and every window is embedded in one pass of the network
   (:class:`~audiosiam.models.sliding.SlidingEmbedder`). The window lasts the examples' median length,
   kept between ``min_window_seconds`` (1 s: the model was trained on clips of at least 1 s) and the
   model's ``window_seconds``; windows start every ``hop_seconds``.
3. **Scores.** A window's score for a label is its cosine similarity to the label's prototype.
4. **Threshold** per label and recording, from nothing but the examples and the recording itself:
   the examples' typical match ``p`` (the median similarity of each example to the prototype of the
   others; with one example, the model's verification threshold), the recording's typical window ``m``
   (the median score) and its ``background_quantile`` (97th percentile) of window scores ``q``. The
   threshold is the midpoint ``(m + p) / 2``, but at least ``q``: halfway from what the recording mostly
   sounds like to what the examples sound like, and above all but 3% of the recording's windows, so a
   recording of nothing but background yields few false alarms whatever its sound. The sought sound is
   thereby assumed to fill at most about 3% of a recording; where it fills more, the quieter or less
   typical of its occurrences are missed first (lower ``background_quantile``, or pass ``threshold``).
   ``negatives`` (clips of what is *not* wanted) raise it to just above their best window score, so
   nothing that scores like them is found (chosen against halfway between that score and ``p``:
   ``docs/experiments/2026-12-02-find-negatives-threshold.md``). ``threshold=`` replaces the rule with one
   fixed value. (Chosen on soundscapes of training classes, ``benchmarks/soundscape_detection.py``; the
   held-out classes score it once.)
5. **Events.** A window is *on* for the label with the largest score above its threshold (margin
   ``score - threshold``), so two labels never claim one window, and only if it is audible: its level
   (RMS) at most ``QUIET_DB`` (50 dB) below the examples' median sounding level. Scores do not
   depend on level, so without this a recording of near-silence (dither, 1e-4 noise) lit up like any other
   background where the examples are noise-like (water). Runs of on-windows (gaps of one hop
   bridged) become events. Every window that overlaps a sound of length ``d`` enough may light up, so a
   run whose window starts span at most a window plus ``d`` (the label's expected length) is one event
   of length ``d`` centred on the run; a longer run is a longer sound and spans the run's windows, less
   the part of a window the label's sounds do not fill. An event's score is its run's best score. Runs of
   one label whose events overlap (a sound whose windows dip below the threshold for a few hops, or are
   taken by another label for a moment) are one occurrence: they are joined into one run and placed
   again, until no two events of a label overlap (label files of Audacity and Raven hold one event per
   occurrence).
6. **Placing.** A window is far longer than a short sound, so where in its run a sound lies is unsure by
   a good part of a window. Short windows (``locate_seconds``, 0.32 s) pooled at the windows' starts from
   the same trunk frames score the stretch the run covers at a finer scale, and the event (its length
   kept, and inside the stretch) is centred on their score-weighted centre, each short window weighted by
   the square of its score's excess over their median there: where in the stretch it matches the examples
   best, robust to a single peak. (Chosen on soundscapes of training classes against the run's centre, a
   short window at every frame and the loudest stretch:
   ``docs/experiments/2026-12-01-find-events-placed-by-short-windows.md``.)

Steps 4 to 6 read nothing but a recording's scores: they are :mod:`audiosiam.detection.curves`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from ..errors import AudioLoadError, ParameterError
from ..io import read_blocks
from ..io.checks import check_waveform
from ..io.framing import active_span
from ..io.inputs import as_clips, describe_input, is_path, read_clips
from ..models.info import model_info
from ..models.sliding import SlidingEmbedder, check_precision
from .curves import ScoreCurve, calibrated_threshold, curve_events, typical_match
from .events import Event

DEFAULT_LABEL = "target"

# A window this many dB below the examples' median sounding level (RMS) is near-silence: never an event.
#: A window this many dB below the examples' median sounding level is too quiet to hold an event.
QUIET_DB = 50.0
# An expected event length is at least this (a 1-sample example would give events of no length).
MIN_EVENT_SECONDS = 0.05
# A recording shorter than this holds nothing to search (a window of a few frames of audio); said by name.
MIN_RECORDING_SECONDS = 0.1


@dataclass
class _Label:
    name: str
    prototype: torch.Tensor  # (D,)
    typical_match: float  # p in the module docstring
    event_seconds: float  # the examples' median sounding length
    negative_best: float | None = None


class EventDetector:
    """Find where sounds like a few examples occur in recordings (the rule: module docstring).

    Args:
        model (EmbeddingModel, str or None, optional): the embedding model, or a preset name or checkpoint
            path; ``None``: the bundled default. Loaded at :meth:`fit` into ``model_``. Default: ``None``.
        hop_seconds (float, optional): step between window starts, rounded to the model's frame step (80 ms
            for the bundled models). Default: ``0.16``.
        window_seconds (float or None, optional): window length; ``None``: from the examples (module
            docstring). Default: ``None``.
        min_window_seconds (float, optional): shortest window chosen from the examples. Default: ``1.0``.
        threshold (float or None, optional): one fixed similarity threshold for every label and recording,
            in [-1, 1]; ``None``: the calibrated rule. Default: ``None``.
        background_quantile (float, optional): the calibrated threshold stays above this share of a
            recording's window scores, in (0, 1). Default: ``0.97``.
        chunk_seconds (float, optional): audio processed at once (a few such chunks at a time on the CPU:
            :class:`~audiosiam.models.sliding.SlidingEmbedder`); sets the memory used (about 40 MB per
            minute of each chunk), not the result. Default: ``120.0`` (an hour is searched ~10% faster than
            in 60 s chunks here; about 200-300 MB at most).
        locate_seconds (float or None, optional): length of the short windows that place each event within the
            stretch its windows cover (step 6 of the module docstring); ``None``: at the stretch's centre.
            Default: ``0.32``.
        precision (str, optional): the network trunk's arithmetic over recordings: ``"auto"`` (8-bit
            integers on the CPU where the checkpoint carries their ranges, as the bundled models do: the
            whole search ~1.4x faster, the same detections to within a few per thousand), ``"int8"`` or ``"float32"``
            (:class:`~audiosiam.models.sliding.SlidingEmbedder`). The examples are embedded in float32
            either way. Default: ``"auto"``.

    Raises:
        ParameterError: a length not positive (``locate_seconds`` included), a threshold outside [-1, 1], a
            quantile outside (0, 1) or an unknown ``precision`` (``"int8"`` where it cannot run: at :meth:`fit`).

    Example:
        >>> detector = audiosiam.EventDetector().fit(["bark1.wav", "bark2.wav", "bark3.wav"], labels="dog")
        >>> for event in detector.detect("garden.flac"):
        ...     print(event.start, event.end, event.score)
    """

    def __init__(
        self,
        model=None,
        *,
        hop_seconds: float = 0.16,
        window_seconds: float | None = None,
        min_window_seconds: float = 1.0,
        threshold: float | None = None,
        background_quantile: float = 0.97,
        chunk_seconds: float = 120.0,
        locate_seconds: float | None = 0.32,
        precision: str = "auto",
    ):
        from ..fewshot.rules import check_threshold

        for name, value in (("hop_seconds", hop_seconds), ("min_window_seconds", min_window_seconds)):
            if not value > 0:
                raise ParameterError(f"{name}={value}: must be > 0")
        if locate_seconds is not None and not locate_seconds > 0:
            raise ParameterError(
                f"locate_seconds={locate_seconds}: must be > 0 (or None to place events at runs' centres)"
            )
        self.locate_seconds = locate_seconds
        if not 0 < background_quantile < 1:
            raise ParameterError(f"background_quantile={background_quantile}: expected a value in (0, 1)")
        self.background_quantile = background_quantile
        if window_seconds is not None and not window_seconds > 0:
            raise ParameterError(f"window_seconds={window_seconds}: must be > 0 (or None to follow the examples)")
        self.model = model  # resolved at fit (model_): a name stays a name
        self.hop_seconds, self.window_seconds, self.min_window_seconds = hop_seconds, window_seconds, min_window_seconds
        self.threshold = None if threshold is None else check_threshold(threshold, "threshold")
        self.chunk_seconds = chunk_seconds
        self.precision = check_precision(precision)
        self._labels: list[_Label] = []
        self._embedder: SlidingEmbedder | None = None

    # ------------------------------------------------------------------ fitting
    def _waves(self, clips: Sequence[Any], sample_rate: int | None, what: str) -> list[torch.Tensor]:
        return read_clips(clips, self.model_.sample_rate, sample_rate=sample_rate, what=what)

    def fit(
        self,
        examples: Sequence[Any],
        labels: str | Sequence[str] | None = None,
        negatives: Sequence[Any] | None = None,
        *,
        sample_rate: int | None = None,
    ) -> "EventDetector":
        """Learn what to look for from a few examples (and optionally what not to).

        Args:
            examples (sequence of str, Path, Tensor or array): example clips: paths and/or 1-D waveforms.
            labels (str, sequence of str or None, optional): one label per example, one label for all, or
                ``None`` for all ``"target"``. Default: ``None``.
            negatives (sequence of str, Path, Tensor or array, or None, optional): clips of sounds that must
                not be found (the background, a similar sound); they raise the thresholds. Default: ``None``.
            sample_rate (int or None, optional): the rate of the waveforms among the clips (files carry their
                own). Default: ``None``.

        Returns:
            EventDetector: itself.

        Raises:
            ParameterError: no examples, a label count that does not match, or a bad waveform.
            AudioLoadError: an example or negative file that cannot be read.
        """
        examples = as_clips(examples, "examples")
        if not examples:
            raise ParameterError("examples: give at least one example clip of the sound to find")
        if labels is None or isinstance(labels, str):
            labels = [labels or DEFAULT_LABEL] * len(examples)
        elif isinstance(labels, (int, float, bytes)) or not hasattr(labels, "__iter__"):
            raise ParameterError(
                f"labels: expected a label (str), one per example, or None; got {type(labels).__name__}"
            )
        labels = [str(label) for label in labels]
        if len(labels) != len(examples):
            raise ParameterError(f"labels: {len(labels)} labels for {len(examples)} examples; give one per example")
        from ..models import resolve_model

        self.model_ = resolve_model(self.model).eval()
        waves = self._waves(examples, sample_rate, "examples")
        rate = self.model_.sample_rate
        spans = [active_span(w, rate) for w in waves]
        lengths = np.array([(stop - start) / rate for start, stop in spans])
        levels = [float(w[start:stop].double().pow(2).mean().sqrt()) for w, (start, stop) in zip(waves, spans)]
        self.quiet_level_ = float(np.median(levels)) * 10 ** (-QUIET_DB / 20)
        embeddings = self.model_.embed(waves, sample_rate=rate)
        names = sorted(set(labels))
        label_index = np.array([names.index(label) for label in labels])
        window = self.window_seconds or float(
            np.clip(
                np.median(lengths), self.min_window_seconds, max(self.min_window_seconds, self.model_.window_seconds)
            )
        )
        stored = model_info(self.model_).verification_threshold
        fallback = 0.5 if stored is None else stored
        self._labels = []
        for c, name in enumerate(names):
            own = embeddings[torch.as_tensor(label_index == c)]
            prototype = torch.nn.functional.normalize(own.mean(0), dim=0)
            self._labels.append(
                _Label(
                    name,
                    prototype,
                    typical_match(own, fallback),
                    max(MIN_EVENT_SECONDS, float(np.median(lengths[label_index == c]))),
                )
            )
        self._embedder = SlidingEmbedder(
            self.model_,
            window,
            self.hop_seconds,
            chunk_seconds=self.chunk_seconds,
            precision=self.precision,
            locate_seconds=self.locate_seconds,
        )
        negatives = None if negatives is None else as_clips(negatives, "negatives")
        if negatives:
            negative_scores = self._window_scores_of_clips(self._waves(negatives, sample_rate, "negatives"))
            for c, label in enumerate(self._labels):
                label.negative_best = float(negative_scores[:, c].max())
        return self

    def _window_scores_of_clips(self, waves: list[torch.Tensor]) -> np.ndarray:
        """Scores (windows, labels) of every window of some clips, as the recordings' windows are scored."""
        rows = [self._scores(embedding) for wave in waves for _, embedding in self._embedder.embed([wave])]
        return np.concatenate(rows)

    def _scores(self, embeddings: torch.Tensor) -> np.ndarray:
        return (embeddings @ torch.stack([label.prototype for label in self._labels]).T).numpy()

    @property
    def labels_(self) -> list[str]:
        """The labels learnt by :meth:`fit`, in score-column order."""
        self._check_fitted()
        return [label.name for label in self._labels]

    @property
    def window_seconds_(self) -> float:
        """The window length in use (chosen by :meth:`fit`)."""
        self._check_fitted()
        return self._embedder.window_seconds

    @property
    def hop_seconds_(self) -> float:
        """The step between window starts in use (``hop_seconds`` rounded to the model's frame step)."""
        self._check_fitted()
        return self._embedder.hop_seconds

    @property
    def locate_seconds_(self) -> float | None:
        """The placing windows' length in use (``locate_seconds`` rounded to whole trunk frames, at most the
        window); ``None`` when events stay at their runs' centres."""
        self._check_fitted()
        window = self._embedder.locate_window
        return None if window is None else window * self._embedder.frame_seconds

    @property
    def precision_(self) -> str:
        """The network trunk's arithmetic over recordings in use, ``"int8"`` or ``"float32"`` (``precision``
        resolved by :meth:`fit`)."""
        self._check_fitted()
        return self._embedder.precision

    @property
    def event_seconds_(self) -> list[float]:
        """Each label's expected event length: the median sounding length of its examples."""
        self._check_fitted()
        return [label.event_seconds for label in self._labels]

    def _check_fitted(self) -> None:
        if self._embedder is None:
            raise ParameterError("this EventDetector is not fitted: call fit(examples) first")

    # ------------------------------------------------------------------ scoring
    def score(self, recording: Any, *, sample_rate: int | None = None, progress=None) -> ScoreCurve:
        """Score every window of a recording against every label and set the thresholds.

        Args:
            recording (str, Path, Tensor or array): a file (streamed: any length in bounded memory) or a 1-D
                waveform.
            sample_rate (int or None, optional): the waveform's rate (a file carries its own).
                Default: ``None``.
            progress (callable or None, optional): called after each chunk with the seconds of audio it
                covered (a progress bar's ``update``). Default: ``None``.

        Returns:
            ScoreCurve: the scores and the thresholds.

        Raises:
            AudioLoadError: the file cannot be read (or turns out damaged while it is read).
            ParameterError: a bad waveform, or the detector is not fitted.
        """
        results = self.score_each([recording], sample_rate=sample_rate, progress=progress, catch=())
        try:
            return next(results)[1]
        finally:
            results.close()

    def score_each(
        self,
        recordings: Iterable[Any],
        *,
        sample_rate: int | None = None,
        progress=None,
        catch: tuple[type[BaseException], ...] = (AudioLoadError,),
    ) -> Iterator[tuple[Any, "ScoreCurve | BaseException"]]:
        """:meth:`score` of several recordings, in order, with the chunks of consecutive recordings embedded
        side by side (:meth:`audiosiam.models.SlidingEmbedder.embed_each`): a folder of short files is searched as fast
        as one long file.

        Args:
            recordings (Iterable): files and/or 1-D waveforms.
            sample_rate (int or None, optional): the waveforms' rate. Default: ``None``.
            progress (callable or None, optional): as for :meth:`score`. Default: ``None``.
            catch (tuple of exception types, optional): errors of one recording that are yielded as its
                result instead of ending the call. Default: ``(AudioLoadError,)``.

        Yields:
            (recording, ScoreCurve or exception): each recording and its curve, or the error that stopped it.

        Raises:
            ParameterError: a bad waveform, or the detector is not fitted.
        """
        self._check_fitted()
        rate = self.model_.sample_rate
        recordings = list(recordings)
        samples = [0] * len(recordings)
        frame = self._embedder.samples_per_frame
        energies: list[list[np.ndarray]] = [[] for _ in recordings]  # sums of squares per trunk frame

        def blocks_of(index: int, recording) -> Iterator[torch.Tensor]:
            if is_path(recording):
                source: Iterable[torch.Tensor] = read_blocks(recording, rate, block_seconds=self.chunk_seconds)
            else:
                wave = check_waveform(recording, sample_rate, rate, what="recording")
                if wave.numel() < MIN_RECORDING_SECONDS * rate:
                    raise ParameterError(f"recording: {_too_short(wave.numel(), rate)}")
                step = int(self.chunk_seconds * rate)
                source = (wave[i : i + step] for i in range(0, wave.numel(), step))
            tail = np.zeros(0)
            for block in source:
                samples[index] += block.numel()
                joined = np.concatenate([tail, block.double().numpy()])
                whole = joined.size // frame * frame
                energies[index].append(np.square(joined[:whole]).reshape(-1, frame).sum(1))
                tail = joined[whole:]
                yield block
            energies[index].append(np.array([np.square(tail).sum()]))
            if samples[index] < MIN_RECORDING_SECONDS * rate:  # a file: its error ends only this recording
                from ..errors import EmptyAudioError

                raise EmptyAudioError(str(recording), _too_short(samples[index], rate), "nothing to search in it")

        starts: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        locate_starts: list[np.ndarray] = []
        locate_scores: list[np.ndarray] = []
        done = 0.0
        pieces = self._embedder.embed_each((blocks_of(i, r) for i, r in enumerate(recordings)), catch=catch)
        for index, window_starts, embeddings, last, locating_window_starts, locate_embeddings in pieces:
            if isinstance(embeddings, BaseException):
                starts, scores, locate_starts, locate_scores, done = [], [], [], [], 0.0
                energies[index] = []
                yield recordings[index], embeddings
                continue
            if locating_window_starts is not None:
                locate_starts.append(locating_window_starts.numpy())
                locate_scores.append(self._scores(locate_embeddings))
            if len(window_starts):
                starts.append(window_starts.numpy())
                scores.append(self._scores(embeddings))
                if progress is not None:
                    reached = float(window_starts[-1]) + self._embedder.hop_seconds
                    progress(reached - done)
                    done = reached
            if not last:
                continue
            if progress is not None:  # the rest of the recording's length
                progress(max(0.0, samples[index] / rate - done))
            done = 0.0
            starts_all = np.concatenate(starts) if starts else np.zeros(0)
            scores_all = np.concatenate(scores) if scores else np.zeros((0, len(self._labels)))
            locate_window = self.locate_seconds_
            locating = {
                "locate_starts": None if locate_window is None else np.concatenate(locate_starts),
                "locate_scores": None if locate_window is None else np.concatenate(locate_scores),
                "locate_seconds": locate_window,
            }
            starts, scores, locate_starts, locate_scores = [], [], [], []
            yield (
                recordings[index],
                ScoreCurve(
                    file=describe_input(recordings[index]),
                    labels=self.labels_,
                    starts=starts_all,
                    scores=scores_all,
                    thresholds=self._thresholds(scores_all),
                    window_seconds=self._embedder.window_seconds,
                    hop_seconds=self._embedder.hop_seconds,
                    duration=samples[index] / rate,
                    # one flag per scored window (a foreign encoder's grid may list a start it did not score)
                    audible=self._audible(starts_all[: len(scores_all)], np.concatenate(energies[index])),
                    **locating,
                ),
            )
            energies[index] = []

    def _audible(self, starts: np.ndarray, energy: np.ndarray) -> np.ndarray:
        """(n,) whether each window's RMS reaches :attr:`quiet_level_` (from its trunk frames' energies)."""
        frame, frames = self._embedder.samples_per_frame, self._embedder.window
        total = np.concatenate([[0.0], np.cumsum(energy)])
        first = np.clip(np.rint(starts / self._embedder.frame_seconds).astype(np.int64), 0, energy.size)
        last = np.minimum(first + frames, energy.size)
        rms = np.sqrt((total[last] - total[first]) / np.maximum(1, (last - first) * frame))
        return rms >= getattr(self, "quiet_level_", 0.0)

    def _thresholds(self, scores: np.ndarray) -> np.ndarray:
        if self.threshold is not None:
            return np.full(len(self._labels), self.threshold)
        return np.array(
            [
                calibrated_threshold(
                    scores[:, c], label.typical_match, label.negative_best, background_quantile=self.background_quantile
                )
                for c, label in enumerate(self._labels)
            ]
        )

    # ------------------------------------------------------------------ events
    def events(self, curve: ScoreCurve) -> list[Event]:
        """Turn a score curve into events (step 5 of the module docstring): ``curve_events`` with the
        examples' lengths.

        Args:
            curve (ScoreCurve): from :meth:`score` (its thresholds may be changed first).

        Returns:
            list[Event]: in time order, with the curve's ``file``.
        """
        return curve_events(curve, self.event_seconds_)

    def detect(self, recording: Any, *, sample_rate: int | None = None) -> list[Event]:
        """Find the events in a recording: ``events()`` of :meth:`score`.

        Args:
            recording (str, Path, Tensor or array): a file (streamed) or a 1-D waveform.
            sample_rate (int or None, optional): the waveform's rate. Default: ``None``.

        Returns:
            list[Event]: in time order; each has ``file``, ``label``, ``start``, ``end`` (seconds) and
            ``score`` (the best cosine similarity in it).

        Raises:
            AudioLoadError: the file cannot be read.
            ParameterError: a bad waveform, or the detector is not fitted.
        """
        return self.events(self.score(recording, sample_rate=sample_rate))


def _too_short(samples: int, rate: int) -> str:
    return f"holds {samples} samples ({samples / rate:.4f} s), too short to search (at least {MIN_RECORDING_SECONDS} s)"
