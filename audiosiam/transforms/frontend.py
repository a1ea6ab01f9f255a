"""The front end: waveforms to log-mel spectrograms (:class:`LogMelSpectrogram`), its window and filterbank
built once and kept as buffers; its :meth:`~LogMelSpectrogram.config` is stored in every checkpoint."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ParameterError
from ..functional import NORMALIZATIONS, log_mel_from_filterbank, mel_filterbank, normalize_sliding


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
        (``normalize_sliding()``).

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
