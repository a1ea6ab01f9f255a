"""Reading audio files into checked, mono, resampled waveforms, and fitting them to a length.

Policies (documented once, used everywhere):

* **Decoding** uses ``soundfile`` (libsndfile: WAV, FLAC, OGG/Vorbis, MP3, AIFF, ...). torchaudio's own
  loader would need FFmpeg through torchcodec, which audiosiam does not depend on.
* **Mono**: channels are averaged. Averaging keeps a centred source at its level and never clips.
* **Resampling**: ``torchaudio.functional.resample`` (windowed sinc) to the requested rate.
* **Checks**: a missing, unreadable, truncated, empty, silent or non-finite file, one at an absurd level
  (a peak above :data:`MAX_PEAK`, 60 dB over full scale: a float file written in the wrong units, whose
  spectrum would overflow float32), or one with an absurd sample rate, raises an
  :class:`~audiosiam.errors.AudioLoadError` subclass naming the path, the problem and what to do.
  Waveforms given to the API pass the same checks in :func:`check_waveform` (one helper, one policy),
  raising :class:`~audiosiam.errors.ParameterError`. Silence is judged after the mono mix, so a stereo
  file whose channels cancel is refused too. A garbage embedding is never produced silently.
* **Length**: :func:`fix_length` pads short clips with zeros and crops long ones (random crop for
  training, centre crop for evaluation); :func:`sliding_windows` cuts long clips into overlapping windows
  for embedding, whose embeddings are then pooled.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import struct
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np
import torch

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

from .errors import (
    AudioLoadError,
    EmptyAudioError,
    InvalidAudioError,
    NoAudioFilesError,
    NotRegularFileError,
    ParameterError,
)
from .files import as_path, atomic_write_together, finish_interrupted_commit, not_a_regular_file, spreadsheet_safe

__all__ = [
    "AUDIO_EXTENSIONS",
    "MIN_SAMPLE_RATE",
    "MAX_SAMPLE_RATE",
    "MAX_PEAK",
    "load_audio",
    "find_audio_files",
    "fix_length",
    "sliding_windows",
    "resample",
    "load_many",
    "check_waveform",
    "read_blocks",
    "audio_duration",
    "decoded_bytes",
    "active_span",
    "write_embeddings",
    "read_embeddings",
]

#: The file suffixes taken for audio when a folder is searched for clips.
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".caf", ".w64", ".rf64"}
)
#: The lowest sample rate accepted: below it a rate is a broken header, not a recording.
MIN_SAMPLE_RATE = 1_000
#: The highest sample rate accepted: above it a rate is a broken header, not a recording.
MAX_SAMPLE_RATE = 768_000
# Samples whose magnitude never exceeds this are digital silence (16-bit quantisation step is 3e-5).
SILENCE_PEAK = 1e-6
#: The highest peak accepted. Full scale is 1; a float recording peaking 60 dB above it is in the wrong units,
#: not loud (such levels turn embeddings into NaN).
MAX_PEAK = 1000.0


def _level_problem(wave: torch.Tensor) -> str | None:
    """What is wrong with a waveform's samples (no samples, NaN/Inf, silence, absurd level), or None."""
    if wave.numel() == 0:
        return "contains no samples"
    peak = float(wave.abs().max())
    if not math.isfinite(peak):
        return "contains NaN or infinite samples"
    if peak <= SILENCE_PEAK:
        return "is digital silence (all samples are zero)"
    if peak > MAX_PEAK:
        return f"has samples up to {peak:.3g}, {20 * math.log10(peak):.0f} dB above full scale (1.0)"
    return None


def check_waveform(
    wave, sample_rate: int | None = None, target_rate: int | None = None, *, what: str = "waveform"
) -> torch.Tensor:
    """The one check of a waveform given as data: a (time,) float32 tensor, resampled to ``target_rate``.

    Args:
        wave (Tensor or array_like): a 1-D (time,) tensor or array of samples (full scale 1.0); any float or
            integer dtype, converted to float32 without rescaling.
        sample_rate (int or None, optional): its rate in Hz; required (and checked to lie between
            :data:`MIN_SAMPLE_RATE` and :data:`MAX_SAMPLE_RATE`) when ``target_rate`` is given, ignored
            otherwise. Default: ``None``.
        target_rate (int or None, optional): resample to this rate in Hz; ``None`` keeps the samples as they
            are. Default: ``None``.
        what (str, optional): how the message names it (e.g. ``"X[3]"``). Default: ``"waveform"``.

    Returns:
        Tensor: (time,) float32, at ``target_rate`` when one is given.

    Raises:
        ParameterError: not numbers (text, ``None``, objects, booleans, complex numbers), not 1-D, no samples,
            NaN/Inf, digital silence, a peak above :data:`MAX_PEAK`, or no (or an implausible) ``sample_rate``
            where one is needed.
    """
    if not torch.is_tensor(wave):
        try:
            array = np.asarray(wave)
        except (TypeError, ValueError):  # ragged nested lists
            array = np.asarray(None)
        if array.dtype.kind not in "iuf":  # None, text, bytes, objects, bools, complex numbers
            raise ParameterError(f"{what}: expected a path or a 1-D waveform of numbers, got {_described(wave, array)}")
        wave = torch.from_numpy(array if array.flags.c_contiguous else array.copy())
    elif wave.is_complex() or wave.dtype == torch.bool:
        raise ParameterError(f"{what}: expected a 1-D waveform of real numbers, got a {wave.dtype} tensor")
    wave = wave.to(torch.float32)
    if wave.ndim != 1:
        raise ParameterError(f"{what}: expected a 1-D (time,) signal, got shape {tuple(wave.shape)}")
    problem = _level_problem(wave)
    if problem:
        hint = "scale it to full scale 1.0" if "above full scale" in problem else "pass a real recording"
        raise ParameterError(f"{what}: {problem} ({hint})")
    if target_rate is not None:
        if sample_rate is None:
            raise ParameterError(f"{what}: sample_rate is required when embedding waveforms (tensors or arrays)")
        wave = resample(wave, _check_rate(sample_rate), int(target_rate))
    return wave


def _described(value, array: np.ndarray) -> str:
    """What a value that is no waveform is, for a message: ``None``, ``a str``, ``a list of str``."""
    if value is None:
        return "None"
    if isinstance(value, (list, tuple)) and value:
        return f"a {type(value).__name__} of {type(value[0]).__name__}"
    if isinstance(value, np.ndarray):
        return f"an array of {value.dtype}"
    return f"a {type(value).__name__}"


def _check_rate(rate: int, what: str = "sample_rate") -> int:
    if (
        not isinstance(rate, (int, np.integer))
        or isinstance(rate, bool)
        or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE
    ):
        raise ParameterError(f"{what}={rate!r}: expected an integer between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz")
    return int(rate)


def _wav_is_truncated(path: str) -> bool:
    """True when a RIFF/WAVE file declares more sample data than it holds.

    libsndfile quietly reads what is there, so a half-copied WAV would otherwise pass as a shorter clip.
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            header = handle.read(12)
            if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
                return False
            while True:
                chunk = handle.read(8)
                if len(chunk) < 8:
                    return False
                chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if chunk_id == b"data":
                    # 0 and 0xFFFFFFFF mean "size unknown" (streamed writers); not a truncation.
                    return chunk_size not in (0, 0xFFFFFFFF) and handle.tell() + chunk_size > size
                handle.seek(chunk_size + (chunk_size & 1), os.SEEK_CUR)
    except OSError:
        return False


def resample(waveform: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Resample (..., time) from ``orig_rate`` to ``new_rate`` Hz (identity when equal).

    Uses torchaudio's windowed-sinc filter (``torchaudio.functional.resample``), imported only when a
    resampling is needed, applied faster where its convolution wastes work, with the same result: for
    ratios with few output phases (48 kHz -> 16 kHz) several steps at once (``_apply_grouped``), for
    ratios with many (44.1 kHz -> 16 kHz) each band of phases over the taps it does not zero
    (``_apply_banded``).

    Args:
        waveform (Tensor): (..., time) float samples; every leading axis is resampled alike.
        orig_rate (int): the rate of ``waveform`` in Hz.
        new_rate (int): the wanted rate in Hz.

    Returns:
        Tensor: (..., new_time), about ``time * new_rate / orig_rate`` samples; ``waveform`` itself (not a
        copy) when the rates are equal.
    """
    if orig_rate == new_rate:
        return waveform
    import torchaudio.functional as AF

    orig_rate, new_rate = int(orig_rate), int(new_rate)
    if not waveform.is_floating_point():
        return AF.resample(waveform, orig_rate, new_rate)  # its own error for integer samples
    grouped = _grouped_filter(orig_rate, new_rate, waveform.dtype)
    if grouped is not None:
        return _apply_grouped(waveform, *grouped)
    banded = _banded_filter(orig_rate, new_rate, waveform.dtype)
    if banded is not None:
        return _apply_banded(waveform, *banded)
    return AF.resample(waveform, orig_rate, new_rate)


# torchaudio resamples as one convolution with a filter per output phase (``new / gcd`` of them) and a
# stride of ``orig / gcd``. With few phases (48 kHz -> 16 kHz: one) that convolution has one or two output
# channels, which oneDNN runs far below its speed on wide layers. ``_apply_grouped`` applies the same
# filters to ``group`` consecutive steps at once, about this many output channels, so that the convolution
# is wide enough for its fast path (8-16 measured best; timings in benchmarks/RESULTS.md, front end).
_OUTPUTS_PER_STEP = 16


def _sinc_kernel(orig_rate: int, new_rate: int, dtype: torch.dtype):
    """torchaudio's own resampling filters ``(kernel (up, 1, taps), width)``, or ``None`` for a torchaudio
    without its filter function (then its own, slower path runs)."""
    try:
        from torchaudio.functional.functional import _get_sinc_resample_kernel
    except ImportError:  # pragma: no cover - a torchaudio without it
        return None
    return _get_sinc_resample_kernel(orig_rate, new_rate, math.gcd(orig_rate, new_rate), dtype=dtype)


def _phases(orig_rate: int, new_rate: int) -> tuple[int, int]:
    """``(down, up)``: input samples per output period and output samples (phases) per period."""
    gcd = math.gcd(orig_rate, new_rate)
    return orig_rate // gcd, new_rate // gcd


@functools.lru_cache(maxsize=16)
def _grouped_filter(orig_rate: int, new_rate: int, dtype: torch.dtype):
    """``(filters, width, down, up, group)`` for :func:`_apply_grouped`, built once per ratio and dtype
    (read_blocks and load_audio resample block after block, clip after clip); ``None`` where torchaudio's
    own path is as fast (many phases) or its filter function is missing."""
    down, up = _phases(orig_rate, new_rate)
    group = _OUTPUTS_PER_STEP // up
    sinc = _sinc_kernel(orig_rate, new_rate, dtype) if group >= 2 else None
    if sinc is None:
        return None
    kernel, width = sinc
    taps = kernel.shape[-1]
    filters = kernel.new_zeros(group, up, taps + down * (group - 1))
    for g in range(group):  # step g of a group: the filters shifted by g strides
        filters[g, :, g * down : g * down + taps] = kernel[:, 0]
    return filters.reshape(group * up, 1, -1), width, down, up, group


def _apply_grouped(
    waveform: torch.Tensor, filters: torch.Tensor, width: int, down: int, up: int, group: int
) -> torch.Tensor:
    """torchaudio's resampling convolution (its filters (up, 1, K), stride ``down``, the input padded by
    ``width`` and ``width + down``) with ``group`` strides per output step: the filters of ``group``
    consecutive steps side by side (:func:`_grouped_filter`). The same sums of the same products."""
    shape = waveform.shape
    flat = waveform.reshape(-1, shape[-1])
    # Extra zeros at the end so that the last grouped step still covers every step torchaudio computes.
    padded = torch.nn.functional.pad(flat, (width, width + down + down * (group - 1)))
    out = torch.nn.functional.conv1d(padded[:, None], filters.to(flat.device), stride=down * group)
    out = out.transpose(1, 2).reshape(flat.shape[0], -1)  # step-major, then group, then phase
    length = math.ceil(up * shape[-1] / down)
    return out[:, :length].reshape(*shape[:-1], length)


# With many output phases (44.1 -> 16 kHz: 160), each of torchaudio's filters spans all 2 * width + orig
# taps, but its window zeroes all but ~2 * width of them (34 of 475 for 44.1 -> 16 kHz; the rest are below
# 1e-23): 14x the products needed. ``_apply_banded`` convolves each band of this many consecutive phases
# over only the taps that band does not zero (75 for 44.1 -> 16 kHz): 6x fewer products.
_PHASES_PER_BAND = 16


@functools.lru_cache(maxsize=16)
def _banded_filter(orig_rate: int, new_rate: int, dtype: torch.dtype):
    """``(bands, width, down, up, taps)`` for :func:`_apply_banded`, ``bands`` a tuple of ``(first tap,
    filters (span, phases))`` in phase order; ``None`` where banding would not save half the products or
    torchaudio's filter function is missing."""
    down, up = _phases(orig_rate, new_rate)
    sinc = _sinc_kernel(orig_rate, new_rate, dtype) if up >= 2 * _PHASES_PER_BAND else None
    if sinc is None:
        return None
    kernel, width = sinc[0][:, 0], sinc[1]
    taps = kernel.shape[-1]
    # The window's zeros come out of its cos^2 at the clamp as ~1e-24 of the peak tap, not as 0: taps that
    # small change no sum by a float32 (or float64) rounding step.
    live = kernel.abs() > 1e-18 * kernel.abs().max()
    bands, products = [], 0
    for first in range(0, up, _PHASES_PER_BAND):
        rows = live[first : first + _PHASES_PER_BAND].any(dim=0).nonzero()
        lo, hi = (int(rows.min()), int(rows.max()) + 1) if len(rows) else (0, 1)
        bands.append((lo, kernel[first : first + _PHASES_PER_BAND, lo:hi].T.contiguous()))  # (span, phases)
        products += bands[-1][1].numel()
    if 2 * products > up * taps:
        return None
    return tuple(bands), width, down, up, taps


def _apply_banded(waveform: torch.Tensor, bands: tuple, width: int, down: int, up: int, taps: int) -> torch.Tensor:
    """torchaudio's resampling convolution (filters (up, 1, taps), stride ``down``, the input padded by
    ``width`` and ``width + down``), each band of phases over its live taps only (:func:`_banded_filter`):
    the same sums without the products by zero. Each band is one matrix product of the filters with a
    strided view of the input (a row per output step, ``down`` samples apart; no copy): a convolution
    with so long a stride ran no faster than torchaudio's."""
    shape = waveform.shape
    flat = waveform.reshape(-1, shape[-1])
    padded = torch.nn.functional.pad(flat, (width, width + down))
    batch, padded_length = padded.shape
    steps = (padded_length - taps) // down + 1  # torchaudio's output steps
    out = padded.new_empty(batch, steps, up)
    bands = [(lo, filters.to(flat.device)) for lo, filters in bands]
    for row in range(batch):  # 2-D products: a batched product would copy the strided view first
        phase = 0
        for lo, filters in bands:
            view = padded[row].as_strided((steps, filters.shape[0]), (down, 1), padded[row].storage_offset() + lo)
            torch.mm(view, filters, out=out[row, :, phase : phase + filters.shape[1]])
            phase += filters.shape[1]
    length = math.ceil(up * shape[-1] / down)
    return out.reshape(batch, -1)[:, :length].reshape(*shape[:-1], length)


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = 16000,
    *,
    mono: bool = True,
    normalize: str | None = None,
    trim_silence: bool = False,
    trim_db: float = 40.0,
) -> torch.Tensor:
    """Read an audio file into a checked float32 waveform.

    Args:
        path (str or os.PathLike): the file (WAV, FLAC, OGG/Vorbis, MP3, ...).
        sample_rate (int or None, optional): resample to this rate in Hz (1 kHz - 768 kHz); ``None`` keeps
            the file's rate. Default: ``16000``.
        mono (bool, optional): average the channels (see the module policies). With ``False`` the result is
            (channels, time), also for a one-channel file. Default: ``True``.
        normalize (str or None, optional): ``None`` keeps the level; ``"peak"`` scales the peak to 1;
            ``"loudness"`` scales the RMS to -20 dBFS (a simple level match, not ITU-R BS.1770 loudness).
            Applied last, after resampling and trimming. Default: ``None``.
        trim_silence (bool, optional): cut leading and trailing parts quieter than ``trim_db`` below the peak
            (25 ms frames, judged on the mean of the channels). Default: ``False``.
        trim_db (float, optional): the trimming threshold in dB below the peak; used only with
            ``trim_silence``. Default: ``40.0``.

    Returns:
        Tensor: (time,) float32 when ``mono``, else (channels, time).

    Raises:
        AudioLoadError: missing file, a folder, unreadable or not audio, truncated.
        EmptyAudioError: an empty (0-byte) file, no samples, or digital silence.
        InvalidAudioError: NaN/Inf samples, a peak above :data:`MAX_PEAK`, or a sample rate outside
            1 kHz - 768 kHz.
        ParameterError: ``sample_rate`` outside 1 kHz - 768 kHz or not an integer, or an unknown ``normalize``.

    Example:
        >>> wave = load_audio("dog.wav")            # 16 kHz mono float32
        >>> wave.shape
        torch.Size([23040])
    """
    import soundfile as sf

    if sample_rate is not None:
        sample_rate = _check_rate(sample_rate)
    if normalize not in (None, "peak", "loudness"):
        raise ParameterError(f"normalize={normalize!r}: expected None, 'peak' or 'loudness'")
    path_str = _regular_file(path)
    cut = _cut_off(path_str)
    if cut is not None:
        raise AudioLoadError(path_str, cut, "copy or download the file again")
    try:
        data, file_rate, container, subtype = _read_float32(path_str)
    except _Truncated as exc:
        raise AudioLoadError(path_str, str(exc), "copy or download the file again") from None
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise _unreadable(path_str, exc) from exc
    if container in ("WAV", "WAVEX") and _wav_is_truncated(path_str):
        raise AudioLoadError(
            path_str,
            "truncated: the header announces more audio than the file holds",
            "copy or download the file again",
        )
    if not MIN_SAMPLE_RATE <= file_rate <= MAX_SAMPLE_RATE:
        raise InvalidAudioError(
            path_str,
            f"sample rate {file_rate} Hz is not plausible for a recording",
            "the header is probably corrupt; re-export the file",
        )
    if data.shape[0] == 0:
        raise EmptyAudioError(path_str, "contains no samples", "remove it or replace it with a real recording")
    if data.shape[1] == 1:  # (frames, 1): its one column is already contiguous
        wave = torch.from_numpy(data[:, 0]) if mono else torch.from_numpy(data.T)
    else:
        wave = torch.from_numpy(np.ascontiguousarray(data.T))  # (channels, time)
        if mono:
            wave = wave.mean(dim=0)
    # Checked after the mono mix, so channels that cancel (L = -R) are silence too. Integer PCM decodes
    # to [-1, 1) by construction: only float and compressed data can hold NaN/Inf or absurd levels.
    problem = (
        _level_problem(wave)
        if not subtype.startswith("PCM")
        else ("is digital silence (all samples are zero)" if float(wave.abs().max()) <= SILENCE_PEAK else None)
    )
    if problem:
        error = EmptyAudioError if "silence" in problem else InvalidAudioError
        raise error(
            path_str,
            problem,
            "remove it or replace it" if error is EmptyAudioError else "re-export it from the source at full scale 1.0",
        )
    if sample_rate is not None:
        wave = resample(wave, int(file_rate), sample_rate)
    if trim_silence:
        start, stop = active_span(wave, sample_rate or file_rate, floor_db=trim_db, frame_seconds=0.025)
        wave = wave[..., start:stop]
    if normalize == "peak":
        wave = wave / wave.abs().max().clamp_min(SILENCE_PEAK)
    elif normalize == "loudness":
        rms = wave.pow(2).mean().sqrt().clamp_min(SILENCE_PEAK)
        wave = wave * (10 ** (-20 / 20) / rms)
    return wave.contiguous()


def _header(path: str | os.PathLike):
    """soundfile's reading of a file's header (nothing decoded); a bad file is an AudioLoadError."""
    import soundfile as sf

    path_str = _regular_file(path)
    try:
        return sf.info(path_str)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise _unreadable(path_str, exc) from exc


def audio_duration(path: str | os.PathLike) -> float:
    """A file's length in seconds from its header (nothing decoded).

    Args:
        path (str or os.PathLike): the file.

    Returns:
        float: the duration the header announces (0.0 where it announces none, e.g. a stream).

    Raises:
        AudioLoadError: missing, a folder, empty or unreadable (as :func:`load_audio` words it).
    """
    info = _header(path)
    return max(0, info.frames) / info.samplerate if info.samplerate > 0 else 0.0


def decoded_bytes(path: str | os.PathLike) -> int:
    """How much memory a file takes decoded whole, from its header (nothing decoded): frames x channels x 4
    bytes of float32, what :func:`load_audio` holds before the mono mix.

    Args:
        path (str or os.PathLike): the file.

    Returns:
        int: the bytes, or -1 where the header announces no length (a stream).

    Raises:
        AudioLoadError: missing, a folder, empty or unreadable (as :func:`load_audio` words it).
    """
    info = _header(path)
    return info.frames * info.channels * 4 if 0 < info.frames < 2**62 else -1


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


_IRREGULAR_HINTS = {
    "missing": "check the path and that the file was copied completely",
    "folder": "pass the files inside it, or a folder where a folder is expected",
    "special": "give the audio file itself: a pipe or a device may block forever or never end",
    "unreachable": "fix the link or the permissions of the folders on its path",
}


def _irregular(path_str: str) -> AudioLoadError | None:
    """The error for a path that names no regular file (missing, a folder, a FIFO, a device, a link loop)."""
    found = not_a_regular_file(path_str)
    if found is None:
        return None
    kind, words = found
    return (NotRegularFileError if kind == "special" else AudioLoadError)(path_str, words, _IRREGULAR_HINTS[kind])


def _regular_file(path: str | os.PathLike) -> str:
    """``path`` as a string once it is known to name a regular file: the one check every reader makes before
    opening (opening a FIFO blocks until a writer comes, reading a device never ends).

    Raises:
        AudioLoadError: missing, a folder, a link loop; :class:`~audiosiam.errors.NotRegularFileError` for a
            pipe, device or socket, also behind symbolic links.
        ParameterError: not a path at all (a number, ``None``).
    """
    path_str = as_path(path)
    error = _irregular(path_str)
    if error is not None:
        raise error
    return path_str


def _unreadable(path_str: str, exc: Exception) -> AudioLoadError:
    """The error for a file libsndfile could not open: gone since it was checked, empty, or not audio."""
    error = _irregular(path_str)
    if error is not None:
        return error
    if os.path.getsize(path_str) == 0:
        return EmptyAudioError(path_str, "is an empty file (0 bytes)", "copy or export it again")
    cut = _cut_off(path_str, decode_failed=True)
    if cut is not None:
        return AudioLoadError(path_str, cut, "copy or download the file again")
    detail = str(exc).replace(f"Error opening {path_str!r}: ", "").strip().rstrip(".")  # the path is said once
    if "does not exist or is not a regular file" in detail:  # libsndfile's words for content it cannot parse
        detail = "its content is damaged or in no format libsndfile knows"
    return AudioLoadError(
        path_str,
        f"not a readable audio file ({detail})",
        "supported: WAV, FLAC, OGG/Vorbis, MP3, AIFF; re-export or convert it (e.g. with sox or ffmpeg)",
    )


def _cut_off(path_str: str, decode_failed: bool = False) -> str | None:
    """How an Ogg or FLAC file shows it was cut off, from its container (``None``: it does not, or it is
    neither). Ogg: its last page is cut, or lacks the end-of-stream flag every complete Ogg stream ends with
    (libsndfile decodes such a file as a shorter clip). FLAC (asked once decoding failed, ``decode_failed``):
    its last frame starts short of the length its STREAMINFO announces, or is incomplete (its CRC-16)."""
    try:
        with open(path_str, "rb") as handle:
            magic = handle.read(4)
            if magic == b"OggS":
                return _ogg_cut_off(handle)
            if magic == b"fLaC" and decode_failed:
                return _flac_cut_off(handle)
    except OSError:
        pass
    return None


def _ogg_cut_off(handle) -> str | None:
    size = handle.seek(0, os.SEEK_END)
    start = max(0, size - 65_307 - 27)  # the longest Ogg page, so the tail holds the last page's start
    handle.seek(start)
    tail = handle.read()
    at = len(tail)
    while (at := tail.rfind(b"OggS", 0, at)) >= 0:
        if at + 27 > len(tail) or tail[at + 4] != 0 or tail[at + 5] > 7:  # not a page header (version 0, flags)
            continue
        segments = tail[at + 26]
        table = tail[at + 27 : at + 27 + segments]
        end = at + 27 + segments + sum(table)
        if len(table) < segments or end > len(tail):
            return f"truncated: its last Ogg page is cut off ({start + at:,} bytes in, the file ends at {size:,})"
        if not tail[at + 5] & 0x04:
            return "truncated: its last Ogg page lacks the end-of-stream mark (the rest of the stream is missing)"
        return None
    return None


def _flac_cut_off(handle) -> str | None:
    handle.seek(4)
    header = handle.read(4 + 34)
    if len(header) < 38 or header[0] & 0x7F != 0:  # STREAMINFO comes first
        return None
    info = int.from_bytes(header[4:], "big")
    max_block = (info >> 240) & 0xFFFF  # the fields from the top: block sizes (16, 16), frame sizes (24, 24),
    max_frame = (info >> 192) & 0xFFFFFF  # rate (20), channels (3), bits (5), total samples (36), MD5 (128)
    rate = (info >> 172) & 0xFFFFF
    total = (info >> 128) & 0xFFFFFFFFF
    if total == 0 or rate == 0:  # a stream that announces no length
        return None
    size = handle.seek(0, os.SEEK_END)
    reach = min(max_frame or 1 << 20, 1 << 20)
    start = max(0, size - 3 * reach - 16)  # the tail holds the last two frames whole, and the cut one
    handle.seek(start)
    tail = handle.read()
    # Frame headers in the tail (bytes of audio can pass for one, CRC-8 and all, 1 in 256 times): the last
    # real one is the later of two consecutive frames whose numbering and CRC-16 agree.
    found, at = [], -1
    while (at := tail.find(b"\xff", at + 1)) >= 0:
        frame = _flac_frame_header(tail, at, max_block)
        if frame is not None:
            found.append((at, *frame))
    last = None
    for i in range(len(found) - 1, -1, -1):
        at, first, samples = found[i]
        for later in found[i + 1 :]:
            crc = int.from_bytes(tail[later[0] - 2 : later[0]], "big")
            if later[1] == first + samples and _crc16(tail[at : later[0] - 2]) == crc:
                last = later
                break
        if last is not None:
            break
    if last is None:
        return None
    at, first, samples = last
    if _crc16(tail[at:-2]) == int.from_bytes(tail[-2:], "big") and first + samples >= total:
        return None  # the last frame, whole
    return f"truncated: it ends in its frame at {first / rate:.1f} s of the {total / rate:.1f} s its header announces"


def _flac_frame_header(data: bytes, at: int, max_block: int) -> tuple[int, int] | None:
    """``(first sample, samples)`` of the FLAC frame whose header starts at ``data[at]``, or ``None`` where
    no valid header (its CRC-8 checked) starts there."""
    if at + 6 > len(data) or data[at + 1] & 0xFE != 0xF8:
        return None
    variable, size_code, rate_code = data[at + 1] & 1, data[at + 2] >> 4, data[at + 2] & 0x0F
    if size_code == 0 or rate_code == 15:
        return None
    lead = data[at + 4]  # the frame (or sample) number, UTF-8 coded
    extra = 0 if lead < 0x80 else next((n for n in range(1, 7) if lead < (0xFF00 >> (n + 1)) & 0xFF), None)
    if extra is None or at + 5 + extra > len(data):
        return None
    number = lead & (0x7F >> extra if extra else 0x7F)
    for byte in data[at + 5 : at + 5 + extra]:
        if byte & 0xC0 != 0x80:
            return None
        number = number << 6 | byte & 0x3F
    pos = at + 5 + extra
    if size_code == 1:
        samples = 192
    elif size_code <= 5:
        samples = 576 << (size_code - 2)
    elif size_code <= 7:
        width = size_code - 5
        samples = int.from_bytes(data[pos : pos + width], "big") + 1
        pos += width
    else:
        samples = 256 << (size_code - 8)
    pos += {12: 1, 13: 2, 14: 2}.get(rate_code, 0)
    if pos >= len(data) or _crc8(data[at:pos]) != data[pos]:
        return None
    return (number if variable else number * max_block), samples


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


@functools.lru_cache(maxsize=1)
def _crc16_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        table.append(crc)
    return table


def _crc16(data: bytes) -> int:
    """FLAC's frame CRC-16 (polynomial 0x8005)."""
    table, crc = _crc16_table(), 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc


TRUNCATION_FRACTION = 0.9


class _Truncated(Exception):
    """Raised inside the reader; load_audio turns it into an AudioLoadError naming the file."""


def _read_float32(path: str) -> tuple[np.ndarray, int, str, str]:
    """``(samples (frames, channels) float32, sample rate, container, subtype)``; the samples as
    ``soundfile.read(always_2d=True)`` gives them, the format names as soundfile spells them ("WAV", "PCM_16").

    Reads straight into an array of the size the header gives: ``soundfile.read`` asks for the position
    and the length by seeking, four seeks per file, which for FLAC cost about as much as decoding a
    one-second clip. A file libsndfile cannot seek in (GSM 6.10 in WAV) is read block by block instead.
    """
    import soundfile as sf

    quiet = _native_stderr_silenced() if path.lower().endswith(_MPEG_SUFFIXES) else contextlib.nullcontext()
    with quiet, sf.SoundFile(path) as f:
        if f.seekable() and f.frames <= 0:
            return f.read(dtype="float32", always_2d=True), f.samplerate, f.format, f.subtype
        claimed = f.frames * f.channels * 4  # bytes of float32
        # the file's size is asked only for claims above 64 MB: a stat per file costs on the common path
        if not f.seekable() or (claimed > 1 << 26 and claimed > _MAX_EXPANSION * os.path.getsize(path)):
            # A stream libsndfile cannot seek in (GSM 6.10 in WAV) has no length to read at once, and a
            # header announcing far more audio than the file could hold (corrupt, or crafted) is not
            # believed: decode block by block until a short block; the truncation check below decides.
            data = _read_until_short(f)
            got = data.shape[0]
            if f.frames <= 0:  # a stream that announces no length cannot be judged truncated
                return data, f.samplerate, f.format, f.subtype
        else:
            data = np.empty((f.frames, f.channels), dtype=np.float32)
            got = f.buffer_read_into(data, dtype="float32")
        # A compressed stream that ends far short of its header's length was cut off (a partial copy or
        # download); a few percent short is an estimate in a VBR header, not damage.
        if got < TRUNCATION_FRACTION * f.frames:
            raise _Truncated(f"truncated: the header announces {f.frames} frames, only {got} could be decoded")
        return data[:got], f.samplerate, f.format, f.subtype


def _read_until_short(f, block: int = 1 << 16) -> np.ndarray:
    """Every frame left in the open file ``f`` as (frames, channels) float32, read ``block`` frames at a
    time until a read comes back short (which works where ``f`` cannot seek or tell its length)."""
    blocks = []
    while True:
        data = f.read(block, dtype="float32", always_2d=True)
        if data.shape[0]:
            blocks.append(data)
        if data.shape[0] < block:
            break
    return np.concatenate(blocks) if blocks else np.empty((0, f.channels), dtype=np.float32)


# Decoded float32 bytes per byte of file above which a header's length is not believed up front (16-bit
# PCM expands 2x, FLAC and MP3 of real recordings 3-12x; long digital silence in FLAC can exceed this and
# simply takes the block-by-block path).
_MAX_EXPANSION = 64
_MPEG_SUFFIXES = (".mp3", ".mp2", ".mpga")

# libmpg123 (inside libsndfile) prints its own notes ("Cannot read next header, a one-frame stream?")
# straight to file descriptor 2, where they look like audiosiam's output. While any thread decodes MPEG,
# descriptor 2 points at /dev/null; a counter restores it when the last such decode ends, so concurrent
# decoding threads never leave it redirected. Other output written in that moment is lost with it.
_SILENCED = {"depth": 0, "saved": -1}
_SILENCED_LOCK = threading.Lock()


@contextlib.contextmanager
def _native_stderr_silenced():
    with _SILENCED_LOCK:
        if _SILENCED["depth"] == 0:
            sys.stderr.flush()
            _SILENCED["saved"] = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        _SILENCED["depth"] += 1
    try:
        yield
    finally:
        with _SILENCED_LOCK:
            _SILENCED["depth"] -= 1
            if _SILENCED["depth"] == 0:
                os.dup2(_SILENCED["saved"], 2)
                os.close(_SILENCED["saved"])


def active_span(
    wave: torch.Tensor, rate: int, *, floor_db: float = 40.0, frame_seconds: float = 0.01
) -> tuple[int, int]:
    """Where a clip is sounding: from the first to the last frame within ``floor_db`` of its loudest frame.

    The one rule for a clip's extent: trimming (:func:`load_audio` ``trim_silence``), the ground truth of
    synthetic soundscapes and the event lengths a detector expects from its examples all use it.

    Args:
        wave (Tensor): (time,) or (channels, time) samples; channels are averaged to judge.
        rate (int): its sample rate in Hz.
        floor_db (float, optional): frames quieter than this many dB below the loudest are silence.
            Default: ``40.0``.
        frame_seconds (float, optional): the length of the frames judged. Default: ``0.01``.

    Returns:
        tuple[int, int]: ``(start, stop)`` sample indices; the whole clip when it is shorter than a frame
        or silent throughout.
    """
    frame = max(1, int(frame_seconds * rate))
    mono = (wave if wave.ndim == 1 else wave.mean(0)).double()
    n = mono.shape[-1] // frame
    if n == 0:
        return 0, mono.shape[-1]
    energy = mono[: n * frame].reshape(n, frame).pow(2).mean(1)
    loud = torch.nonzero(10 * torch.log10(energy.clamp_min(1e-20) / energy.max().clamp_min(1e-20)) > -floor_db)
    if loud.numel() == 0:
        return 0, mono.shape[-1]
    first, last = int(loud[0]), int(loud[-1])
    return first * frame, mono.shape[-1] if last == n - 1 else (last + 1) * frame


def find_audio_files(root: str | os.PathLike, *, recursive: bool = True) -> list[Path]:
    """Audio files under ``root`` (by extension, case-insensitive), sorted; hidden files are skipped.

    Args:
        root (str or os.PathLike): the folder to search. A file, or anything below a folder, whose name starts
            with ``.`` is hidden and skipped.
        recursive (bool, optional): search all subfolders; ``False`` looks in ``root`` itself only.
            Default: ``True``.

    Returns:
        list[Path]: the files with an extension in :data:`AUDIO_EXTENSIONS`, sorted by path.

    Raises:
        NoAudioFilesError: ``root`` is missing or holds no audio file.
    """
    root = Path(root)
    if not root.is_dir():
        raise NoAudioFilesError(f"{root}: no such folder")
    pattern = root.rglob("*") if recursive else root.glob("*")
    files = sorted(
        p
        for p in pattern
        if p.is_file()
        and p.suffix.lower() in AUDIO_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise NoAudioFilesError(
            f"{root}: no audio files found (looked for {', '.join(sorted(AUDIO_EXTENSIONS))}"
            f"{' in all subfolders' if recursive else ''})"
        )
    return files


def fix_length(
    waveform: torch.Tensor, num_samples: int, *, mode: str = "center", generator: torch.Generator | None = None
) -> torch.Tensor:
    """Pad or crop the last axis to exactly ``num_samples``.

    Policy: a long clip is cropped (``"random"``: a random window, for training; ``"center"``: the middle;
    ``"start"``: the beginning). A short clip is zero-padded, placed at a random offset with ``"random"``,
    centred with ``"center"``, at the start with ``"start"``.

    Args:
        waveform (Tensor): (..., time); every leading axis gets the same crop or padding.
        num_samples (int): target length (> 0).
        mode (str, optional): ``"random"``, ``"center"`` or ``"start"``. Default: ``"center"``.
        generator (torch.Generator or None, optional): random source for ``"random"`` (``None``: torch's
            global one); unused by the other modes. Default: ``None``.

    Returns:
        Tensor: (..., num_samples); ``waveform`` itself when it already has that length.

    Raises:
        ParameterError: ``num_samples`` not positive, or an unknown ``mode``.
    """
    if int(num_samples) <= 0:
        raise ParameterError(f"num_samples={num_samples}: must be a positive number of samples")
    if mode not in ("random", "center", "start"):
        raise ParameterError(f"mode={mode!r}: expected 'random', 'center' or 'start'")
    n = waveform.shape[-1]
    if n == num_samples:
        return waveform
    slack = abs(n - num_samples)
    if mode == "random":
        offset = int(torch.randint(0, slack + 1, (1,), generator=generator))
    elif mode == "center":
        offset = slack // 2
    else:
        offset = 0
    if n > num_samples:
        return waveform[..., offset : offset + num_samples]
    return torch.nn.functional.pad(waveform, (offset, slack - offset))


def sliding_windows(waveform: torch.Tensor, window: int, hop: int) -> torch.Tensor:
    """Cut a (time,) waveform into overlapping windows for embedding a long clip.

    Policy: windows start every ``hop`` samples; a clip shorter than ``window`` gives one zero-padded
    window; the last window is aligned to the clip's end, so the tail is always covered and no window
    is mostly padding.

    Args:
        waveform (Tensor): (time,) samples.
        window (int): samples per window (> 0).
        hop (int): samples between window starts (> 0); a ``hop`` below ``window`` makes the windows overlap.

    Returns:
        Tensor: (n_windows, window).

    Raises:
        ParameterError: ``window`` or ``hop`` not positive, or ``waveform`` not 1-D.
    """
    if window <= 0 or hop <= 0:
        raise ParameterError(f"window={window}, hop={hop}: both must be positive numbers of samples")
    if waveform.ndim != 1:
        raise ParameterError(f"waveform: expected shape (time,), got {tuple(waveform.shape)}")
    n = waveform.shape[0]
    if n <= window:
        return fix_length(waveform, window, mode="start")[None]
    starts = list(range(0, n - window + 1, hop))
    if starts[-1] != n - window:
        starts.append(n - window)
    return torch.stack([waveform[s : s + window] for s in starts])


def load_many(
    paths: Sequence[str | os.PathLike],
    sample_rate: int = 16000,
    *,
    workers: int | None = None,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    on_error: str = "raise",
    **kwargs,
) -> list[torch.Tensor]:
    """:func:`load_audio` over several files, in order.

    Args:
        paths (Sequence[str or os.PathLike]): the files, read in this order.
        sample_rate (int, optional): resample every file to this rate in Hz, as in :func:`load_audio`.
            Default: ``16000``.
        workers (int or None, optional): decoding threads (libsndfile releases the GIL while decoding), each
            reading one contiguous slice of ``paths``; never more than there are paths, and ``1`` reads in
            the calling thread. Default: ``None`` (one per core).
        transform (Callable[[Tensor], Tensor] or None, optional): applied by each thread to the clips it
            decoded, a batch of the clips of one length at a time (e.g. a
            :class:`~audiosiam.transforms.LogMelSpectrogram`: (clips, time) -> (clips, ...)). One thread's
            transform then runs while another decodes: 64 one-second clips to log-mel take about 18 ms on
            2 cores here, against 25 ms for decoding everything and then transforming it. Default: ``None``
            (the waveforms themselves).
        on_error (str, optional): ``"raise"``: the first bad file's :class:`~audiosiam.errors.AudioLoadError`;
            ``"return"``: that error takes the bad file's place in the result, and every other file is read.
            Default: ``"raise"``.
        **kwargs (Any): passed on to :func:`load_audio` for every file (``mono``, ``normalize``, ...).

    Returns:
        list[Tensor or AudioLoadError]: one entry per path: its waveform, or ``transform`` of it; with
        ``on_error="return"``, the error for a file that could not be read.

    Raises:
        AudioLoadError: with ``on_error="raise"``, for the first file that cannot be read.
        ParameterError: an unknown ``on_error``, or a bad argument for :func:`load_audio`.

    Example:
        >>> mels = torch.stack(load_many(paths, 16000, transform=LogMelSpectrogram()))
    """
    if on_error not in ("raise", "return"):
        raise ParameterError(f"on_error={on_error!r}: expected 'raise' or 'return'")

    def read(path):
        try:
            return load_audio(path, sample_rate, **kwargs)
        except AudioLoadError as exc:
            if on_error == "raise":
                raise
            return exc

    def share(begin: int, end: int) -> list:
        waves = [read(p) for p in paths[begin:end]]
        if transform is None:
            return waves
        good = [i for i, w in enumerate(waves) if torch.is_tensor(w)]
        for i, out in zip(good, _transform_by_length([waves[i] for i in good], transform) if good else []):
            waves[i] = out
        return waves

    workers = min(workers or os.cpu_count() or 1, len(paths))
    if workers <= 1:
        return share(0, len(paths))
    # One contiguous slice of the files per thread: one task each rather than one per file, whose
    # scheduling costs about as much as reading a short clip.
    bounds = [len(paths) * w // workers for w in range(workers + 1)]
    parts = _decoding_pool(workers).map(lambda w: share(bounds[w], bounds[w + 1]), range(workers))
    return [item for part in parts for item in part]


_POOLS: dict[tuple[int, int], "ThreadPoolExecutor"] = {}  # (process id, threads) -> pool
_POOLS_LOCK = threading.Lock()


def _decoding_pool(workers: int) -> "ThreadPoolExecutor":
    """A thread pool kept between calls. A fresh pool per call would also start fresh OpenMP thread teams
    for the transforms its threads run (64 one-second clips to log-mel: 23 ms instead of 18 here). Keyed by
    process id: after a fork (DataLoader workers) the parent's threads do not exist in the child.
    """
    from concurrent.futures import ThreadPoolExecutor

    with _POOLS_LOCK:
        key = (os.getpid(), workers)
        if key not in _POOLS:
            _POOLS[key] = ThreadPoolExecutor(workers, thread_name_prefix="audiosiam-decode")
        return _POOLS[key]


def _transform_by_length(
    waves: list[torch.Tensor], transform: Callable[[torch.Tensor], torch.Tensor]
) -> list[torch.Tensor]:
    """``[transform(w) for w in waves]``, computed as one batch per distinct length (one call, not one per clip)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, wave in enumerate(waves):
        groups.setdefault(tuple(wave.shape), []).append(i)
    out: list[torch.Tensor] = [torch.empty(0)] * len(waves)
    for members in groups.values():
        for i, row in zip(members, transform(torch.stack([waves[i] for i in members])).unbind(0)):
            out[i] = row
    return out


def write_embeddings(path: str | os.PathLike, embeddings, sources: Sequence[str]) -> tuple[Path, Path]:
    """Write ``embed``'s output pair as one: ``path`` (``.npy`` appended when missing: float32, (N, D)) and
    its index ``path`` with ``.csv`` (columns ``row,path``: which input each row is, cells made
    :func:`~audiosiam.files.spreadsheet_safe`). A failure (a full disk) changes neither file; a writer killed
    between the two renames is completed by the next write or :func:`read_embeddings` of the pair.

    Args:
        path (str or os.PathLike): the ``.npy`` file.
        embeddings (Tensor or array): (N, D) embeddings.
        sources (sequence of str): N descriptions of the rows (file paths).

    Returns:
        tuple[Path, Path]: the ``.npy`` and ``.csv`` files.

    Raises:
        ParameterError: ``path`` is a folder or the pair cannot be written (the error names the file).
    """
    import csv

    out = Path(path)
    if out.suffix != ".npy":  # numpy would add it anyway: name the file it really is
        out = out.with_name(out.name + ".npy")
    index = out.with_suffix(".csv")
    array = np.asarray(embeddings.detach().cpu() if torch.is_tensor(embeddings) else embeddings, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != len(sources):
        raise ParameterError(f"embeddings: expected {len(sources)} rows (one per source), got shape {array.shape}")
    for target in (out, index):
        if target.is_dir():
            raise ParameterError(f"{target}: is a folder; give a file name to write")

    def write_index(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["row", "path"])
            writer.writerows([row, spreadsheet_safe(str(source))] for row, source in enumerate(sources))

    try:
        atomic_write_together({out: lambda tmp: np.save(tmp, array), index: write_index})
    except OSError as exc:
        where = exc.filename if isinstance(exc.filename, str) and not Path(exc.filename).name.startswith(".") else out
        raise ParameterError(
            f"{where}: cannot be written ({exc.strerror or exc}); nothing was changed, choose another place"
        ) from None
    return out, index


def read_embeddings(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Read a pair written by :func:`write_embeddings` (``audiosiam embed``), completing an interrupted write
    first and refusing a pair whose halves do not match.

    Args:
        path (str or os.PathLike): the ``.npy`` file (its ``.csv`` index beside it).

    Returns:
        tuple[numpy.ndarray, list[str]]: the (N, D) float32 embeddings and, per row, its source.

    Raises:
        ParameterError: a file is missing or damaged, or the index does not describe the array's rows.
    """
    import csv

    out = Path(path)
    index = out.with_suffix(".csv")
    try:
        finish_interrupted_commit(out)
    except OSError as exc:  # a read-only folder: cannot complete it, so cannot trust the pair
        raise ParameterError(
            f"{out}: its write was interrupted and cannot be completed here ({exc.strerror or exc}); "
            "run `audiosiam embed` again"
        ) from None
    for target in (out, index):
        found = not_a_regular_file(target)
        if found is not None:
            raise ParameterError(f"{target}: {found[1]} (write it with `audiosiam embed FILES --out {out}`)")
    try:
        array = np.load(out, allow_pickle=False, mmap_mode="r")
        with open(index, newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{out}: not a readable embedding pair ({exc}); run `audiosiam embed` again") from None
    body = rows[1:]
    numbered = all(len(r) == 2 and r[0] == str(i) for i, r in enumerate(body))
    if rows[:1] != [["row", "path"]] or not numbered or array.ndim != 2 or len(body) != array.shape[0]:
        raise ParameterError(
            f"{out}: its index {index.name} lists {len(body)} rows for {array.shape[0] if array.ndim else 0} "
            "embeddings, or is damaged; the two files are not one pair: run `audiosiam embed` again"
        )
    from .files import _FORMULA_STARTS

    def source(cell: str) -> str:  # undo spreadsheet_safe's quote
        return cell[1:] if cell[:1] == "'" and cell[1:].startswith(_FORMULA_STARTS) else cell

    return np.array(array, dtype=np.float32), [source(r[1]) for r in body]
