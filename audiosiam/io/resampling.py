"""Resampling: torchaudio's windowed-sinc filter, applied as one grouped or banded convolution over
the output phases (the same filter as ``torchaudio.functional.resample``, computed faster for long audio)."""

from __future__ import annotations

import functools
import math

import torch


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
