"""The encoder: a compact ResNet over log-mel spectrograms with attentive statistics pooling.

Shape flow for the default config and a 1 s clip at 16 kHz (64 mels, 101 frames):

    (B, 64, 101) -> stem conv, stride 2        -> (B, 32, 32, 51)
                 -> stage 1, stride 2           -> (B, 48, 16, 26)
                 -> stage 2, stride 2           -> (B, 96,  8, 13)
                 -> stage 3, stride (2, 1)      -> (B, 160, 4, 13)
                 -> frequency folded into channels (B, 640, 13)
                 -> attentive statistics pooling (B, 1280)   (any number of frames)
                 -> linear + batch norm         -> (B, D), L2-normalised

Early downsampling keeps it cheap (about 40 MFLOPs per second of audio), which is what lets it embed
hundreds of clips per second on two CPU cores; the last stage keeps time resolution for the pooling.
Attentive statistics pooling (Okabe et al., 2018) weights frames by learned relevance and pools their
mean and standard deviation, so silence and padding matter little and clips of any length map to one
vector.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..errors import ParameterError


@dataclass
class EncoderConfig:
    """Architecture of :class:`ResNetEncoder` (stored in checkpoints).

    Attributes:
        n_mels (int): mel bands of the input features; must match the front end. Default: ``64``.
        channels (tuple of int): widths of the stem, then one entry per stage, so one more entry than
            ``blocks``. Default: ``(32, 48, 96, 160)``.
        blocks (tuple of int): residual blocks per stage. Default: ``(1, 1, 1)``.
        embedding_dim (int): embedding size D. Default: ``192``.
        attention_dim (int): hidden size of the attentive statistics pooling. Default: ``128``.
    """

    n_mels: int = 64
    channels: tuple[int, ...] = (32, 48, 96, 160)  # stem, then one entry per stage
    blocks: tuple[int, ...] = (1, 1, 1)  # residual blocks per stage
    embedding_dim: int = 192
    attention_dim: int = 128

    def to_dict(self) -> dict:
        """The configuration as plain values, as a checkpoint stores it."""
        d = asdict(self)
        d["channels"], d["blocks"] = list(self.channels), list(self.blocks)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EncoderConfig":
        """The configuration that :meth:`to_dict` gave ``d``.

        Args:
            d (dict): the plain values, as a checkpoint stores them.
        """
        d = dict(d)
        d["channels"], d["blocks"] = tuple(d["channels"]), tuple(d["blocks"])
        return cls(**d)


class _Block(nn.Module):
    """Basic residual block (two 3x3 convs), projecting the shortcut when shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: tuple[int, int]):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if c_in != c_out or stride != (1, 1):
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class AttentiveStatsPooling(nn.Module):
    """(B, C, T) -> (B, 2C): attention-weighted mean and standard deviation over time.

    Args:
        channels (int): C, the channels of the input frames (attention weights are per channel and frame).
        attention_dim (int): hidden size of the attention's 1x1 convolutions.
    """

    def __init__(self, channels: int, attention_dim: int):
        super().__init__()
        self.attention = nn.Sequential(
            nn.Conv1d(channels, attention_dim, 1), nn.Tanh(), nn.Conv1d(attention_dim, channels, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool frames into one vector per item.

        Args:
            x (Tensor): (B, C, T) frames, any T >= 1.

        Returns:
            Tensor: (B, 2C): the weighted means, then the weighted standard deviations.
        """
        return torch.cat(_weighted_stats(x, self.attention(x)), dim=1)

    @torch.no_grad()
    def windows(self, x: torch.Tensor, window: int, hop: int) -> torch.Tensor:
        """Pool every ``window`` consecutive frames, every ``hop`` frames, of one long sequence, for inference
        (no gradients: it writes into buffers it allocates once).

        The attention is a per-frame (1x1) function, so it is computed once per frame and shared by all the
        windows containing that frame; each window is then pooled exactly as :meth:`forward` pools a clip
        of ``window`` frames.

        Args:
            x (Tensor): (C, T) frames of one recording, ``T >= window``.
            window (int): frames per window, >= 1.
            hop (int): frames between window starts, >= 1.

        Returns:
            Tensor: (1 + (T - window) // hop, 2C), window ``i`` starting at frame ``i * hop``.
        """
        return self.windows_of(x, (window,), hop)[0]

    @torch.no_grad()
    def windows_of(self, x: torch.Tensor, windows: tuple[int, ...], hop: int) -> list[torch.Tensor]:
        """:meth:`windows` for several window lengths at the same starts, sharing the attention and the
        hop-long sums between them (for a second, shorter grid of windows at little extra cost).

        Args:
            x (Tensor): (C, T) frames of one recording, ``T >= max(windows)``.
            windows (tuple of int): frames per window of each grid, each >= 1.
            hop (int): frames between window starts, >= 1.

        Returns:
            list[Tensor]: per window length, (1 + (T - window) // hop, 2C) as :meth:`windows` returns.
        """
        channels = x.shape[0]
        # The 1x1 convolutions as matrix products: for a single long sequence Conv1d takes its im2col path,
        # which copies the input first; addmm reads it in place.
        first, second = self.attention[0], self.attention[2]
        hidden = torch.addmm(first.bias[:, None], first.weight[:, :, 0], x).tanh_()
        logits = torch.addmm(second.bias[:, None], second.weight[:, :, 0], hidden)  # (C, T)
        # A window's softmax is unchanged by any shift of its logits, so one shift per channel serves all
        # windows, and the three weighted sums become box sums (no (windows, C, window) tensors): work
        # proportional to the frames, not to frames x window as pooling each window would be. They are
        # written into one buffer, not stacked afterwards.
        moments = x.new_empty(3, channels, x.shape[1])
        weights = torch.sub(logits, logits.amax(dim=1, keepdim=True), out=moments[0]).exp_()
        torch.mul(weights, x, out=moments[1])
        torch.mul(moments[1], x, out=moments[2])
        out = []
        for window, sums in zip(windows, _box_sums_of(moments, windows, hop)):
            total = sums[0]
            stats = x.new_empty(2 * channels, sums.shape[-1])  # (2C, windows): the means, then the deviations
            if bool((total < 1e-30).any()):  # a window whose logits all lie ~70 below its channel's peak
                mean, std = _weighted_stats(x.unfold(1, window, hop), logits.unfold(1, window, hop))
                stats[:channels], stats[channels:] = mean, std
            else:
                mean = torch.div(sums[1], total, out=stats[:channels])
                std = torch.div(sums[2], total, out=stats[channels:])
                std.sub_(mean.square()).clamp_min_(1e-6).sqrt_()
            out.append(stats.T)
        return out


def _box_sums_of(x: torch.Tensor, windows: tuple[int, ...], hop: int) -> list[torch.Tensor]:
    """Per window length, the sums over ``window`` consecutive values, every ``hop``, along the last
    dimension. When ``hop`` divides ``window``: as sums of shifted slices, the ``hop``-long blocks first
    (once for all the lengths), then ``window // hop`` consecutive blocks per window (a dozen vectorised
    additions; 7x faster than the CPU pooling kernel on a minute of the bundled model's frames)."""
    if any(window % hop for window in windows):
        return [nn.functional.avg_pool1d(x, window, hop).mul_(window) for window in windows]
    blocks = x.shape[-1] // hop  # the hop-long blocks the windows of every length cover
    block_sums = x[..., 0 : blocks * hop : hop].clone()
    for offset in range(1, hop):
        block_sums += x[..., offset : blocks * hop : hop]
    out = []
    for window in windows:
        count, per_window = (x.shape[-1] - window) // hop + 1, window // hop
        sums = block_sums[..., :count].clone()
        for offset in range(1, per_window):
            sums += block_sums[..., offset : offset + count]
        out.append(sums)
    return out


def _weighted_stats(x: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames and attention logits (..., T) -> softmax-weighted mean and standard deviation over T (...)."""
    weights = torch.softmax(logits, dim=-1)
    mean = (x * weights).sum(dim=-1)
    var = (x.square() * weights).sum(dim=-1) - mean.square()
    return mean, var.clamp_min(1e-6).sqrt()


class ResNetEncoder(nn.Module):
    """Log-mel (B, n_mels, frames) -> L2-normalised embedding (B, embedding_dim).

    Args:
        config (EncoderConfig or None, optional): the architecture; ``None``: ``EncoderConfig()``.
            Default: ``None``.

    Raises:
        ParameterError: ``config.channels`` is not one entry longer than ``config.blocks``.
    """

    #: the name a checkpoint records for this architecture (models.checkpoint.ARCHITECTURES)
    architecture = "resnet"

    def __init__(self, config: EncoderConfig | None = None):
        super().__init__()
        self.config = config = config or EncoderConfig()
        if len(config.channels) != len(config.blocks) + 1:
            raise ParameterError(
                f"channels={config.channels}, blocks={config.blocks}: need one channel count for "
                "the stem plus one per stage"
            )
        c = config.channels
        self.stem = nn.Sequential(nn.Conv2d(1, c[0], 3, 2, 1, bias=False), nn.BatchNorm2d(c[0]), nn.ReLU())
        stages, freq = [], (config.n_mels + 1) // 2
        for i, n_blocks in enumerate(config.blocks):
            last = i == len(config.blocks) - 1
            stride = (2, 1) if last else (2, 2)  # keep time resolution for pooling in the last stage
            layers = [_Block(c[i], c[i + 1], stride)] + [
                _Block(c[i + 1], c[i + 1], (1, 1)) for _ in range(n_blocks - 1)
            ]
            stages.append(nn.Sequential(*layers))
            freq = (freq + 1) // 2
        self.stages = nn.Sequential(*stages)
        pooled = c[-1] * freq
        self.pool = AttentiveStatsPooling(pooled, config.attention_dim)
        self.head = nn.Sequential(nn.Linear(2 * pooled, config.embedding_dim), nn.BatchNorm1d(config.embedding_dim))

    @property
    def embedding_dim(self) -> int:
        """The length D of an embedding."""
        return self.config.embedding_dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Embed log-mel features.

        Args:
            features (Tensor): (B, n_mels, frames) log-mel spectrograms.

        Returns:
            Tensor: (B, embedding_dim) L2-normalised embeddings.

        Raises:
            ParameterError: ``features`` is not 3-D with ``n_mels`` bands.
        """
        return self.embed_frames(self.frames(features))

    @property
    def time_stride(self) -> int:
        """Spectrogram frames per output frame of :meth:`frames` (the stem and every stage but the last
        halve time)."""
        return 2 ** len(self.config.blocks)

    def frames(self, features: torch.Tensor) -> torch.Tensor:
        """The convolutional trunk: log-mel (B, n_mels, T) -> frames (B, C, ceil(T / time_stride)).

        Frame ``j`` is centred on spectrogram frame ``time_stride * j`` and sees about 0.7 s around it, so
        the frames of a long recording computed once serve every window over it (:meth:`embed_windows`).

        Args:
            features (Tensor): (B, n_mels, T) log-mel spectrograms.

        Returns:
            Tensor: (B, C, T') with C = the last stage's channels times its remaining frequency bins.

        Raises:
            ParameterError: ``features`` is not 3-D with ``n_mels`` bands.
        """
        if features.ndim != 3 or features.shape[1] != self.config.n_mels:
            raise ParameterError(
                f"features: expected (batch, {self.config.n_mels}, frames), got {tuple(features.shape)}"
            )
        return self.stages(self.stem(features[:, None])).flatten(1, 2)  # (B, C * F', T')

    def inference_trunk(self) -> nn.Module:
        """A frozen copy of the trunk for fast inference: every batch norm folded into the convolution
        before it, channels-last memory, ReLUs and residual sums in place. Same output as :meth:`frames` to
        float rounding, 1.8x faster on 2 CPU cores (a minute of audio: 78 -> 44 ms); a snapshot of today's
        weights (build a new one after training further).

        Returns:
            nn.Module: maps (B, n_mels, T) log-mel features to (B, C, T') frames, in eval mode.
        """
        return _InferenceTrunk(self)

    def embed_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Pool trunk frames (B, C, T') into L2-normalised embeddings (B, D).

        Args:
            frames (Tensor): (B, C, T') from :meth:`frames`.

        Returns:
            Tensor: (B, embedding_dim) L2-normalised embeddings.
        """
        return nn.functional.normalize(self.head(self.pool(frames)), dim=1)

    def embed_windows(self, frames: torch.Tensor, window: int, hop: int) -> torch.Tensor:
        """Embed every ``window`` consecutive frames, every ``hop`` frames, of one long frame sequence.

        Each window gets exactly the embedding :meth:`embed_frames` gives a clip of those frames; the
        pooling's attention is computed once per frame for all of them.

        Args:
            frames (Tensor): (C, T') trunk frames of one recording (:meth:`frames`), ``T' >= window``.
            window (int): frames per window, >= 1.
            hop (int): frames between window starts, >= 1.

        Returns:
            Tensor: (1 + (T' - window) // hop, embedding_dim) L2-normalised embeddings, window ``i`` starting
            at frame ``i * hop``.
        """
        return nn.functional.normalize(self.head(self.pool.windows(frames, window, hop)), dim=1)

    def embed_windows_of(self, frames: torch.Tensor, windows: tuple[int, ...], hop: int) -> list[torch.Tensor]:
        """:meth:`embed_windows` for several window lengths at the same starts, sharing the pooling's
        attention and sums (``AttentiveStatsPooling.windows_of()``).

        Args:
            frames (Tensor): (C, T') trunk frames of one recording, ``T' >= max(windows)``.
            windows (tuple of int): frames per window of each grid, each >= 1.
            hop (int): frames between window starts, >= 1.

        Returns:
            list[Tensor]: per window length, (1 + (T' - window) // hop, embedding_dim) L2-normalised
            embeddings.
        """
        return [nn.functional.normalize(self.head(s), dim=1) for s in self.pool.windows_of(frames, windows, hop)]


class _InferenceTrunk(nn.Module):
    """:meth:`ResNetEncoder.inference_trunk`: the stem and stages with batch norms folded, channels-last, and
    every ReLU and residual sum done in place (each would otherwise allocate and fill one more tensor the
    size of a layer's output: a fifth of the trunk's time on long recordings)."""

    def __init__(self, encoder: ResNetEncoder):
        super().__init__()
        stem_conv, stem_bn = encoder.stem[0], encoder.stem[1]
        self.stem = _fold(stem_conv, stem_bn)
        self.blocks = nn.ModuleList(_InferenceBlock(block) for stage in encoder.stages for block in stage)
        self.to(memory_format=torch.channels_last).eval()

    def forward(self, features: torch.Tensor, observe: Callable[[str, torch.Tensor], None] | None = None):
        """(B, n_mels, T) -> (B, C, T'); ``observe(point, activation)``, when given, sees each activation the
        int8 trunk quantizes (:func:`audiosiam.models.quantized.trunk_points`), to measure their ranges."""
        observe = observe or (lambda point, x: None)
        observe("input", features)
        x = self.stem(features[:, None].contiguous(memory_format=torch.channels_last)).relu_()
        observe("stem", x)
        for i, block in enumerate(self.blocks):
            x = block(x, lambda point, y: observe(f"block{i}.{point}", y))
        return x.flatten(1, 2).contiguous()


class _InferenceBlock(nn.Module):
    def __init__(self, block: _Block):
        super().__init__()
        self.conv1, self.conv2 = _fold(block.conv1, block.bn1), _fold(block.conv2, block.bn2)
        shortcut = block.shortcut
        self.shortcut = nn.Identity() if isinstance(shortcut, nn.Identity) else _fold(shortcut[0], shortcut[1])

    def forward(self, x: torch.Tensor, observe: Callable[[str, torch.Tensor], None]) -> torch.Tensor:
        hidden = self.conv1(x).relu_()
        observe("conv1", hidden)
        skip = self.shortcut(x)
        if skip is not x:
            observe("shortcut", skip)
        out = self.conv2(hidden)
        observe("conv2", out)
        out = out.add_(skip).relu_()
        observe("out", out)
        return out


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A copy of ``conv`` followed by ``bn`` (in eval mode) as one convolution."""
    return fuse_conv_bn_eval(conv, copy.deepcopy(bn).eval())  # it copies the convolution itself
