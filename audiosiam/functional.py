"""Stateless audio features. :mod:`audiosiam.transforms` wraps them as modules with cached buffers.

Defaults suit general audio at 16 kHz: 25 ms Hann window (400 samples) in a 512-point FFT, 10 ms hop
(160 samples), 64 Slaney mel bands from 0 Hz to Nyquist, power in dB with an 80 dB floor below the
clip's peak (as ``librosa.power_to_db(S, ref=1.0, top_db=80)``). With these settings the output matches
``librosa.feature.melspectrogram(center=True, pad_mode="constant") + power_to_db`` (tests/test_functional.py).
"""

from __future__ import annotations

import functools

import torch

from .errors import ParameterError
from .ops.spectral import mel_power

__all__ = ["mel_filterbank", "log_mel_spectrogram"]

#: The ``normalize`` settings of :func:`log_mel_spectrogram`: none, per utterance, or per mel band.
NORMALIZATIONS = (None, "utterance", "band")


@functools.lru_cache(maxsize=16)
def _cached_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    import torchaudio.functional as AF

    return AF.melscale_fbanks(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate, norm="slaney", mel_scale="slaney")


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None
) -> torch.Tensor:
    """Slaney-normalised mel filterbank (n_fft // 2 + 1, n_mels), as librosa's default.

    Args:
        sample_rate (int): the audio's rate in Hz.
        n_fft (int): FFT size; the filterbank has one row per bin, ``n_fft // 2 + 1``.
        n_mels (int): mel bands (> 0).
        f_min (float, optional): lowest band edge in Hz. Default: ``0.0``.
        f_max (float or None, optional): highest band edge in Hz, at most Nyquist; ``None`` is Nyquist
            (``sample_rate / 2``). Default: ``None``.

    Returns:
        Tensor: (n_fft // 2 + 1, n_mels) float32 weights, a fresh copy of a cached one (safe to modify).

    Raises:
        ParameterError: not ``0 <= f_min < f_max <= sample_rate / 2``, or ``n_mels`` not positive.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ParameterError(
            f"f_min={f_min}, f_max={f_max}: expected 0 <= f_min < f_max <= sample_rate / 2 = {sample_rate / 2}"
        )
    if n_mels <= 0:
        raise ParameterError(f"n_mels={n_mels}: must be a positive integer")
    return _cached_filterbank(int(sample_rate), int(n_fft), int(n_mels), float(f_min), float(f_max)).clone()


def log_mel_from_filterbank(
    waveform: torch.Tensor,
    window: torch.Tensor,
    filterbank: torch.Tensor,
    *,
    n_fft: int,
    hop_length: int,
    top_db: float | None = 80.0,
    amin: float = 1e-10,
    normalize: str | None = None,
) -> torch.Tensor:
    """The log-mel computation given a prepared window and filterbank (what the module calls).

    Args:
        waveform (Tensor): (..., time) float (float32 or float64 kept, other dtypes computed in float32);
            every leading index is one clip.
        window (Tensor): (win_length,) analysis window, centred in the ``n_fft`` frame; moved to the dtype
            and device of ``waveform``.
        filterbank (Tensor): (n_fft // 2 + 1, n_mels), e.g. from :func:`mel_filterbank`.
        n_fft (int): FFT size.
        hop_length (int): frame step, in samples. Frames are centred (the clip is zero-padded by
            ``n_fft // 2`` on both sides).
        top_db (float or None, optional): floor at this many dB below each clip's peak; ``None`` for no floor.
            Default: ``80.0``.
        amin (float, optional): power floor before the logarithm. Default: ``1e-10``.
        normalize (str or None, optional): ``None``; ``"band"`` (subtract each band's mean over time, then
            divide by the clip's standard deviation: removes gain and the long-term spectrum of channel and
            speaker); or ``"utterance"`` (subtract the clip's mean dB and divide by its standard deviation:
            removes gain, keeps the spectral shape; exactly so while the clip's peak minus ``top_db`` stays
            above the ``amin`` clamp, i.e. for all but near-silent clips). Default: ``None``.

    Returns:
        Tensor: (..., n_mels, frames) with ``frames = 1 + time // hop_length``; dB values, or normalised ones.

    Raises:
        ParameterError: an unknown ``normalize``, or a ``waveform`` with no samples.
    """
    if normalize not in NORMALIZATIONS:
        raise ParameterError(f"normalize={normalize!r}: expected one of {NORMALIZATIONS}")
    shape = waveform.shape
    if shape[-1] == 0:
        raise ParameterError("waveform: has no samples")
    flat = waveform.reshape(-1, shape[-1])
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()
    settings = dict(n_fft=n_fft, hop_length=hop_length, top_db=top_db, amin=amin, normalize=normalize)
    if torch.compiler.is_exporting():  # one pass for any batch and length: no branch on the sizes in the graph
        return _log_mel_rows(flat, window, filterbank, **settings).reshape(*shape[:-1], filterbank.shape[1], -1)
    rows = max(1, _CHUNK_SAMPLES // shape[-1])
    if flat.shape[0] <= rows:
        db = _log_mel_rows(flat, window, filterbank, **settings)
    elif flat.requires_grad and torch.is_grad_enabled():  # out= is not differentiable
        db = torch.cat(
            [_log_mel_rows(flat[i : i + rows], window, filterbank, **settings) for i in range(0, flat.shape[0], rows)]
        )
    else:  # every step is per clip, so a batch computed in groups gives the same result
        db = flat.new_empty(flat.shape[0], filterbank.shape[1], 1 + shape[-1] // hop_length)
        for i in range(0, flat.shape[0], rows):
            _log_mel_rows(flat[i : i + rows], window, filterbank, out=db[i : i + rows], **settings)
    return db.reshape(*shape[:-1], db.shape[-2], db.shape[-1])


# Clips are transformed in groups of at most this many samples (20 s at 16 kHz): the STFT's intermediates
# (frames, complex spectrum, power) then take a few MB that the allocator reuses and the cache holds,
# instead of hundreds of MB mapped fresh from the OS on every call (timings: benchmarks/bench_frontend.py).
_CHUNK_SAMPLES = 320_000

# Longer clips (a long recording's chunk) are transformed in pieces of this many frames, for the same
# reason: the pieces' intermediates stay in cache where a whole minute's would not.
_LONG_SAMPLES, _PIECE_FRAMES = 320_000, 512


def _db_frames(
    flat: torch.Tensor,
    window: torch.Tensor,
    filterbank: torch.Tensor,
    *,
    n_fft: int,
    hop_length: int,
    amin: float,
    center: bool = True,
) -> torch.Tensor:
    """(clips, time) float rows -> their mel power in dB, (clips, frames, n_mels): the memory order
    ``torch.stft`` produces, so every pass reads contiguous memory."""
    spec = torch.stft(
        flat,
        n_fft,
        hop_length=hop_length,
        win_length=window.shape[0],
        window=window.to(flat),
        center=center,
        pad_mode="constant",
        return_complex=True,
    )
    mel = mel_power(spec.transpose(-2, -1), filterbank)  # (clips, frames, n_mels)
    return torch.log10(mel.clamp_min_(amin)).mul_(10.0)


def _normalize(db: torch.Tensor, normalize: str | None, out: torch.Tensor | None) -> torch.Tensor:
    """Apply a normalisation to (clips, n_mels, frames) dB, written into ``out`` when given (``out`` may be
    ``db`` itself)."""
    if normalize is None:
        return db.contiguous() if out is None else (out if out is db else out.copy_(db))
    if normalize == "band":
        # Cepstral-mean-style: each band's mean over time removed (the channel's and the speaker's long-term
        # spectrum), then one scale for the clip.
        centred = torch.sub(db, db.mean(dim=-1, keepdim=True), out=out)
    else:  # "utterance"
        centred = torch.sub(db, db.mean(dim=(-2, -1), keepdim=True), out=out)
    return centred.div_(_clip_std(centred))


def _log_mel_rows(
    flat: torch.Tensor,
    window: torch.Tensor,
    filterbank: torch.Tensor,
    *,
    n_fft: int,
    hop_length: int,
    top_db: float | None,
    amin: float,
    normalize: str | None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``log_mel_from_filterbank()`` of (clips, time) float rows: (clips, n_mels, frames), written into
    ``out`` when given (a slice of the whole batch's result: no concatenation afterwards).

    Works in (clips, frames, bins) order (:func:`_db_frames`); the result is transposed once, by the last
    pass that writes it. Rows longer than ``_LONG_SAMPLES`` (without autograd) take their frames
    ``_PIECE_FRAMES`` at a time from the once-padded rows, each frame computed as in the whole; the floor
    and the normalisation then see every frame.
    """
    pieces = not torch.compiler.is_exporting() and not (flat.requires_grad and torch.is_grad_enabled())
    if pieces and flat.shape[-1] > _LONG_SAMPLES:
        frames = 1 + flat.shape[-1] // hop_length
        db = flat.new_empty(flat.shape[0], filterbank.shape[1], frames) if out is None else out
        padded = torch.nn.functional.pad(flat, (n_fft // 2, n_fft // 2))  # what center=True pads
        for first in range(0, frames, _PIECE_FRAMES):
            end = min(frames, first + _PIECE_FRAMES)
            piece = padded[:, first * hop_length : (end - 1) * hop_length + n_fft]
            part = _db_frames(piece, window, filterbank, n_fft=n_fft, hop_length=hop_length, amin=amin, center=False)
            db[:, :, first:end] = part.transpose(-2, -1)
        if top_db is not None:
            torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - top_db, out=db)
        return _normalize(db, normalize, db)
    db = _db_frames(flat, window, filterbank, n_fft=n_fft, hop_length=hop_length, amin=amin)
    if top_db is not None:
        db = torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - top_db)
    db = db.transpose(-2, -1)  # (clips, n_mels, frames), a view: the pass below writes it contiguous
    return _normalize(db, normalize, out)


def _clip_std(centred: torch.Tensor) -> torch.Tensor:
    """Standard deviation of each clip's values, given them centred (both normalisations leave every clip
    with mean zero): (clips, 1, 1), at least 1e-5. A sum of squares, as ``torch.std`` over two dimensions
    takes 30x longer on the CPU (2.3 ms for 64 one-second clips here).
    """
    rows = centred.flatten(-2)
    var = (rows * rows).sum(dim=-1) / torch.sym_max(rows.shape[-1] - 1, 1)  # sym_max: no guard when exported
    return var.sqrt().clamp_min(1e-5)[..., None, None]


def normalize_sliding(db: torch.Tensor, window: int, *, top_db: float | None = 80.0) -> torch.Tensor:
    """The ``"utterance"`` normalisation of a long recording, frame by frame: each frame is floored,
    centred and scaled with the statistics of the ``window`` frames centred on it.

    A window of a recording normalised this way looks like a clip of ``window`` frames normalised on its
    own (its peak-relative floor, mean dB and standard deviation are those of its neighbourhood), so one
    spectrogram of the whole recording serves every window over it (:mod:`audiosiam.models.sliding`).
    Near the ends the neighbourhood is cut to the frames that exist.

    Args:
        db (Tensor): (B, n_mels, T) log-mel power in dB, not normalised (``normalize=None``, ``top_db=None``).
        window (int): frames of the neighbourhood, >= 1.
        top_db (float or None, optional): floor each frame at this many dB below its neighbourhood's peak;
            ``None`` for no floor. Default: ``80.0``.

    Returns:
        Tensor: (B, n_mels, T), same dtype.

    Raises:
        ParameterError: ``window < 1`` or ``db`` not 3-D.
    """
    if window < 1 or db.ndim != 3:
        raise ParameterError(f"window={window}, db of shape {tuple(db.shape)}: expected window >= 1 and (B, n_mels, T)")
    left, right = window // 2, window - 1 - window // 2
    if top_db is not None:
        frame_peak = torch.nn.functional.pad(db.amax(dim=1, keepdim=True), (left, right), value=-torch.inf)
        db = torch.maximum(db, torch.nn.functional.max_pool1d(frame_peak, window, stride=1) - top_db)
    # Window sums of each frame's sum and sum of squares over the bands, from cumulative sums in float64
    # (hours of frames in float32 would lose the differences to rounding).
    sums = torch.stack([db.sum(dim=1), db.square().sum(dim=1)], dim=1).double()  # (B, 2, T)
    total = torch.nn.functional.pad(sums.cumsum(dim=2), (1, 0))
    frames = db.shape[2]
    index = torch.arange(frames, device=db.device)
    upper, lower = (index + right + 1).clamp_max(frames), (index - left).clamp_min(0)
    window_sums = total[..., upper] - total[..., lower]
    count = ((upper - lower) * db.shape[1]).to(window_sums)
    mean = window_sums[:, 0] / count
    var = (window_sums[:, 1] - count * mean.square()) / (count - 1).clamp_min(1)
    std = var.clamp_min(0).sqrt().clamp_min(1e-5)
    return (db - mean[:, None].to(db)) / std[:, None].to(db)


def log_mel_spectrogram(
    waveform: torch.Tensor,
    sample_rate: int = 16000,
    *,
    n_fft: int = 512,
    win_length: int = 400,
    hop_length: int = 160,
    n_mels: int = 64,
    f_min: float = 0.0,
    f_max: float | None = None,
    top_db: float | None = 80.0,
    amin: float = 1e-10,
    normalize: str | None = None,
) -> torch.Tensor:
    """Log-mel spectrogram in dB: (..., time) -> (..., n_mels, frames).

    Args:
        waveform (Tensor): (..., time) float waveform at ``sample_rate``; every leading index is one clip.
        sample_rate (int, optional): Hz. Default: ``16000``.
        n_fft (int, optional): FFT size. Default: ``512``.
        win_length (int, optional): periodic Hann window length (``0 < win_length <= n_fft``), centred in the
            ``n_fft`` frame. Default: ``400`` (25 ms at 16 kHz).
        hop_length (int, optional): frame step, in samples (> 0). Default: ``160`` (10 ms at 16 kHz).
        n_mels (int, optional): mel bands. Default: ``64``.
        f_min (float, optional): lowest band edge in Hz. Default: ``0.0``.
        f_max (float or None, optional): highest band edge in Hz; ``None`` is Nyquist. Default: ``None``.
        top_db (float or None, optional): floor in dB below each clip's peak (``None``: none).
            Default: ``80.0``.
        amin (float, optional): power floor before the logarithm. Default: ``1e-10``.
        normalize (str or None, optional): ``None``, ``"utterance"`` (per-clip mean/std of the dB values) or
            ``"band"`` (per-band mean, per-clip std); see ``log_mel_from_filterbank()``. Default: ``None``.

    Returns:
        Tensor: (..., n_mels, frames) with ``frames = 1 + time // hop_length``.

    Raises:
        ParameterError: ``win_length`` or ``hop_length`` out of range, band edges outside
            ``0 <= f_min < f_max <= sample_rate / 2``, an unknown ``normalize``, or no samples.

    Example:
        >>> log_mel_spectrogram(torch.randn(2, 16000)).shape
        torch.Size([2, 64, 101])
    """
    if not 0 < win_length <= n_fft:
        raise ParameterError(f"win_length={win_length}: expected 0 < win_length <= n_fft={n_fft}")
    if hop_length <= 0:
        raise ParameterError(f"hop_length={hop_length}: must be a positive integer")
    window = torch.hann_window(
        win_length, periodic=True, dtype=torch.float64 if waveform.dtype == torch.float64 else torch.float32
    )
    fbank = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max)
    return log_mel_from_filterbank(
        waveform, window, fbank, n_fft=n_fft, hop_length=hop_length, top_db=top_db, amin=amin, normalize=normalize
    )
