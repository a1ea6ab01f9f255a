"""aiSFX, a sound-effects encoder by Ma and Lerch, as an audiosiam model (the ``sfx`` preset and the teacher).

aiSFX (A. B. Ma and A. Lerch, "Representation Learning for the Automatic Indexing of Sound Effects
Libraries", ISMIR 2022; PyPI ``aisfx`` 0.1.2, weights and code under CC BY 4.0) is a 9-layer CNN (the DCASE
2018 cross-task baseline's layout, Kong et al.) trained on two professional sound-effects libraries. This
module re-implements its front end in torch and its network as an audiosiam encoder, and reads its weights
from the installed ``aisfx`` wheel; none of its code is imported (its package pins numpy and librosa
versions audiosiam does not use, so the project installs it without dependencies and reads only the file).

Changes from the authors' pipeline (as CC BY 4.0 asks us to state them):

* the front end (their ``spectrogram_librosa.compute_spectrogram``: peak-normalised audio, 44.1 kHz, 2048-point
  Hann STFT every 1024 samples, 96 HTK mel bands of unit area, ``log10(1 + 10^4 power)`` scaled by
  ``1 / 9.4578``) is computed with ``torch.stft`` (zero padding at the edges, as librosa >= 0.10); the
  tests compare it with librosa;
* a clip is embedded as every audiosiam model embeds clips (:mod:`audiosiam.models.embedding`): clips up
  to 2.3 s (100 frames, their block) are padded with silence to it; longer clips are cut into 2.3 s windows
  every 1.16 s (their 50% block hop), each peak-normalised and embedded, and the embeddings averaged. Their
  script peak-normalises the whole file once; here each window is normalised as a clip;
* embeddings are L2-normalised (their script returns the raw 512-d block embeddings).

For long recordings (:class:`~audiosiam.models.sliding.SlidingEmbedder`) the trunk runs once over the
recording, each frame of the spectrogram normalised by the peak of the window-long stretch around it,
and a window's embedding is the maximum of its trunk frames, as the network's own pooling.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..errors import CheckpointError, ParameterError
from .checkpoint_file import read_trusted

#: The credit and licence line of aiSFX that the ``sfx`` preset carries in ``info["attribution"]``.
ATTRIBUTION = (
    "aiSFX by A. B. Ma and A. Lerch (ISMIR 2022), https://github.com/alisonbma/aisfx, CC BY 4.0; "
    "front end re-implemented in torch, embeddings L2-normalised, long clips embedded in 2.3 s windows"
)

#: sha256 of aisfx 0.1.2's models/checkpoint.pth, the release this module was checked against
WEIGHTS_SHA256 = "499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5"

# Their normalisation constant: the largest log-mel value over their training sets ("spec_norm='original'").
_SPEC_MAX = 9.457798957824707


def authors_features(wave):
    """aiSFX's features as its authors compute them (``aisfx.spectrogram.spectrogram_librosa`` with their
    'original' scaling), with librosa: the reference :class:`AiSfxFrontEnd` is tested against.

    Args:
        wave (numpy.ndarray): (samples,) float mono at 44.1 kHz.

    Returns:
        numpy.ndarray: (n_mels, frames) float32.
    """
    import librosa
    import numpy as np

    y = wave / (np.abs(wave).max() or 1.0)
    spec = librosa.feature.melspectrogram(
        y=y,
        sr=44100,
        n_mels=96,
        norm=1.0,
        fmin=0.0,
        fmax=22050.0,
        htk=True,
        power=2.0,
        hop_length=1024,
        win_length=2048,
    )
    return (np.log10(spec * 10000.0 + 1) / _SPEC_MAX).astype(np.float32)


class AiSfxFrontEnd(nn.Module):
    """aiSFX's log-mel, (..., time) -> (..., n_mels, frames): peak-normalised audio, power mel spectrogram,
    ``log10(1 + 10^4 mel) / 9.4578``.

    Args:
        sample_rate (int, optional): rate of the waveforms, in Hz. Default: ``44100`` (the network's).
        n_fft (int, optional): FFT size and Hann window length. Default: ``2048``.
        hop_length (int, optional): frame step, in samples. Default: ``1024``.
        n_mels (int, optional): HTK mel bands, each of unit area. Default: ``96``.

    Example:
        >>> AiSfxFrontEnd()(torch.randn(44100)).shape
        torch.Size([96, 44])
    """

    def __init__(self, sample_rate: int = 44100, *, n_fft: int = 2048, hop_length: int = 1024, n_mels: int = 96):
        super().__init__()
        if hop_length <= 0 or n_fft <= 0 or n_mels <= 0:
            raise ParameterError(f"n_fft={n_fft}, hop_length={hop_length}, n_mels={n_mels}: all must be positive")
        import torchaudio

        self.sample_rate, self.n_fft, self.hop_length, self.n_mels = int(sample_rate), n_fft, hop_length, n_mels
        banks = torchaudio.functional.melscale_fbanks(
            n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate, norm=None, mel_scale="htk"
        )  # (bins, n_mels) triangles
        banks = banks / banks.sum(0, keepdim=True).clamp_min(1e-12)  # librosa's norm=1: unit area per band
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)
        self.register_buffer("filterbank", banks.float(), persistent=False)

    # every audiosiam front end says whether long recordings can be embedded window by window in one pass
    slides = True

    def config(self) -> dict:
        """Constructor arguments that rebuild this transform: ``AiSfxFrontEnd(**t.config())``."""
        return dict(sample_rate=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length, n_mels=self.n_mels)

    def num_frames(self, num_samples: int) -> int:
        """Frames of a waveform: ``1 + num_samples // hop_length``.

        Args:
            num_samples (int): its length in samples.

        Returns:
            int: its number of frames.
        """
        return 1 + num_samples // self.hop_length

    def mel_power(self, waveform: torch.Tensor) -> torch.Tensor:
        """The mel power spectrogram of the samples as they are (no normalisation).

        Args:
            waveform (Tensor): (..., time) float at ``sample_rate``.

        Returns:
            Tensor: (..., n_mels, frames) float32.

        Raises:
            ParameterError: ``waveform`` has no samples.
        """
        shape = waveform.shape
        if shape[-1] == 0:
            raise ParameterError("waveform: has no samples")
        flat = waveform.reshape(-1, shape[-1]).float()
        spec = torch.stft(
            flat,
            self.n_fft,
            self.hop_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()  # (rows, bins, frames)
        mel = torch.matmul(self.filterbank.T, power)
        return mel.reshape(*shape[:-1], *mel.shape[-2:])

    @staticmethod
    def compress(mel_power: torch.Tensor) -> torch.Tensor:
        """Their log compression and scale: ``log10(1 + 10^4 power) / 9.4578``."""
        return torch.log10(1.0 + 1e4 * mel_power) / _SPEC_MAX

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """The features of each clip, each scaled to a peak of 1 first (a silent clip stays silent).

        Args:
            waveform (Tensor): (..., time) float at ``sample_rate``.

        Returns:
            Tensor: (..., n_mels, frames) float32, frames = ``1 + time // hop_length``.
        """
        peak = waveform.abs().amax(dim=-1, keepdim=True).float()
        peak = torch.where(peak > 0, peak, torch.ones_like(peak))
        return self.compress(self.mel_power(waveform.float() / peak))

    def sliding_features(self, wave: torch.Tensor, window_frames: int) -> torch.Tensor:
        """The features a window of ``window_frames`` frames centred on each frame would see as a clip: the
        mel power of the whole recording, each frame divided by the squared peak of the samples in the
        window-long stretch around it.

        Args:
            wave (Tensor): (samples,) mono at ``sample_rate``.
            window_frames (int): frames per window (>= 1).

        Returns:
            Tensor: (1, n_mels, frames).
        """
        power = self.mel_power(wave[None])  # (1, n_mels, frames)
        frames = power.shape[-1]
        hop = self.hop_length
        # the peak of the samples each frame is centred on (a hop around its centre), then over the window
        padded = nn.functional.pad(wave.abs().float()[None, None], (hop // 2, frames * hop))
        per_frame = nn.functional.max_pool1d(padded[..., : frames * hop], hop, hop)  # (1, 1, frames)
        half = window_frames // 2
        peak = nn.functional.max_pool1d(
            nn.functional.pad(per_frame, (half, window_frames - 1 - half)), window_frames, 1
        )[0]
        peak = torch.where(peak > 0, peak, torch.ones_like(peak))
        return self.compress(power / peak.square())


@dataclass
class AiSfxConfig:
    """Architecture of :class:`AiSfxEncoder` (stored in checkpoints).

    Attributes:
        n_mels (int): mel bands of the input. Default: ``96``.
        base_channels (int): channels of the first block; each later block doubles them. Default: ``64``.
    """

    n_mels: int = 96
    base_channels: int = 64

    def to_dict(self) -> dict:
        """The configuration as plain values, as a checkpoint stores it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AiSfxConfig":
        """The configuration that :meth:`to_dict` gave ``d``.

        Args:
            d (dict): the plain values, as a checkpoint stores them.
        """
        return cls(**d)


class _ConvBlock(nn.Module):
    """Two 3x3 convolutions, each with batch norm and ReLU (names as in the authors' weights)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(cout), nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


# max pooling after each block, over (time, frequency): the last block keeps its resolution
_POOLS = ((2, 2), (2, 2), (2, 2), (1, 1))


class AiSfxEncoder(nn.Module):
    """aiSFX's network: features (B, n_mels, frames) -> L2-normalised embedding (B, 8 * base_channels).

    Four blocks of two 3x3 convolutions, max pooling after the first three (time and frequency halved),
    the mean over frequency, then the maximum over time. Its :meth:`frames` (the trunk, one frame per 8
    spectrogram frames, 186 ms) serve every window of a long recording at once (:meth:`embed_windows`).

    Args:
        config (AiSfxConfig or None, optional): the architecture; ``None``: ``AiSfxConfig()``. Default: ``None``.
    """

    #: the name a checkpoint records for this architecture (models.checkpoint.ARCHITECTURES)
    architecture = "aisfx"

    def __init__(self, config: AiSfxConfig | None = None):
        super().__init__()
        self.config = config = config or AiSfxConfig()
        c = config.base_channels
        widths = (1, c, 2 * c, 4 * c, 8 * c)
        for i in range(4):
            self.add_module(f"conv_block{i + 1}", _ConvBlock(widths[i], widths[i + 1]))

    @property
    def embedding_dim(self) -> int:
        """The length D of an embedding."""
        return 8 * self.config.base_channels

    @property
    def time_stride(self) -> int:
        """Spectrogram frames per trunk frame (three 2x poolings)."""
        return 8

    def _blocks(self) -> list[_ConvBlock]:
        return [self.conv_block1, self.conv_block2, self.conv_block3, self.conv_block4]

    def frames(self, features: torch.Tensor) -> torch.Tensor:
        """The trunk: features (B, n_mels, T) -> frames (B, C, T // 8), each the mean over frequency of the
        last block's maps.

        Args:
            features (Tensor): (B, n_mels, T) from :class:`AiSfxFrontEnd`.

        Returns:
            Tensor: (B, C, T // 8) frames.

        Raises:
            ParameterError: ``features`` is not 3-D with ``n_mels`` bands.
        """
        if features.ndim != 3 or features.shape[1] != self.config.n_mels:
            raise ParameterError(
                f"features: expected (batch, {self.config.n_mels}, frames), got {tuple(features.shape)}"
            )
        return _trunk(self._blocks(), features)

    def inference_trunk(self) -> nn.Module:
        """A frozen copy of the trunk with every batch norm folded into its convolution (the same output as
        :meth:`frames` to float rounding): maps (B, n_mels, T) features to (B, C, T // 8) frames."""
        return _InferenceTrunk(self)

    def embed_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Pool trunk frames into embeddings: the maximum over time, L2-normalised.

        Args:
            frames (Tensor): (B, C, T') from :meth:`frames`.

        Returns:
            Tensor: (B, D) L2-normalised embeddings.
        """
        return nn.functional.normalize(frames.amax(dim=-1), dim=1)

    def embed_windows(self, frames: torch.Tensor, window: int, hop: int) -> torch.Tensor:
        """Embed every ``window`` consecutive frames, every ``hop`` frames, of one recording, each exactly as
        :meth:`embed_frames` embeds a clip of those frames.

        Args:
            frames (Tensor): (C, T') trunk frames of one recording, ``T' >= window``.
            window (int): frames per window, >= 1.
            hop (int): frames between window starts, >= 1.

        Returns:
            Tensor: (1 + (T' - window) // hop, D) L2-normalised embeddings.
        """
        pooled = nn.functional.max_pool1d(frames[None], window, hop)[0]  # (C, windows)
        return nn.functional.normalize(pooled.T, dim=1)

    def embed_windows_of(self, frames: torch.Tensor, windows: tuple[int, ...], hop: int) -> list[torch.Tensor]:
        """:meth:`embed_windows` for several window lengths at the same starts.

        Args:
            frames (Tensor): (C, T') trunk frames of one recording, ``T' >= max(windows)``.
            windows (tuple of int): frames per window of each grid, each >= 1.
            hop (int): frames between window starts, >= 1.

        Returns:
            list[Tensor]: per window length, its windows' L2-normalised embeddings.
        """
        return [self.embed_windows(frames, window, hop) for window in windows]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Embed features.

        Args:
            features (Tensor): (B, n_mels, frames) from :class:`AiSfxFrontEnd`.

        Returns:
            Tensor: (B, D) L2-normalised embeddings.
        """
        return self.embed_frames(self.frames(features))


def _trunk(blocks, features: torch.Tensor) -> torch.Tensor:
    x = features.transpose(1, 2)[:, None]  # (B, 1, time, freq): the network's layout
    for block, pool in zip(blocks, _POOLS):
        x = block(x)
        if pool != (1, 1):
            x = nn.functional.max_pool2d(x, pool)
    return x.mean(dim=3)  # (B, C, time')


class _FoldedBlock(nn.Module):
    """A :class:`_ConvBlock` in eval mode with each batch norm folded into its convolution."""

    def __init__(self, block: _ConvBlock):
        super().__init__()
        self.conv1 = fuse_conv_bn_eval(block.conv1, copy.deepcopy(block.bn1).eval())
        self.conv2 = fuse_conv_bn_eval(block.conv2, copy.deepcopy(block.bn2).eval())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x).relu_()).relu_()


class _InferenceTrunk(nn.Module):
    def __init__(self, encoder: AiSfxEncoder):
        super().__init__()
        self.blocks = nn.ModuleList(_FoldedBlock(block) for block in encoder._blocks())
        self.eval()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return _trunk(self.blocks, features)


def _package_file() -> Path:
    spec = importlib.util.find_spec("aisfx")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            "the 'sfx' model needs the aiSFX weights of the Python package aisfx 0.1.2, which is not installed; "
            "install it with `pip install --no-deps aisfx==0.1.2` (the project's scripts/bootstrap.sh does)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "models" / "checkpoint.pth"


def aisfx_weights(path: str | Path | None = None, *, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """The encoder's weights from aiSFX's checkpoint (the installed ``aisfx`` package's by default), keyed as
    :class:`AiSfxEncoder` names them; the classification heads of their training are left out.

    Args:
        path (str, Path or None, optional): their ``checkpoint.pth``; ``None``: the installed package's.
            Default: ``None``.
        sha256 (str or None, optional): the file's expected sha256 (a preset records it, so a different
            release is refused rather than silently used). Default: ``None`` (not checked).

    Returns:
        dict: parameter and buffer names of :class:`AiSfxEncoder` -> tensors.

    Raises:
        CheckpointError: the package is missing, the file differs from ``sha256`` or cannot be read.
    """
    import numpy as np

    path = Path(path) if path is not None else _package_file()
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no such file (aiSFX's weights); reinstall with `pip install --no-deps aisfx==0.1.2`"
        )
    if sha256 is not None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != sha256:
            raise CheckpointError(
                f"{path}: aiSFX weights with sha256 {digest[:12]}..., this preset was made for {sha256[:12]}... "
                "(aisfx 0.1.2); install that release with `pip install --no-deps aisfx==0.1.2`"
            )
    # their file pickles a dict of class counts holding numpy integers (saved under numpy 1's module names):
    # allow exactly those types, by the names the file uses
    core = np._core if hasattr(np, "_core") else np.core
    allowed = [(core.multiarray.scalar, "numpy.core.multiarray.scalar"), np.dtype, type(np.dtype("int64"))]
    with torch.serialization.safe_globals(allowed):
        payload = read_trusted(path, "aiSFX checkpoint", "reinstall with `pip install --no-deps aisfx==0.1.2`")
    state = payload[0] if isinstance(payload, (tuple, list)) else payload
    prefix = "embedding_net."
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not weights:
        raise CheckpointError(f"{path}: no 'embedding_net.*' weights in it; not aiSFX's checkpoint")
    return weights
