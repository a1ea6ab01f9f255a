"""Fitting waveforms to a length (``fix_length()``), cutting them into windows (``sliding_windows()``),
and where a clip is sounding (:func:`active_span`)."""

from __future__ import annotations

import torch

from ..errors import (
    ParameterError,
)


def active_span(
    wave: torch.Tensor, sample_rate: int, *, floor_db: float = 40.0, frame_seconds: float = 0.01
) -> tuple[int, int]:
    """Where a clip is sounding: from the first to the last frame within ``floor_db`` of its loudest frame.

    The one rule for a clip's extent: trimming (:func:`load_audio` ``trim_silence``), the ground truth of
    synthetic soundscapes and the event lengths a detector expects from its examples all use it.

    Args:
        wave (Tensor): (time,) or (channels, time) samples; channels are averaged to judge.
        sample_rate (int): its sample rate in Hz.
        floor_db (float, optional): frames quieter than this many dB below the loudest are silence.
            Default: ``40.0``.
        frame_seconds (float, optional): the length of the frames judged. Default: ``0.01``.

    Returns:
        tuple[int, int]: ``(start, stop)`` sample indices; the whole clip when it is shorter than a frame
        or silent throughout.
    """
    frame = max(1, int(frame_seconds * sample_rate))
    mono = (wave if wave.ndim == 1 else wave.mean(0)).double()
    n = mono.shape[-1] // frame
    if n == 0:
        return 0, mono.shape[-1]
    energy = mono[: n * frame].reshape(n, frame).pow(2).mean(1)
    loud = torch.nonzero(10 * torch.log10(energy.clamp_min(1e-20) / energy.max().clamp_min(1e-20)) > -floor_db)
    if loud.numel() == 0:
        return 0, mono.shape[-1]
    first, last = int(loud[0]), int(loud[-1])
    return first * frame, mono.shape[-1] if last == n - 1 else (last + 1) * frame


def fix_length(
    waveform: torch.Tensor, num_samples: int, *, mode: str = "center", generator: torch.Generator | None = None
) -> torch.Tensor:
    """Pad or crop the last axis to exactly ``num_samples``.

    Policy: a long clip is cropped (``"random"``: a random window, for training; ``"center"``: the middle;
    ``"start"``: the beginning). A short clip is zero-padded, placed at a random offset with ``"random"``,
    centred with ``"center"``, at the start with ``"start"``.

    Args:
        waveform (Tensor): (..., time); every leading axis gets the same crop or padding.
        num_samples (int): target length (> 0).
        mode (str, optional): ``"random"``, ``"center"`` or ``"start"``. Default: ``"center"``.
        generator (torch.Generator or None, optional): random source for ``"random"`` (``None``: torch's
            global one); unused by the other modes. Default: ``None``.

    Returns:
        Tensor: (..., num_samples); ``waveform`` itself when it already has that length.

    Raises:
        ParameterError: ``num_samples`` not positive, or an unknown ``mode``.
    """
    if int(num_samples) <= 0:
        raise ParameterError(f"num_samples={num_samples}: must be a positive number of samples")
    if mode not in ("random", "center", "start"):
        raise ParameterError(f"mode={mode!r}: expected 'random', 'center' or 'start'")
    n = waveform.shape[-1]
    if n == num_samples:
        return waveform
    slack = abs(n - num_samples)
    if mode == "random":
        offset = int(torch.randint(0, slack + 1, (1,), generator=generator))
    elif mode == "center":
        offset = slack // 2
    else:
        offset = 0
    if n > num_samples:
        return waveform[..., offset : offset + num_samples]
    return torch.nn.functional.pad(waveform, (offset, slack - offset))


def sliding_windows(waveform: torch.Tensor, window: int, hop: int) -> torch.Tensor:
    """Cut a (time,) waveform into overlapping windows for embedding a long clip.

    Policy: windows start every ``hop`` samples; a clip shorter than ``window`` gives one zero-padded
    window; the last window is aligned to the clip's end, so the tail is always covered and no window
    is mostly padding.

    Args:
        waveform (Tensor): (time,) samples.
        window (int): samples per window (> 0).
        hop (int): samples between window starts (> 0); a ``hop`` below ``window`` makes the windows overlap.

    Returns:
        Tensor: (n_windows, window).

    Raises:
        ParameterError: ``window`` or ``hop`` not positive, or ``waveform`` not 1-D.
    """
    if window <= 0 or hop <= 0:
        raise ParameterError(f"window={window}, hop={hop}: both must be positive numbers of samples")
    if waveform.ndim != 1:
        raise ParameterError(f"waveform: expected shape (time,), got {tuple(waveform.shape)}")
    n = waveform.shape[0]
    if n <= window:
        return fix_length(waveform, window, mode="start")[None]
    starts = list(range(0, n - window + 1, hop))
    if starts[-1] != n - window:
        starts.append(n - window)
    return torch.stack([waveform[s : s + window] for s in starts])
