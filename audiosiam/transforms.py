"""Feature and augmentation modules.

``LogMelSpectrogram`` builds its window and filterbank once, keeps them as buffers (so ``.to(device)``
moves them) and delegates to :mod:`audiosiam.functional`. Its :meth:`~LogMelSpectrogram.config` is
stored in model checkpoints so a checkpoint maps raw waveforms to embeddings with nothing to get wrong.

Augmentations act on waveforms (``(time,)`` or ``(batch, time)``) or on spectrograms (SpecAugment).
Each draws its randomness from the ``generator`` passed to ``forward`` (or torch's global one), so a
training run seeded per example is reproducible whatever the number of DataLoader workers.
"""

from __future__ import annotations

import abc
from typing import Sequence

import torch
from torch import nn

from .errors import ParameterError
from .functional import NORMALIZATIONS, log_mel_from_filterbank, mel_filterbank, normalize_sliding
from .io import fix_length

__all__ = [
    "LogMelSpectrogram",
    "RandomGain",
    "AddNoise",
    "MixBackground",
    "TimeShift",
    "BandLimit",
    "SpeedPerturb",
    "Reverb",
    "RandomEqualizer",
    "MixBatch",
    "SpecAugment",
    "Compose",
    "synthetic_room_responses",
]


class LogMelSpectrogram(nn.Module):
    """Log-mel spectrogram in dB, (..., time) -> (..., n_mels, frames).

    The arguments are those of :func:`audiosiam.functional.log_mel_spectrogram`, except that ``normalize``
    defaults to ``"utterance"`` here.

    Args:
        sample_rate (int, optional): rate of the waveforms, in Hz. Default: ``16000``.
        n_fft (int, optional): FFT size. Default: ``512``.
        win_length (int, optional): Hann window length, ``0 < win_length <= n_fft``. Default: ``400``.
        hop_length (int, optional): frame step, in samples (> 0). Default: ``160``.
        n_mels (int, optional): mel bands. Default: ``64``.
        f_min (float, optional): lowest band edge, in Hz. Default: ``0.0``.
        f_max (float or None, optional): highest band edge, in Hz; ``None`` is Nyquist. Default: ``None``.
        top_db (float or None, optional): floor in dB below each clip's peak; ``None`` for no floor.
            Default: ``80.0``.
        amin (float, optional): power floor before the logarithm. Default: ``1e-10``.
        normalize (str or None, optional): ``None``; ``"band"`` (each band's mean over time removed, then
            the clip's standard deviation: removes gain and the long-term spectrum of channel and speaker);
            or ``"utterance"`` (the clip's mean dB removed, then its standard deviation: removes gain, keeps
            the spectral shape). Default: ``"utterance"``.

    Raises:
        ParameterError: ``win_length``, ``hop_length``, ``normalize``, the band edges or ``n_mels`` are
            out of range.

    Example:
        >>> LogMelSpectrogram(n_mels=64)(torch.randn(16000)).shape
        torch.Size([64, 101])
    """

    def __init__(
        self,
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
        normalize: str | None = "utterance",
    ):
        super().__init__()
        if not 0 < win_length <= n_fft:
            raise ParameterError(f"win_length={win_length}: expected 0 < win_length <= n_fft={n_fft}")
        if hop_length <= 0:
            raise ParameterError(f"hop_length={hop_length}: must be a positive integer")
        if normalize not in NORMALIZATIONS:
            raise ParameterError(f"normalize={normalize!r}: expected one of {NORMALIZATIONS}")
        self.sample_rate, self.n_fft, self.win_length, self.hop_length = int(sample_rate), n_fft, win_length, hop_length
        self.n_mels, self.f_min, self.f_max = n_mels, float(f_min), f_max
        self.top_db, self.amin, self.normalize = top_db, amin, normalize
        self.register_buffer("window", torch.hann_window(win_length, periodic=True), persistent=False)
        self.register_buffer("filterbank", mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max), persistent=False)

    def config(self) -> dict:
        """Constructor arguments that rebuild this exact transform: ``LogMelSpectrogram(**t.config())``."""
        return dict(
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            win_length=self.win_length,
            hop_length=self.hop_length,
            n_mels=self.n_mels,
            f_min=self.f_min,
            f_max=self.f_max,
            top_db=self.top_db,
            amin=self.amin,
            normalize=self.normalize,
        )

    def num_frames(self, num_samples: int) -> int:
        """The number of frames of a waveform of ``num_samples`` samples: ``1 + num_samples // hop_length``.

        Args:
            num_samples (int): length of the waveform.

        Returns:
            int: its number of frames.
        """
        return 1 + num_samples // self.hop_length

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """The log-mel spectrogram of ``waveform``.

        Args:
            waveform (Tensor): (..., time) float at ``sample_rate``; dtypes other than float32 and float64
                are computed in float32.

        Returns:
            Tensor: (..., n_mels, frames) with ``frames = 1 + time // hop_length``.

        Raises:
            ParameterError: ``waveform`` has no samples.
        """
        return log_mel_from_filterbank(
            waveform,
            self.window,
            self.filterbank,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            top_db=self.top_db,
            amin=self.amin,
            normalize=self.normalize,
        )

    @property
    def slides(self) -> bool:
        """Whether :meth:`sliding_features` can serve every window of a long recording in one pass: only
        per-utterance normalisation has a sliding equivalent."""
        return self.normalize == "utterance"

    def sliding_features(self, wave: torch.Tensor, window_frames: int) -> torch.Tensor:
        """The features a window of ``window_frames`` frames centred on each frame would see as a clip: the
        recording's dB spectrogram, each frame normalised by the statistics of its window-long stretch
        (:func:`~audiosiam.functional.normalize_sliding`).

        Args:
            wave (Tensor): (samples,) mono at ``sample_rate``.
            window_frames (int): frames per window (>= 1).

        Returns:
            Tensor: (1, n_mels, frames).

        Raises:
            ParameterError: the front end does not normalise per ``"utterance"`` (:attr:`slides`).
        """
        if not self.slides:
            raise ParameterError(
                f"the front end normalises with {self.normalize!r}; sliding windows need 'utterance' (every "
                "bundled model and every model `audiosiam train` makes by default)"
            )
        db = log_mel_from_filterbank(
            wave[None],
            self.window,
            self.filterbank,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            top_db=None,
            amin=self.amin,
        )
        return normalize_sliding(db, window_frames, top_db=self.top_db)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config().items())


def _uniform(low: float, high: float, size, generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(size, generator=generator)


def _check_range(name: str, value: Sequence[float]) -> tuple[float, float]:
    low, high = (float(v) for v in value)
    if low > high:
        raise ParameterError(f"{name}={tuple(value)}: expected (low, high) with low <= high")
    return low, high


def _check_p(p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise ParameterError(f"p={p}: a probability must lie in [0, 1]")
    return float(p)


class _WaveformAugment(nn.Module, abc.ABC):
    """Applies ``_apply(row, generator)`` to each row of (time,) or (batch, time) with probability ``p``."""

    def __init__(self, p: float):
        super().__init__()
        self.p = _check_p(p)

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
        self.gain_db = _check_range("gain_db", gain_db)

    def _apply(self, row, generator):
        return row * 10 ** (float(_uniform(*self.gain_db, (), generator)) / 20)


def _mix_at_snr(signal: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    signal_power = signal.pow(2).mean().clamp_min(1e-10)
    noise_power = noise.pow(2).mean().clamp_min(1e-10)
    return signal + noise * torch.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))


class AddNoise(_WaveformAugment):
    """Add white Gaussian noise at a signal-to-noise ratio drawn uniformly from ``snr_db``.

    Args:
        snr_db (tuple of float, optional): (low, high) range of the SNR, in dB. Default: ``(10.0, 40.0)``.
        p (float, optional): probability of augmenting each row, in [0, 1]. Default: ``0.5``.
    """

    def __init__(self, snr_db: Sequence[float] = (10.0, 40.0), p: float = 0.5):
        super().__init__(p)
        self.snr_db = _check_range("snr_db", snr_db)

    def _apply(self, row, generator):
        noise = torch.randn(row.shape, generator=generator)
        return _mix_at_snr(row, noise, float(_uniform(*self.snr_db, (), generator)))


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
        self.snr_db = _check_range("snr_db", snr_db)

    def _apply(self, row, generator):
        clip = self.clips[int(torch.randint(len(self.clips), (1,), generator=generator))]
        if clip.shape[0] < row.shape[0]:
            clip = clip.repeat(row.shape[0] // clip.shape[0] + 1)
        background = fix_length(clip, row.shape[0], mode="random", generator=generator)
        return _mix_at_snr(row, background, float(_uniform(*self.snr_db, (), generator)))


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
        self.cutoff_hz = _check_range("cutoff_hz", cutoff_hz)
        if not 0 < self.cutoff_hz[0] <= self.cutoff_hz[1] <= sample_rate / 2:
            raise ParameterError(f"cutoff_hz={tuple(cutoff_hz)}: expected 0 < low <= high <= {sample_rate / 2}")

    def _apply(self, row, generator):
        cutoff = float(_uniform(*self.cutoff_hz, (), generator))
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
        self.factors = _check_range("factors", factors)
        if not 0.5 <= self.factors[0] <= self.factors[1] <= 2.0:
            raise ParameterError(f"factors={tuple(factors)}: expected 0.5 <= low <= high <= 2")

    def _apply(self, row, generator):
        import torchaudio.functional as AF

        factor = round(100 * float(_uniform(*self.factors, (), generator)))
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
    low, high = _check_range("rt60", rt60)
    if low <= 0:
        raise ParameterError(f"rt60={tuple(rt60)}: decay times must be positive")
    g = torch.Generator().manual_seed(seed)
    responses = []
    for _ in range(count):
        t60 = float(
            torch.exp(_uniform(torch.log(torch.tensor(low)).item(), torch.log(torch.tensor(high)).item(), (), g))
        )
        n = max(16, int(1.2 * t60 * sample_rate))
        t = torch.arange(n) / sample_rate
        tail = torch.randn(n, generator=g) * torch.exp(-6.9078 * t / t60)  # -60 dB at t60
        # a one-pole low-pass whose smoothing grows along the tail: later reflections are darker
        smooth = torch.fft.irfft(torch.fft.rfft(tail) * torch.exp(-torch.linspace(0, 3.0 * t60, n // 2 + 1)), n=n)
        tail = torch.where(t < 0.05, tail, smooth)
        delay = int(float(_uniform(0.002, 0.02, (), g)) * sample_rate)  # first reflection after the direct path
        rir = torch.zeros(n + delay)
        rir[0] = 1.0
        rir[delay:] += tail * float(_uniform(0.3, 1.0, (), g))
        responses.append(rir / rir.norm())
    return responses


class Reverb(_WaveformAugment):
    """Convolve with a random room impulse response (FFT convolution), keeping the length and the RMS level.

    Args:
        responses (Sequence[Tensor] or None, optional): impulse responses at the waveforms' rate, at least
            one; ``None`` means :func:`synthetic_room_responses` at ``sample_rate``. Default: ``None``.
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
        self.wet = _check_range("wet", wet)

    def _apply(self, row, generator):
        rir = self.responses[int(torch.randint(len(self.responses), (1,), generator=generator))]
        n = row.shape[0] + rir.shape[0] - 1
        size = 1 << (n - 1).bit_length()
        wet = torch.fft.irfft(torch.fft.rfft(row, size) * torch.fft.rfft(rir, size), size)[: row.shape[0]]
        mix = float(_uniform(*self.wet, (), generator))
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
        self.gain_db = _check_range("gain_db", gain_db)
        if bands < 2:
            raise ParameterError(f"bands={bands}: need at least 2")
        self.bands, self.sample_rate = int(bands), int(sample_rate)

    def _apply(self, row, generator):
        spectrum = torch.fft.rfft(row)
        freqs = torch.linspace(0, self.sample_rate / 2, spectrum.shape[0]).clamp_min(50.0).log()
        knots = torch.linspace(torch.tensor(50.0).log().item(), freqs[-1].item(), self.bands)
        gains = _uniform(*self.gain_db, (self.bands,), generator)
        position = ((freqs - knots[0]) / (knots[1] - knots[0])).clamp(0, self.bands - 1 - 1e-6)
        left = position.floor().long()
        frac = position - left
        curve_db = gains[left] * (1 - frac) + gains[left + 1] * frac
        return torch.fft.irfft(spectrum * 10 ** (curve_db / 20), n=row.shape[0])


class MixBatch(nn.Module):
    """Mix into each clip, with probability ``p``, another clip of the batch from a *different* class at an
    SNR drawn from ``snr_db``: a second sound in the scene that the embedding should learn to look past.

    Acts on a (batch, time) batch with its labels; the dominant clip keeps its label.

    Args:
        snr_db (tuple of float, optional): (low, high) range of the SNR of the clip over the one mixed in,
            in dB. Default: ``(5.0, 20.0)``.
        p (float, optional): probability of mixing into each clip, in [0, 1]. Default: ``0.3``.
    """

    def __init__(self, snr_db: Sequence[float] = (5.0, 20.0), p: float = 0.3):
        super().__init__()
        self.snr_db = _check_range("snr_db", snr_db)
        self.p = _check_p(p)

    def forward(
        self, waves: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Mix into each clip, with probability ``p``, a clip of another class.

        Args:
            waves (Tensor): (batch, time) float.
            labels (Tensor): (batch,) class of each clip; a clip with no clip of another class in the batch
                is left as it is.
            generator (torch.Generator or None, optional): source of every random draw; ``None`` uses
                torch's global one. Default: ``None``.

        Returns:
            Tensor: a new (batch, time) tensor (the input is left untouched).

        Raises:
            ParameterError: ``waves`` is not (batch, time) or ``labels`` not (batch,).
        """
        if waves.ndim != 2 or waves.shape[0] != labels.shape[0]:
            raise ParameterError(
                f"MixBatch: expected (batch, time) waves and (batch,) labels, got "
                f"{tuple(waves.shape)} and {tuple(labels.shape)}"
            )
        out = waves.clone()
        apply = torch.rand(waves.shape[0], generator=generator) < self.p
        for i in torch.nonzero(apply).flatten().tolist():
            others = torch.nonzero(labels != labels[i]).flatten()
            if len(others) == 0:
                continue
            j = int(others[int(torch.randint(len(others), (1,), generator=generator))])
            out[i] = _mix_at_snr(waves[i], waves[j], float(_uniform(*self.snr_db, (), generator)))
        return out


class SpecAugment(nn.Module):
    """SpecAugment masking (Park et al., 2019) on (..., n_mels, frames): masked cells take the mean value.

    Args:
        time_masks (int, optional): number of time masks. Default: ``2``.
        time_width (int, optional): maximum width of a time mask, in frames (each drawn uniformly from 0 to
            this). Default: ``20``.
        freq_masks (int, optional): number of frequency masks. Default: ``2``.
        freq_width (int, optional): maximum width of a frequency mask, in bands. Default: ``8``.
        p (float, optional): probability of masking each example, in [0, 1]. Default: ``1.0``.

    Raises:
        ParameterError: a count or width is negative, or ``p`` is outside [0, 1].
    """

    def __init__(
        self, *, time_masks: int = 2, time_width: int = 20, freq_masks: int = 2, freq_width: int = 8, p: float = 1.0
    ):
        super().__init__()
        if min(time_masks, time_width, freq_masks, freq_width) < 0:
            raise ParameterError("SpecAugment: mask counts and widths must be >= 0")
        self.time_masks, self.time_width = time_masks, time_width
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.p = _check_p(p)

    def forward(self, spec: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mask each example, independently, with probability ``p``.

        Args:
            spec (Tensor): (..., n_mels, frames) float; each (n_mels, frames) slice is an example.
            generator (torch.Generator or None, optional): source of every random draw; ``None`` uses
                torch's global one. Default: ``None``.

        Returns:
            Tensor: a new tensor of the input's shape; masked cells hold their example's mean before masking.
        """
        rows = spec.reshape(-1, spec.shape[-2], spec.shape[-1]).clone()
        n_mels, frames = rows.shape[-2:]
        for i in range(rows.shape[0]):
            if float(torch.rand((), generator=generator)) >= self.p:
                continue
            fill = rows[i].mean()
            for count, width, size, axis in (
                (self.time_masks, self.time_width, frames, 1),
                (self.freq_masks, self.freq_width, n_mels, 0),
            ):
                for _ in range(count):
                    w = int(torch.randint(0, min(width, size) + 1, (1,), generator=generator))
                    start = int(torch.randint(0, size - w + 1, (1,), generator=generator))
                    if axis == 1:
                        rows[i, :, start : start + w] = fill
                    else:
                        rows[i, start : start + w, :] = fill
        return rows.reshape(spec.shape)


class Compose(nn.Module):
    """Apply augmentations in order, passing the same generator along.

    Args:
        transforms (Sequence[nn.Module]): each called as ``t(x, generator)``.
    """

    def __init__(self, transforms: Sequence[nn.Module]):
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Apply every transform in turn.

        Args:
            x (Tensor): the input of the first transform (a waveform or a spectrogram).
            generator (torch.Generator or None, optional): passed to every transform. Default: ``None``.

        Returns:
            Tensor: the output of the last transform.
        """
        for t in self.transforms:
            x = t(x, generator)
        return x
