"""Augmentations of one clip's waveform, in the order a sound meets them: the source (speed), the room
(reverb), other sounds (noise, background), the channel (gain, equaliser, band limit), the moment (shift)."""

from __future__ import annotations

import abc
from typing import Sequence

import torch
from torch import nn

from ..errors import ParameterError
from ..io.framing import fix_length
from .draws import check_probability, check_range, mix_at_snr, uniform


class _WaveformAugment(nn.Module, abc.ABC):
    """Applies ``_apply(row, generator)`` to each row of (time,) or (batch, time) with probability ``p``."""

    def __init__(self, p: float):
        super().__init__()
        self.p = check_probability(p)

    def forward(self, waveform: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment each row, independently, with probability ``p``.

        Args:
            waveform (Tensor): (time,) or (batch, time) float, on the CPU.
            generator (torch.Generator or None, optional): source of every random draw; ``None`` uses
                torch's global one. Default: ``None``.

        Returns:
            Tensor: a new tensor of the input's shape (the input is left untouched).
        """
        rows = waveform[None] if waveform.ndim == 1 else waveform
        out = rows.clone()
        apply = torch.rand(rows.shape[0], generator=generator) < self.p
        for i in torch.nonzero(apply).flatten().tolist():
            out[i] = self._apply(rows[i], generator)
        return out[0] if waveform.ndim == 1 else out

    @abc.abstractmethod
    def _apply(self, row: torch.Tensor, generator) -> torch.Tensor:
        """The augmentation of one (time,) row."""


class RandomGain(_WaveformAugment):
    """Multiply by a gain drawn uniformly in dB from ``gain_db``.

    Args:
        gain_db (tuple of float, optional): (low, high) range of the gain, in dB. Default: ``(-12.0, 6.0)``.
        p (float, optional): probability of augmenting each row, in [0, 1]. Default: ``1.0``.
    """

    def __init__(self, gain_db: Sequence[float] = (-12.0, 6.0), p: float = 1.0):
        super().__init__(p)
        self.gain_db = check_range("gain_db", gain_db)

    def _apply(self, row, generator):
        return row * 10 ** (float(uniform(*self.gain_db, (), generator)) / 20)


class AddNoise(_WaveformAugment):
    """Add white Gaussian noise at a signal-to-noise ratio drawn uniformly from ``snr_db``.

    Args:
        snr_db (tuple of float, optional): (low, high) range of the SNR, in dB. Default: ``(10.0, 40.0)``.
        p (float, optional): probability of augmenting each row, in [0, 1]. Default: ``0.5``.
    """

    def __init__(self, snr_db: Sequence[float] = (10.0, 40.0), p: float = 0.5):
        super().__init__(p)
        self.snr_db = check_range("snr_db", snr_db)

    def _apply(self, row, generator):
        noise = torch.randn(row.shape, generator=generator)
        return mix_at_snr(row, noise, float(uniform(*self.snr_db, (), generator)))


class MixBackground(_WaveformAugment):
    """Mix in a random stretch of a random background clip at an SNR drawn from ``snr_db``.

    Args:
        clips (Sequence[Tensor]): background waveforms at the same sample rate (any lengths; looped if
            shorter); at least one.
        snr_db (tuple of float, optional): (low, high) range of the SNR of the clip over the background,
            in dB. Default: ``(5.0, 25.0)``.
        p (float, optional): probability of augmenting each row, in [0, 1]. Default: ``0.5``.
    """

    def __init__(self, clips: Sequence[torch.Tensor], snr_db: Sequence[float] = (5.0, 25.0), p: float = 0.5):
        super().__init__(p)
        if len(clips) == 0:
            raise ParameterError("clips: MixBackground needs at least one background clip")
        self.clips = [torch.as_tensor(c, dtype=torch.float32).flatten() for c in clips]
        self.snr_db = check_range("snr_db", snr_db)

    def _apply(self, row, generator):
        clip = self.clips[int(torch.randint(len(self.clips), (1,), generator=generator))]
        if clip.shape[0] < row.shape[0]:
            clip = clip.repeat(row.shape[0] // clip.shape[0] + 1)
        background = fix_length(clip, row.shape[0], mode="random", generator=generator)
        return mix_at_snr(row, background, float(uniform(*self.snr_db, (), generator)))


class BandLimit(_WaveformAugment):
    """Remove everything above a cutoff drawn uniformly from ``cutoff_hz``, as a telephone, an 8 kHz
    recording or a cheap microphone would (a brick-wall cut in the frequency domain).

    Args:
        sample_rate (int, optional): rate of the waveforms, in Hz. Default: ``16000``.
        cutoff_hz (tuple of float, optional): (low, high) range of the cutoff frequency, in Hz, with
            ``0 < low <= high <= sample_rate / 2``. Default: ``(3000.0, 7000.0)``.
        p (float, optional): probability of augmenting each row, in [0, 1]. Default: ``0.3``.
    """

    def __init__(self, sample_rate: int = 16000, cutoff_hz: Sequence[float] = (3000.0, 7000.0), p: float = 0.3):
        super().__init__(p)
        self.sample_rate = int(sample_rate)
        self.cutoff_hz = check_range("cutoff_hz", cutoff_hz)
        if not 0 < self.cutoff_hz[0] <= self.cutoff_hz[1] <= sample_rate / 2:
            raise ParameterError(f"cutoff_hz={tuple(cutoff_hz)}: expected 0 < low <= high <= {sample_rate / 2}")

    def _apply(self, row, generator):
        cutoff = float(uniform(*self.cutoff_hz, (), generator))
        spectrum = torch.fft.rfft(row)
        first_cut = int(cutoff / (self.sample_rate / 2) * (spectrum.shape[0] - 1)) + 1
        spectrum[first_cut:] = 0
        return torch.fft.irfft(spectrum, n=row.shape[0])


class TimeShift(_WaveformAugment):
    """Shift by up to ``max_fraction`` of the length, filling with zeros (no wrap-around).

    Args:
        max_fraction (float, optional): the largest shift, either way, as a fraction of the length, in
            [0, 1). Default: ``0.2``.
        p (float, optional): probability of augmenting each row, in [0, 1]. Default: ``0.5``.
    """

    def __init__(self, max_fraction: float = 0.2, p: float = 0.5):
        super().__init__(p)
        if not 0.0 <= max_fraction < 1.0:
            raise ParameterError(f"max_fraction={max_fraction}: expected 0 <= max_fraction < 1")
        self.max_fraction = float(max_fraction)

    def _apply(self, row, generator):
        limit = int(self.max_fraction * row.shape[0])
        shift = int(torch.randint(-limit, limit + 1, (1,), generator=generator))
        out = torch.zeros_like(row)
        if shift >= 0:
            out[shift:] = row[: row.shape[0] - shift]
        else:
            out[:shift] = row[-shift:]
        return out


class SpeedPerturb(_WaveformAugment):
    """Play the clip faster or slower by a factor drawn uniformly from ``factors``: pitch, formants and
    tempo move together, as between a small and a large speaker or a quick and a slow one (speed
    perturbation, Ko et al., 2015). The result keeps the input's length: centred, cropped or zero-padded.

    Factors are drawn in steps of 0.01 so each resampling ratio is a small fraction (e.g. 100/107).
    Needs torchaudio.

    Args:
        factors (tuple of float, optional): (low, high) range of the speed factor, with
            ``0.5 <= low <= high <= 2`` (> 1 is faster). Default: ``(0.85, 1.15)``.
        p (float, optional): probability of augmenting each row, in [0, 1]. Default: ``0.5``.
    """

    def __init__(self, factors: Sequence[float] = (0.85, 1.15), p: float = 0.5):
        super().__init__(p)
        self.factors = check_range("factors", factors)
        if not 0.5 <= self.factors[0] <= self.factors[1] <= 2.0:
            raise ParameterError(f"factors={tuple(factors)}: expected 0.5 <= low <= high <= 2")

    def _apply(self, row, generator):
        import torchaudio.functional as AF

        factor = round(100 * float(uniform(*self.factors, (), generator)))
        if factor == 100:
            return row
        # Read at factor/100 times the rate: factor > 100 gives fewer samples, i.e. faster playback.
        return fix_length(AF.resample(row, factor, 100), row.shape[0], mode="center")


def synthetic_room_responses(
    sample_rate: int = 16000, count: int = 24, rt60: Sequence[float] = (0.15, 1.2), seed: int = 0
) -> list[torch.Tensor]:
    """``count`` synthetic room impulse responses: a direct path, then exponentially decaying noise whose
    60 dB decay time is drawn log-uniformly from ``rt60`` seconds (Polack's statistical model of a diffuse
    reverberant field), with high frequencies decaying faster, as air and walls absorb them. Each is
    normalised to unit energy; lengths are 1.2 x its RT60.

    Args:
        sample_rate (int, optional): rate of the responses, in Hz. Default: ``16000``.
        count (int, optional): how many. Default: ``24``.
        rt60 (tuple of float, optional): (low, high) range of the decay time, in seconds (> 0).
            Default: ``(0.15, 1.2)``.
        seed (int, optional): the same seed gives the same responses. Default: ``0``.

    Returns:
        list of Tensor: ``count`` (length,) float32 responses.
    """
    low, high = check_range("rt60", rt60)
    if low <= 0:
        raise ParameterError(f"rt60={tuple(rt60)}: decay times must be positive")
    g = torch.Generator().manual_seed(seed)
    responses = []
    for _ in range(count):
        t60 = float(
            torch.exp(uniform(torch.log(torch.tensor(low)).item(), torch.log(torch.tensor(high)).item(), (), g))
        )
        n = max(16, int(1.2 * t60 * sample_rate))
        t = torch.arange(n) / sample_rate
        tail = torch.randn(n, generator=g) * torch.exp(-6.9078 * t / t60)  # -60 dB at t60
        # a one-pole low-pass whose smoothing grows along the tail: later reflections are darker
        smooth = torch.fft.irfft(torch.fft.rfft(tail) * torch.exp(-torch.linspace(0, 3.0 * t60, n // 2 + 1)), n=n)
        tail = torch.where(t < 0.05, tail, smooth)
        delay = int(float(uniform(0.002, 0.02, (), g)) * sample_rate)  # first reflection after the direct path
        rir = torch.zeros(n + delay)
        rir[0] = 1.0
        rir[delay:] += tail * float(uniform(0.3, 1.0, (), g))
        responses.append(rir / rir.norm())
    return responses


class Reverb(_WaveformAugment):
    """Convolve with a random room impulse response (FFT convolution), keeping the length and the RMS level.

    Args:
        responses (Sequence[Tensor] or None, optional): impulse responses at the waveforms' rate, at least
            one; ``None`` means ``synthetic_room_responses()`` at ``sample_rate``. Default: ``None``.
        wet (tuple of float, optional): (low, high) mix of the reverberant signal with the dry one (0: dry,
            1: reverberant only). Default: ``(0.3, 1.0)``.
        p (float, optional): probability of augmenting each row, in [0, 1]. Default: ``0.3``.
        sample_rate (int, optional): rate of the synthetic responses (unused when ``responses`` are given).
            Default: ``16000``.
    """

    def __init__(
        self,
        responses: Sequence[torch.Tensor] | None = None,
        wet: Sequence[float] = (0.3, 1.0),
        p: float = 0.3,
        sample_rate: int = 16000,
    ):
        super().__init__(p)
        self.responses = [
            torch.as_tensor(r, dtype=torch.float32).flatten()
            for r in (responses if responses is not None else synthetic_room_responses(sample_rate))
        ]
        if not self.responses:
            raise ParameterError("responses: Reverb needs at least one impulse response")
        self.wet = check_range("wet", wet)

    def _apply(self, row, generator):
        rir = self.responses[int(torch.randint(len(self.responses), (1,), generator=generator))]
        n = row.shape[0] + rir.shape[0] - 1
        size = 1 << (n - 1).bit_length()
        wet = torch.fft.irfft(torch.fft.rfft(row, size) * torch.fft.rfft(rir, size), size)[: row.shape[0]]
        mix = float(uniform(*self.wet, (), generator))
        out = (1 - mix) * row + mix * wet
        return out * (row.pow(2).mean() / out.pow(2).mean().clamp_min(1e-12)).sqrt()


class RandomEqualizer(_WaveformAugment):
    """A random smooth equaliser: gains drawn uniformly in dB from ``gain_db`` at ``bands`` log-spaced
    frequencies, interpolated over the spectrum (a different microphone, speaker or room colouring).

    Args:
        gain_db (tuple of float, optional): (low, high) range of each band's gain, in dB.
            Default: ``(-9.0, 9.0)``.
        bands (int, optional): number of gains, spaced log-uniformly from 50 Hz to Nyquist (>= 2).
            Default: ``6``.
        p (float, optional): probability of augmenting each row, in [0, 1]. Default: ``0.3``.
        sample_rate (int, optional): rate of the waveforms, in Hz. Default: ``16000``.
    """

    def __init__(
        self, gain_db: Sequence[float] = (-9.0, 9.0), bands: int = 6, p: float = 0.3, sample_rate: int = 16000
    ):
        super().__init__(p)
        self.gain_db = check_range("gain_db", gain_db)
        if bands < 2:
            raise ParameterError(f"bands={bands}: need at least 2")
        self.bands, self.sample_rate = int(bands), int(sample_rate)

    def _apply(self, row, generator):
        spectrum = torch.fft.rfft(row)
        freqs = torch.linspace(0, self.sample_rate / 2, spectrum.shape[0]).clamp_min(50.0).log()
        knots = torch.linspace(torch.tensor(50.0).log().item(), freqs[-1].item(), self.bands)
        gains = uniform(*self.gain_db, (self.bands,), generator)
        position = ((freqs - knots[0]) / (knots[1] - knots[0])).clamp(0, self.bands - 1 - 1e-6)
        left = position.floor().long()
        frac = position - left
        curve_db = gains[left] * (1 - frac) + gains[left + 1] * frac
        return torch.fft.irfft(spectrum * 10 ** (curve_db / 20), n=row.shape[0])
