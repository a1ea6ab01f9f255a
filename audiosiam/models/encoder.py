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

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..errors import ParameterError

__all__ = ["EncoderConfig", "ResNetEncoder", "AttentiveStatsPooling"]


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
        d = asdict(self)
        d["channels"], d["blocks"] = list(self.channels), list(self.blocks)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EncoderConfig":
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
        weights = torch.softmax(self.attention(x), dim=2)
        mean = (x * weights).sum(dim=2)
        var = (x.square() * weights).sum(dim=2) - mean.square()
        return torch.cat([mean, var.clamp_min(1e-6).sqrt()], dim=1)


class ResNetEncoder(nn.Module):
    """Log-mel (B, n_mels, frames) -> L2-normalised embedding (B, embedding_dim).

    Args:
        config (EncoderConfig or None, optional): the architecture; ``None``: ``EncoderConfig()``.
            Default: ``None``.

    Raises:
        ParameterError: ``config.channels`` is not one entry longer than ``config.blocks``.
    """

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
        if features.ndim != 3 or features.shape[1] != self.config.n_mels:
            raise ParameterError(
                f"features: expected (batch, {self.config.n_mels}, frames), got {tuple(features.shape)}"
            )
        x = self.stages(self.stem(features[:, None]))
        x = x.flatten(1, 2)  # (B, C * F', T')
        return nn.functional.normalize(self.head(self.pool(x)), dim=1)
