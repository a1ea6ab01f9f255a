"""Decoding a whole file into a checked, mono, resampled waveform (:func:`load_audio`), and what a file's
header says before it is decoded (:func:`audio_duration`, :func:`decoded_bytes`)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

import numpy as np
import torch

from ..errors import (
    AudioLoadError,
    EmptyAudioError,
    InvalidAudioError,
    ParameterError,
)
from .checks import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, SILENCE_PEAK, _check_rate, _level_problem
from .framing import active_span
from .integrity import TRUNCATION_FRACTION, _cut_off, _regular_file, _Truncated, _unreadable, _wav_is_truncated
from .resampling import resample


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
