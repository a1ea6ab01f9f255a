"""Small clips generated for tests: tones, noise, silence, clicks, and broken files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf


def sine(freq: float = 440.0, seconds: float = 0.5, rate: int = 16000, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def sweep(seconds: float = 1.0, rate: int = 16000, f0: float = 100.0, f1: float = 4000.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * math.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds))
    return (0.4 * np.sin(phase)).astype(np.float32)


def noise(seconds: float = 0.5, rate: int = 16000, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


def clicks(seconds: float = 0.5, rate: int = 16000, every: float = 0.1) -> np.ndarray:
    x = np.zeros(int(seconds * rate), dtype=np.float32)
    x[:: int(every * rate)] = 0.9
    return x


def write(path: Path, data: np.ndarray, rate: int = 16000, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate, **kwargs)
    return path
