"""What a waveform must be to be embedded: a sample rate in range, finite, not silent, not at an absurd level.
One policy for files (after decoding) and for waveforms given to the API (``check_waveform()``)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import (
    ParameterError,
)
from .resampling import resample

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
