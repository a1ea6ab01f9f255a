"""Embeddings of every window of a long recording, in bounded memory and one pass of the network.

Embedding each window as a clip would run the network ``window / hop`` times over every second (8x for
1.28 s windows every 0.16 s). Instead the recording goes through the front end and the encoder's
convolutional trunk once, and each window is pooled from the trunk frames it covers
(:meth:`~audiosiam.models.encoder.ResNetEncoder.embed_windows`):

* the spectrogram is normalised frame by frame with the statistics of the window-long stretch around
  each frame (``normalize_sliding()``), which is what a window cut out and
  normalised as a clip would see;
* the trunk's frames come every ``time_stride * hop_length`` samples (80 ms for the bundled models), so
  window lengths and hops are whole numbers of those frames;
* the audio arrives in blocks and is processed in chunks of ``chunk_seconds`` with enough context on both
  sides (the trunk's receptive field and half a window) that the result does not depend on where the
  chunks fall: a recording streamed in chunks gives the windows of the whole recording processed at once,
  to float rounding (tests/models/test_sliding.py). Memory is set by ``chunk_seconds``, not by the recording;
* on the CPU, a few consecutive chunks are embedded at once, each on its share of the threads (a single
  long image scales poorly over threads: its layers are too thin to split well, where independent chunks
  are not), while the calling thread reads the next blocks.

A window differs from the same stretch embedded as a clip in one way: its trunk frames see their real
neighbours where a clip's edges see zero padding.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, NamedTuple

import torch

from .._deprecated import renamed
from ..errors import ParameterError
from .info import model_info
from .quantized import Int8Trunk, int8_available

#: The trunk's arithmetic a SlidingEmbedder can be asked for (models/quantized.py for int8).
PRECISIONS = ("auto", "int8", "float32")

# Spectrogram frames each side of a trunk frame that can reach it: the receptive field of the bundled
# architecture is 71 frames (0.71 s); kept with room for deeper configs.
_TRUNK_CONTEXT_FRAMES = 64

# Lengths beyond a week are slips, not settings (frame counts that large overflow the tensors indexing them).
MAX_SECONDS = 7 * 24 * 3600.0

# Chunks embedded at once on the CPU (at most; never more than torch's intra-op threads): enough to keep
# every core of a small machine busy, few enough that memory stays a few chunks.
_MAX_CONCURRENT_CHUNKS = 4


class SlidingEmbedder:
    """Embeds every window of long recordings for one model and one window grid.

    Args:
        model (EmbeddingModel): the model; its front end must normalise per ``"utterance"`` (every bundled
            model does). Its weights are copied now
            (:meth:`~audiosiam.models.encoder.ResNetEncoder.inference_trunk`): build a new embedder after
            training the model further.
        window_seconds (float): the wanted window length; rounded to whole trunk frames, at least one.
        hop_seconds (float): the wanted step between window starts; rounded to whole frames, at least one.
        chunk_seconds (float, optional): audio processed per forward pass; sets the memory used (about
            40 MB per minute of each chunk in flight, for the bundled models). Default: ``120.0``.
        precision (str, optional): the trunk's arithmetic, one of ``PRECISIONS``. ``"int8"``: 8-bit
            integers (``audiosiam.models.quantized``; the trunk 1.6x faster on the CPU, embeddings within
            a cosine of ~0.999 of the float ones), which needs the CPU and a checkpoint with ``info["int8_ranges"]``;
            ``"float32"``; ``"auto"``: int8 where it can run, else float32. Afterwards the attribute holds
            the one in use, ``"int8"`` or ``"float32"``. Default: ``"auto"``.
        locate_seconds (float or None, optional): also pool windows of this length (rounded to whole
            frames, at most the window) at the same starts, from the same trunk frames: a finer score curve
            for placing events within a stretch the windows found (``EventDetector``). The trunk does not run
            again; pooling and head run twice. ``None``: none. Default: ``None``.
        fine_window_seconds (float or None, optional): the old name of ``locate_seconds``, for one release.
            Default: ``None``.

    Attributes:
        frame_seconds (float): seconds per trunk frame (0.08 for the bundled models).
        window (int): frames per window.
        hop (int): frames between window starts.
        window_seconds (float): ``window * frame_seconds``, the length actually used.
        hop_seconds (float): ``hop * frame_seconds``.
        locate_window (int or None): frames per locating window (``None``: no locating grid).
        concurrent_chunks (int): chunks the last :meth:`embed` embedded at once (on the CPU, up to 4 and
            at most torch's intra-op threads, each chunk on its share of them; 1 on a GPU).
        peak_buffered_seconds (float): the most audio the last :meth:`embed` held at once (its memory
            bound: two blocks, plus ``1 + concurrent_chunks`` times ``chunk_seconds`` with a window and
            context, whatever the recording's length).

    Raises:
        ParameterError: a length not positive or over a week, a front end that does not normalise per utterance, an
            unknown ``precision``, or ``"int8"`` where it cannot run (the reason named).
    """

    def __init__(
        self,
        model,
        window_seconds: float,
        hop_seconds: float,
        *,
        chunk_seconds: float = 120.0,
        precision: str = "auto",
        locate_seconds: float | None = None,
        fine_window_seconds: float | None = None,
    ):
        if fine_window_seconds is not None:  # the old spelling, for one release
            renamed("SlidingEmbedder(fine_window_seconds=...)", "locate_seconds=...")
            locate_seconds = fine_window_seconds if locate_seconds is None else locate_seconds
        if not all(0 < s <= MAX_SECONDS for s in (window_seconds, hop_seconds, chunk_seconds)):
            raise ParameterError(
                f"window_seconds={window_seconds}, hop_seconds={hop_seconds}, chunk_seconds={chunk_seconds}: "
                f"all must be > 0 and at most {MAX_SECONDS:.0f} (a week)"
            )
        if locate_seconds is not None and not 0 < locate_seconds <= MAX_SECONDS:
            raise ParameterError(f"locate_seconds={locate_seconds}: must be > 0 (or None for no locating grid)")
        if not model.frontend.slides:
            raise ParameterError(
                f"the model's front end normalises with {getattr(model.frontend, 'normalize', None)!r}; sliding "
                "windows need 'utterance' (every bundled model and every model `audiosiam train` makes by default)"
            )
        self.model = model
        stride = model.encoder.time_stride
        self.samples_per_frame = stride * model.frontend.hop_length
        self.frame_seconds = self.samples_per_frame / model.sample_rate
        self.window = max(1, round(window_seconds / self.frame_seconds))
        self.hop = max(1, round(hop_seconds / self.frame_seconds))
        self.window_seconds = self.window * self.frame_seconds
        self.hop_seconds = self.hop * self.frame_seconds
        self.locate_window = (
            None if locate_seconds is None else min(self.window, max(1, round(locate_seconds / self.frame_seconds)))
        )
        self.chunk = max(1, round(chunk_seconds / self.frame_seconds / self.hop)) * self.hop  # starts per chunk
        self.context = math.ceil((self.window * stride / 2 + _TRUNK_CONTEXT_FRAMES) / stride)  # frames each side
        self._device = next(model.parameters()).device
        self.precision, self._trunk = _trunk(model, self._device, precision)
        self.concurrent_chunks = 1
        self.peak_buffered_seconds = 0.0

    def __repr__(self) -> str:
        return f"SlidingEmbedder(window={self.window_seconds:.2f} s, hop={self.hop_seconds:.2f} s)"

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """The log-mel spectrogram the trunk sees, each frame normalised by the statistics of its window-long
        stretch.

        Args:
            wave (Tensor): (samples,) mono float samples at ``model.sample_rate``.

        Returns:
            Tensor: (1, n_mels, frames) on the model's device.
        """
        return self.model.frontend.sliding_features(wave.to(self._device), self.window * self.model.encoder.time_stride)

    def _frames(self, wave: torch.Tensor, keep: tuple[int, int] | None = None) -> torch.Tensor:
        """(samples,) -> (C, T') trunk frames of :meth:`features`; only the trunk frames ``[keep[0], keep[1])``
        (and what the trunk needs to compute them exactly) when given: the rest of the samples served the
        normalisation."""
        features, stride = self.features(wave), self.model.encoder.time_stride
        if keep is None:
            return self._trunk(features)[0]
        # Cut at whole trunk frames, so the kept frames are those of the whole piece, not shifted.
        context = math.ceil(_TRUNK_CONTEXT_FRAMES / stride)
        cut = max(0, keep[0] - context)
        features = features[..., cut * stride : (keep[1] + context) * stride]
        return self._trunk(features)[0][:, keep[0] - cut : keep[1] - cut]

    def embed(self, blocks: Iterable[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Embed every window of one recording that arrives in blocks.

        On the CPU, consecutive chunks are embedded concurrently, each on its share of torch's intra-op
        threads (``_ordered_map``), while this thread reads the next blocks: single-image
        convolutions, FFTs and poolings scale poorly over threads (1.6x on 2 cores), chunks scale fully.

        Args:
            blocks (Iterable[Tensor]): consecutive (samples,) float pieces of one mono recording at
                ``model.sample_rate``, of any sizes (:func:`audiosiam.io.read_blocks` yields them from a file).

        Yields:
            (Tensor, Tensor): window start times in seconds (n,) float64 and their embeddings (n, D) float32
            on the CPU, in time order, one pair per chunk. A recording shorter than one window yields one
            window of its own length (so a short file is still searched); otherwise windows start every
            ``hop`` frames while they fit, and the last fraction of a hop at the very end is not covered.
        """
        for chunk in self.embed_each([blocks]):
            if len(chunk.starts):
                yield chunk.starts, chunk.embeddings

    def embed_each(
        self, recordings: Iterable[Iterable[torch.Tensor]], *, catch: tuple[type[BaseException], ...] = ()
    ) -> Iterator["WindowChunk"]:
        """Embed several recordings, one after the other, as :meth:`embed` does one: the chunks of
        consecutive recordings are embedded side by side too, so a folder of short files (one chunk each)
        keeps every core busy.

        On the CPU with chunks side by side, the calling thread's torch ops run on one thread until the
        iteration ends (or the generator is closed): the workers have the cores, and this thread reads.

        Args:
            recordings (Iterable[Iterable[Tensor]]): the blocks of each recording.
            catch (tuple of exception types, optional): errors raised while a recording's blocks are read
                that end that recording, not the call (unreadable files among many). Default: ``()``.

        Yields:
            WindowChunk: per chunk in order, ``(index, starts, embeddings, last, locate_starts,
            locate_embeddings)``: the windows as :meth:`embed` yields them, ``index`` the recording's position,
            ``last`` true for its final chunk, and the locating grid's windows (``None`` without one). A
            recording without samples yields one empty chunk. A recording whose reading raised an error of
            ``catch`` ends with a chunk whose ``embeddings`` is the error (``starts`` empty, ``last`` true;
            its earlier chunks are not complete).
        """
        workers = min(_MAX_CONCURRENT_CHUNKS, torch.get_num_threads()) if self._device.type == "cpu" else 1
        self.concurrent_chunks, self.peak_buffered_seconds = workers, 0.0
        recent = deque(maxlen=workers)  # samples of the chunks that may still be in flight

        def jobs() -> Iterator[tuple[int, _Chunk | BaseException | None]]:
            for index, blocks in enumerate(recordings):
                any_last = False
                try:
                    for chunk in self._chunks(blocks, recent):
                        any_last = chunk.last
                        yield index, chunk
                except catch as exc:
                    yield index, exc
                    continue
                if not any_last:  # no samples at all
                    yield index, None

        def work(job) -> WindowChunk:
            index, item = job
            if isinstance(item, _Chunk):
                starts, embeddings, locate_starts, locate_embeddings = self._embed_chunk(item)
                return WindowChunk(index, starts, embeddings, item.last, locate_starts, locate_embeddings)
            empty, no_windows = torch.zeros(0, dtype=torch.float64), torch.zeros(0, self.model.embedding_dim)
            if item is not None:
                return WindowChunk(index, empty, item, True)
            locate = (empty, no_windows) if self.locate_window else (None, None)
            return WindowChunk(index, empty, no_windows, True, *locate)

        yield from _ordered_map(work, jobs(), workers)

    def _chunks(self, blocks: Iterable[torch.Tensor], recent: deque) -> Iterator[_Chunk]:
        """Cut the recording into the chunks :meth:`_embed_chunk` takes, holding only the samples that the
        next chunk needs (and the chunks before it that may still be embedded: their sizes in ``recent``)."""
        encoder, step = self.model.encoder, self.samples_per_frame
        held = _Samples()
        first = 0  # the first window start (in frames) not produced yet
        pending, exhausted = iter(blocks), False
        while True:
            # Samples needed for the windows starting in [first, first + chunk), with context both sides.
            need_end = (first + self.chunk - 1 + self.window + self.context) * step
            while not exhausted and held.end < need_end:
                block = next(pending, None)
                if block is None:
                    exhausted = True
                else:
                    held.append(torch.as_tensor(block, dtype=torch.float32).reshape(-1))
            in_memory = held.count + sum(recent)
            self.peak_buffered_seconds = max(self.peak_buffered_seconds, in_memory / self.model.sample_rate)
            if held.end == 0:
                return
            frames_total = math.ceil((1 + held.end // self.model.frontend.hop_length) / encoder.time_stride)
            if exhausted and frames_total < self.window:  # shorter than one window: embed it whole
                yield _Chunk(torch.zeros(1, dtype=torch.float64), held.take(0, held.end), 0, None, True)
                return
            last_start = frames_total - self.window if exhausted else first + self.chunk - 1
            starts_end = min(first + self.chunk, last_start + 1)
            if starts_end <= first:
                return
            piece_first = max(0, first - self.context)  # in frames
            piece = held.take(piece_first * step, need_end)
            starts = torch.arange(first, starts_end, self.hop, dtype=torch.float64) * self.frame_seconds
            recent.append(piece.numel())
            last = exhausted and starts_end > last_start
            yield _Chunk(starts, piece, first - piece_first, (starts_end - 1 - first) + self.window, last)
            first = starts_end
            if last:
                return
            held.drop_before(max(0, first - self.context) * step)  # what no later chunk needs

    def _embed_chunk(
        self, chunk: _Chunk
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(window starts, embeddings, locating starts, locating embeddings) of one chunk: its windows, or the whole
        piece as one window; the locating grid ``None`` without one."""
        encoder, locate = self.model.encoder, self.locate_window
        with torch.inference_mode():
            if chunk.frames is None:
                frames = self._frames(chunk.samples)
                embeddings = encoder.embed_frames(frames[None]).float().cpu()
                if locate is None:
                    return chunk.starts, embeddings, None, None
                if frames.shape[1] < locate:  # shorter than a locating window too: the one window serves
                    return chunk.starts, embeddings, chunk.starts, embeddings
                locate_embeddings = encoder.embed_windows(frames, locate, self.hop).float().cpu()
                starts = torch.arange(len(locate_embeddings), dtype=torch.float64) * self.hop_seconds
                return chunk.starts, embeddings, starts, locate_embeddings
            span = self._frames(chunk.samples, (chunk.offset, chunk.offset + chunk.frames))
            if locate is None:
                return chunk.starts, encoder.embed_windows(span, self.window, self.hop).float().cpu(), None, None
            # Locating windows start where the chunk's windows start, pooled with them (the attention and sums shared).
            embeddings, locate_embeddings = encoder.embed_windows_of(span, (self.window, locate), self.hop)
            locate_embeddings = locate_embeddings[: len(chunk.starts)]
            return chunk.starts, embeddings.float().cpu(), chunk.starts, locate_embeddings.float().cpu()


def check_precision(precision: str) -> str:
    """Check a precision's name.

    Args:
        precision (str): the name asked for.

    Returns:
        str: ``precision``, one of ``PRECISIONS``.

    Raises:
        ParameterError: another name (the message lists them).
    """
    if precision not in PRECISIONS:
        raise ParameterError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
    return precision


def _trunk(model, device: torch.device, precision: str) -> tuple[str, torch.nn.Module]:
    """The trunk :class:`SlidingEmbedder` runs for ``precision``, and the precision it has."""
    check_precision(precision)
    why_not = _why_not_int8(model, device)
    if precision == "int8" and why_not:
        raise ParameterError(f"precision='int8': {why_not}; use precision='float32'")
    if precision == "float32" or why_not:
        return "float32", model.encoder.inference_trunk().to(device)
    return "int8", Int8Trunk(model.encoder, model_info(model).int8_ranges)


def _why_not_int8(model, device: torch.device) -> str | None:
    """Why the int8 trunk cannot run for ``model`` on ``device``; ``None`` when it can."""
    if device.type != "cpu":
        return f"the model is on {device.type}; int8 runs on the CPU"
    if model_info(model).int8_ranges is None:
        return (
            "the checkpoint has no int8 ranges (info['int8_ranges']; `audiosiam train` writes them, and "
            "audiosiam.models.int8_ranges.fit_int8_ranges measures them for an older checkpoint)"
        )
    if not int8_available():
        return "this torch build has no oneDNN integer kernels"
    return None


class _Samples:
    """The recording's samples held, as the blocks they arrived in: a chunk is copied out once, from the
    blocks it spans (gluing every block onto one buffer copied the held audio again per block)."""

    def __init__(self):
        self._blocks: deque[torch.Tensor] = deque()
        self.start = 0  # global index of the first sample held
        self.count = 0  # samples held

    @property
    def end(self) -> int:
        return self.start + self.count

    def append(self, block: torch.Tensor) -> None:
        self._blocks.append(block)
        self.count += block.numel()

    def take(self, begin: int, end: int) -> torch.Tensor:
        """Samples ``[begin, end)`` (cut to those held), a view when they lie in one block."""
        parts, offset = [], self.start
        for block in self._blocks:
            lo, hi = max(begin, offset), min(end, offset + block.numel())
            if lo < hi:
                parts.append(block[lo - offset : hi - offset])
            offset += block.numel()
        return parts[0] if len(parts) == 1 else torch.cat(parts) if parts else torch.empty(0)

    def drop_before(self, index: int) -> None:
        """Forget the blocks that end at or before ``index``."""
        while self._blocks and self.start + self._blocks[0].numel() <= index:
            block = self._blocks.popleft()
            self.start += block.numel()
            self.count -= block.numel()


class WindowChunk(NamedTuple):
    """One chunk of windows of one recording (:meth:`SlidingEmbedder.embed_each`).

    Attributes:
        index (int): the recording's position among those embedded.
        starts (Tensor): (n,) float64 window start times in seconds.
        embeddings (Tensor or BaseException): (n, D) float32 embeddings on the CPU, or the error that ended
            the recording.
        last (bool): the recording's final chunk.
        locate_starts (Tensor or None): (m,) start times of the locating windows: ``starts``, except for a
            recording shorter than one window (its one window holds locating windows every hop); ``None``
            without a locating grid.
        locate_embeddings (Tensor or None): (m, D) their embeddings.
    """

    index: int
    starts: torch.Tensor
    embeddings: torch.Tensor | BaseException
    last: bool
    locate_starts: torch.Tensor | None = None
    locate_embeddings: torch.Tensor | None = None


class _Chunk(NamedTuple):
    """A stretch of samples to embed: ``frames`` trunk frames from ``offset`` hold the windows starting at
    ``starts``; ``frames=None``: the whole recording, shorter than a window, is one window."""

    starts: torch.Tensor
    samples: torch.Tensor
    offset: int
    frames: int | None
    last: bool  # the recording's final chunk


def _ordered_map(fn: Callable, jobs: Iterator, workers: int) -> Iterator:
    """``map(fn, jobs)`` with up to ``workers`` jobs running at once in threads, each thread using an equal
    share of torch's intra-op threads; results in order. The next job is taken from ``jobs`` while the
    running ones compute (for :class:`SlidingEmbedder`, reading and decoding the next blocks), on one torch
    thread of this thread's own, and a lone job runs here on all the threads. This thread's torch thread
    count is restored at the end."""
    ahead = list(itertools.islice(jobs, 2))
    if len(ahead) < 2 or workers < 2:
        yield from map(fn, itertools.chain(ahead, jobs))
        return
    threads = torch.get_num_threads()
    pool = ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(max(1, threads // workers),))
    try:
        running = deque(pool.submit(fn, job) for job in ahead)
        # This thread now reads and decodes (and its caller scores the results) while the workers take the
        # cores: its own torch ops (resampling) on every thread only contended with them (an hour of WAV:
        # 2.7-2.8 -> 2.3-2.5 s, of 48 kHz FLAC 8.2 -> 7.6 s).
        torch.set_num_threads(1)
        for job in jobs:  # read while the workers compute
            done = running.popleft().result() if len(running) >= workers else None
            running.append(pool.submit(fn, job))  # before the caller gets a result and works on it
            if done is not None:
                yield done
        while running:
            yield running.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        # torch.set_num_threads in a worker also sets the count that threads started later inherit.
        torch.set_num_threads(threads)
