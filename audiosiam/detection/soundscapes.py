"""Synthetic soundscapes with a known answer: events mixed into a background at chosen times and SNRs.

Used to score detectors (``benchmarks/``, tests) on long recordings whose ground truth is exact. Each
event is scaled so that its level over its own active part stands ``snr_db`` above the background's level
over the same stretch, then added; the true event spans where the clip's own samples are loud
(``audiosiam.io.framing.active_span()``: onset and offset at -40 dB of its loudest 10 ms frame), not the
silence it may be padded with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..errors import ParameterError
from ..io.framing import active_span
from .events import Event


@dataclass(frozen=True, eq=False)  # a tensor field: compared by identity, not element-wise
class Placement:
    """One clip to mix into a soundscape.

    Attributes:
        clip (Tensor): (time,) float samples at the soundscape's rate.
        label (str): its label in the ground truth.
        start (float): where it begins, seconds from the start of the soundscape.
        snr_db (float): its level over the background's, in dB, both measured where the clip is active.
    """

    clip: torch.Tensor
    label: str
    start: float
    snr_db: float


def make_soundscape(
    background: torch.Tensor,
    placements: Sequence[Placement],
    *,
    sample_rate: int = 16000,
    file: str = "soundscape",
) -> tuple[torch.Tensor, list[Event]]:
    """Mix clips into a background and return the mixture with its ground truth.

    Args:
        background (Tensor): (time,) float samples: the recording's length and its ambience (all zeros for
            none: clips are then added at their own level, as there is nothing to measure an SNR against).
        placements (Sequence[Placement]): the clips, where they go and how loud; they may overlap each
            other (a distractor over a target, say) but must lie within the background.
        sample_rate (int, optional): samples per second of the background and every clip. Default: ``16000``.
        file (str, optional): the ``file`` field of the returned events. Default: ``"soundscape"``.

    Returns:
        (Tensor, list[Event]): the mixture (time,) float32, peak-limited to 0.99 if the sum would clip (the
        ground truth does not move), and one :class:`Event` per placement over the clip's active part.

    Raises:
        ParameterError: a placement outside the background, an empty or silent clip, or a non-1-D input.
    """
    if background.ndim != 1:
        raise ParameterError(f"background: expected a (time,) waveform, got shape {tuple(background.shape)}")
    mix = background.to(torch.float64).clone()
    noise_floor = 1e-10
    events = []
    for n, p in enumerate(placements):
        clip = torch.as_tensor(p.clip).to(torch.float64)
        if clip.ndim != 1 or clip.numel() == 0 or float(clip.abs().max()) == 0:
            raise ParameterError(f"placements[{n}] ({p.label}): expected a non-silent (time,) clip")
        begin = int(round(p.start * sample_rate))
        if begin < 0 or begin + clip.numel() > mix.numel():
            raise ParameterError(
                f"placements[{n}] ({p.label}): {p.start:.3f} s + {clip.numel() / sample_rate:.3f} s lies outside "
                f"the {mix.numel() / sample_rate:.3f} s background"
            )
        on, off = active_span(clip, sample_rate)
        clip_rms = float(clip[on:off].pow(2).mean().sqrt())
        bg_rms = float(background[begin + on : begin + off].to(torch.float64).pow(2).mean().sqrt())
        gain = 1.0 if bg_rms < noise_floor else bg_rms * 10 ** (p.snr_db / 20) / clip_rms
        mix[begin : begin + clip.numel()] += gain * clip
        events.append(Event(file, p.label, (begin + on) / sample_rate, (begin + off) / sample_rate))
    peak = float(mix.abs().max()) if mix.numel() else 0.0
    if peak > 0.99:
        mix *= 0.99 / peak
    return mix.to(torch.float32), events


def random_placements(
    clips: Sequence[tuple[torch.Tensor, str]],
    duration: float,
    *,
    snr_db: tuple[float, float] = (0.0, 12.0),
    sample_rate: int = 16000,
    seed: int = 0,
    gap: float = 0.25,
) -> list[Placement]:
    """Random, non-overlapping places for ``clips`` in a recording of ``duration`` seconds.

    Args:
        clips (Sequence[tuple[Tensor, str]]): ``(clip, label)`` pairs, all placed once, in a random order.
        duration (float): the recording's length in seconds.
        snr_db (tuple[float, float], optional): each clip's SNR is drawn uniformly from this range.
            Default: ``(0.0, 12.0)``.
        sample_rate (int, optional): samples per second of the clips. Default: ``16000``.
        seed (int, optional): the seed of the draw. Default: ``0``.
        gap (float, optional): seconds kept free between neighbouring clips. Default: ``0.25``.

    Returns:
        list[Placement]: in time order.

    Raises:
        ParameterError: the clips and gaps do not fit into ``duration``.
    """
    rng = np.random.default_rng(seed)
    lengths = [c.numel() / sample_rate for c, _ in clips]
    free = duration - sum(lengths) - gap * (len(clips) + 1)
    if free < 0:
        raise ParameterError(f"{len(clips)} clips of {sum(lengths):.1f} s do not fit into {duration:.1f} s")
    order = rng.permutation(len(clips))
    # Spread the free time over the len + 1 gaps at random (a uniform point of the simplex).
    shares = rng.dirichlet(np.ones(len(clips) + 1)) * free
    t, out = gap + shares[0], []
    for slot, i in enumerate(order):
        clip, label = clips[i]
        out.append(Placement(clip, label, math.floor(t * sample_rate) / sample_rate, float(rng.uniform(*snr_db))))
        t += lengths[i] + gap + shares[slot + 1]
    return out
