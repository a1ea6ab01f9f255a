"""How augmentations draw their settings (from the generator they are given) and check their ranges."""

from __future__ import annotations

from typing import Sequence

import torch

from ..errors import ParameterError


def uniform(low: float, high: float, size, generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(size, generator=generator)


def check_range(name: str, value: Sequence[float]) -> tuple[float, float]:
    low, high = (float(v) for v in value)
    if low > high:
        raise ParameterError(f"{name}={tuple(value)}: expected (low, high) with low <= high")
    return low, high


def check_probability(p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise ParameterError(f"p={p}: a probability must lie in [0, 1]")
    return float(p)


def mix_at_snr(signal: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    signal_power = signal.pow(2).mean().clamp_min(1e-10)
    noise_power = noise.pow(2).mean().clamp_min(1e-10)
    return signal + noise * torch.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
