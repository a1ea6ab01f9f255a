"""Long recordings in blocks (:func:`read_blocks`): constant memory, exact resampling across block seams,
FLAC decoded by two threads, each its own handle."""

from __future__ import annotations

import contextlib
import math
import os
import threading
from typing import Iterator

import numpy as np
import torch

from ..errors import (
    AudioLoadError,
    EmptyAudioError,
    InvalidAudioError,
    ParameterError,
)
from .checks import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, SILENCE_PEAK, _check_rate, _level_problem
from .decode import _MPEG_SUFFIXES, _native_stderr_silenced
from .integrity import TRUNCATION_FRACTION, _cut_off, _regular_file, _unreadable, _wav_is_truncated
from .resampling import resample


def read_blocks(
    path: str | os.PathLike,
    sample_rate: int | None = 16000,
    *,
    block_seconds: float = 60.0,
    decoders: int | None = None,
) -> Iterator[torch.Tensor]:
    """Stream a recording of any length as consecutive mono float32 blocks, in the memory of a few blocks.

    Decoding, the mono mix and the checks follow :func:`load_audio`; the blocks put together equal
    ``load_audio(path, sample_rate)`` to float rounding: each block is resampled with a little of its
    neighbours' audio on both sides, cut at sample positions where both rates meet, so the seams leave
    no trace.

    Args:
        path (str or os.PathLike): the file (WAV, FLAC, OGG/Vorbis, MP3, ...).
        sample_rate (int or None, optional): resample to this rate in Hz; ``None`` keeps the file's rate.
            Default: ``16000``.
        block_seconds (float, optional): about this many seconds per block (> 0). Default: ``60.0``.
        decoders (int or None, optional): threads decoding a FLAC file, each with its own handle on every
            ``decoders``-th block (the same samples: FLAC seeks exactly; decoding is the long part of reading a
            long FLAC file, and it parallelises). Other formats are read in this thread: a WAV block is a copy, and
            the other compressed formats' seeking has not been checked exact for every encoder. ``None``: 2
            where there are 2 cores or more, else 1. Default: ``None``.

    Yields:
        Tensor: (samples,) float32 blocks at ``sample_rate``, in order.

    Raises:
        AudioLoadError: as :func:`load_audio` (missing, unreadable, a truncated WAV header). Problems found
            while decoding are raised when the stream reaches them: NaN/Inf samples or an absurd level
            (:class:`~audiosiam.errors.InvalidAudioError`, with the time in the file), a compressed stream
            that ends far short of its header (truncated), or a file that was digital silence throughout
            (:class:`~audiosiam.errors.EmptyAudioError`, after its last block).
        ParameterError: ``block_seconds`` not positive, or an implausible ``sample_rate``.
    """
    import soundfile as sf

    if sample_rate is not None:
        sample_rate = _check_rate(sample_rate)
    if not block_seconds > 0:
        raise ParameterError(f"block_seconds={block_seconds}: must be > 0")
    path_str = _regular_file(path)
    cut = _cut_off(path_str)
    if cut is not None:
        raise AudioLoadError(path_str, cut, "copy or download the file again")
    # libmpg123's notes are silenced while it decodes, never while the caller works between blocks (that
    # would swallow the caller's own warnings and progress bars for the whole recording).
    quiet = _native_stderr_silenced if path_str.lower().endswith(_MPEG_SUFFIXES) else contextlib.nullcontext
    try:
        with quiet():
            handle = sf.SoundFile(path_str)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise _unreadable(path_str, exc) from exc
    with handle as f:
        rate = f.samplerate
        if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            raise InvalidAudioError(
                path_str, f"sample rate {rate} Hz is not plausible for a recording", "the header is probably corrupt"
            )
        if f.format in ("WAV", "WAVEX") and _wav_is_truncated(path_str):
            raise AudioLoadError(
                path_str, "truncated: the header announces more audio than the file holds", "copy it again"
            )
        target = sample_rate or rate
        # Input samples per period where both sample grids meet; blocks and context are whole periods.
        period = rate // math.gcd(rate, target)
        out_per_period = target // math.gcd(rate, target)
        block = max(1, round(block_seconds * rate / period)) * period
        context = math.ceil(256 / period) * period if target != rate else 0  # > the sinc filter's reach
        checked = not f.subtype.startswith("PCM")  # integer PCM cannot hold NaN, Inf or absurd levels
        peak, decoded = 0.0, 0
        previous = np.zeros(0, dtype=np.float32)  # the block before, kept for its tail (context)
        current = None
        if decoders is None:
            decoders = min(2, os.cpu_count() or 1)
        # Closed here, not whenever the garbage collector gets to it: its decoding threads end with it.
        with contextlib.closing(_decoded(f, path_str, block, decoders, quiet)) as stream:
            for data in stream:
                channels = data.shape[1]
                # The channels' mean as a product: numpy's mean over a short inner axis took 3.6 s per hour of
                # 48 kHz stereo here, this 0.13 s.
                mono = data[:, 0] if channels == 1 else data @ np.full(channels, 1 / channels, dtype=np.float32)
                if checked:
                    problem = _level_problem(torch.from_numpy(mono))
                    if problem and "silence" not in problem:
                        raise InvalidAudioError(
                            path_str,
                            f"{problem} (at {decoded / rate:.1f} s)",
                            "re-export it from the source at full scale 1.0",
                        )
                peak = max(peak, float(mono.max()), -float(mono.min()))  # no |x| temporary
                decoded += mono.shape[0]
                if current is not None:
                    yield _resampled_block(previous, current, mono, rate, target, context, period, out_per_period)
                    previous = current
                current = mono
        if current is not None:
            yield _resampled_block(
                previous, current, np.zeros(0, np.float32), rate, target, context, period, out_per_period
            )
        if f.seekable() and f.frames > 0 and decoded < TRUNCATION_FRACTION * f.frames:
            raise AudioLoadError(
                path_str,
                f"truncated: the header announces {f.frames} frames, only {decoded} could be decoded",
                "copy or download the file again",
            )
        if decoded == 0:
            raise EmptyAudioError(path_str, "contains no samples", "remove it or replace it with a real recording")
        if peak <= SILENCE_PEAK:
            raise EmptyAudioError(path_str, "is digital silence (all samples are zero)", "remove it or replace it")


def _decoded(f, path_str: str, block: int, decoders: int, quiet) -> Iterator[np.ndarray]:
    """The blocks of the open file ``f``, ``block`` frames each (the last shorter), as fresh (n, channels)
    float32 arrays, in order, until one comes back short (the end, or a truncation the caller measures):
    a FLAC file of more than one block from ``decoders`` threads (:func:`_decoded_in_threads`), anything
    else from ``f`` here. A stream that cannot be decoded further is an :class:`AudioLoadError` naming the
    file and the time."""
    if decoders >= 2 and f.format == "FLAC" and f.seekable() and f.frames > block:
        return _decoded_in_threads(f, path_str, block, decoders)
    return _decoded_here(f, path_str, block, quiet)


def _damaged(path_str: str, seconds: float, exc: Exception) -> AudioLoadError:
    cut = _cut_off(path_str, decode_failed=True)
    if cut is not None:
        return AudioLoadError(path_str, cut, "copy or download the file again")
    return AudioLoadError(
        path_str,
        f"damaged or truncated: decoding failed at {seconds:.1f} s ({exc})",
        "copy or download the file again",
    )


def _decoded_here(f, path_str: str, block: int, quiet) -> Iterator[np.ndarray]:
    import soundfile as sf

    done = 0
    while True:
        try:
            with quiet():  # a fresh array per read (SoundFile.blocks fills one buffer and copies it out)
                data = f.read(block, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise _damaged(path_str, done / f.samplerate, exc) from None
        if not data.shape[0]:
            return
        done += data.shape[0]
        yield data


def _decoded_in_threads(f, path_str: str, block: int, decoders: int) -> Iterator[np.ndarray]:
    """Block ``i`` decoded by one of ``decoders`` threads, each with its own handle (one handle is never
    used by two threads: libsndfile's are not thread-safe), ``decoders`` blocks ahead; FLAC seeks to the
    sample, so the blocks are those one handle reads in order."""
    from concurrent.futures import ThreadPoolExecutor

    import soundfile as sf

    count, handles, lock, own = -(-f.frames // block), [], threading.Lock(), threading.local()

    def read(index: int) -> np.ndarray:
        handle = getattr(own, "handle", None)
        if handle is None:
            handle = own.handle = sf.SoundFile(path_str)
            with lock:
                handles.append(handle)
        try:
            handle.seek(index * block)
        except (sf.LibsndfileError, RuntimeError):  # a position a truncated stream does not reach
            return np.zeros((0, f.channels), dtype=np.float32)
        return handle.read(block, dtype="float32", always_2d=True)

    pool = ThreadPoolExecutor(decoders, thread_name_prefix="audiosiam-flac-blocks")
    try:
        pending = [pool.submit(read, i) for i in range(min(count, decoders))]
        for index in range(count):
            try:
                data = pending.pop(0).result()
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise _damaged(path_str, index * block / f.samplerate, exc) from None
            if index + decoders < count:
                pending.append(pool.submit(read, index + decoders))
            if data.shape[0]:
                yield data
            if data.shape[0] < block:
                return
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for handle in handles:
            handle.close()


def _resampled_block(
    before: np.ndarray,
    block: np.ndarray,
    after: np.ndarray,
    rate: int,
    target: int,
    context: int,
    period: int,
    out_per_period: int,
) -> torch.Tensor:
    """``block`` at ``target`` Hz, resampled with up to ``context`` samples of its neighbours on each side
    (``period`` input samples make ``out_per_period`` output samples)."""
    if rate == target:
        return torch.from_numpy(np.ascontiguousarray(block))  # each block is a fresh array: no copy
    head, tail = before[len(before) - context :] if context else before[:0], after[:context]
    wave = resample(torch.from_numpy(np.concatenate([head, block, tail])), rate, target)
    start = len(head) // period * out_per_period
    length = math.ceil(len(block) * target / rate)
    return wave[start : start + length].contiguous()
