"""Measuring the activation ranges of the int8 trunk (``audiosiam.models.quantized``) on real recordings.

Apart from the trunk itself because the measurement runs the long-recording path
(:class:`~audiosiam.models.sliding.SlidingEmbedder`), which runs the int8 trunk: fitting depends on both,
inference on neither of this. ``audiosiam train`` calls it at the end of a run, and
``scripts/fit_int8_ranges.py`` on a finished checkpoint.
"""

from __future__ import annotations

import os
import random
from typing import Callable, Iterable, Sequence

import torch
from tqdm.auto import tqdm

from ..errors import ParameterError
from ..io import load_many
from .encoder import ResNetEncoder
from .sliding import SlidingEmbedder


def fit_activation_ranges(
    encoder: ResNetEncoder, features: Iterable[torch.Tensor], *, progress: Callable[[], None] | None = None
) -> dict[str, list[float]]:
    """Measure the range of every point the int8 trunk quantizes on some recordings' features.

    Args:
        encoder (ResNetEncoder): the model's encoder (its weights as they will be used).
        features (Iterable[Tensor]): (1, n_mels, T) normalised log-mel features of real recordings, as the
            long-recording path computes them (:meth:`~audiosiam.models.sliding.SlidingEmbedder.features`);
            several minutes of varied sound in all.
        progress (callable or None, optional): called after each recording. Default: ``None``.

    Returns:
        dict: ``{point: [low, high]}`` for every name of
        :func:`~audiosiam.models.quantized.trunk_points`: the smallest and largest value seen there.
        Store it as ``info[quantized.RANGES_KEY]``.

    Raises:
        ParameterError: no features were given.
    """
    trunk = encoder.inference_trunk()
    ranges: dict[str, list[float]] = {}

    def observe(name: str, x: torch.Tensor) -> None:
        low, high = torch.aminmax(x.detach())
        seen = ranges.setdefault(name, [float("inf"), float("-inf")])
        seen[0], seen[1] = min(seen[0], float(low)), max(seen[1], float(high))

    with torch.inference_mode():
        for piece in features:
            trunk(piece, observe=observe)
            if progress is not None:
                progress()
    if not ranges:
        raise ParameterError("fit_activation_ranges: no features given; pass a few minutes of real recordings")
    return ranges


def fit_int8_ranges(
    model,
    clips: Sequence[str | os.PathLike | torch.Tensor],
    *,
    minutes: float = 30.0,
    seed: int = 0,
    clip_seconds: float = 10.0,
    recording_seconds: float = 60.0,
    progress: bool = False,
) -> dict[str, list[float]]:
    """The int8 ranges of ``model``, measured on clips joined into recordings as ``find`` would see them.

    A seeded random draw of ``clips``, each one's first ``clip_seconds``, until ``minutes`` of audio, joined
    into recordings of ``recording_seconds`` and put through the long-recording front end
    (:meth:`~audiosiam.models.sliding.SlidingEmbedder.features`) and the float trunk.

    Args:
        model (EmbeddingModel): the model (its front end normalising per utterance).
        clips (Sequence): audio files, or (samples,) mono waveforms at ``model.sample_rate``: varied real
            sound, such as the model's training clips. Unreadable files are passed over.
        minutes (float, optional): audio to measure on (30 minutes take ~10 s on 2 cores). Default: ``30.0``.
        seed (int, optional): the draw. Default: ``0``.
        clip_seconds (float, optional): the most taken from one clip. Default: ``10.0``.
        recording_seconds (float, optional): length of each joined recording. Default: ``60.0``.
        progress (bool, optional): a progress bar over the recordings. Default: ``False``.

    Returns:
        dict: ``{point: [low, high]}`` (:func:`fit_activation_ranges`), for ``info[quantized.RANGES_KEY]``.

    Raises:
        ParameterError: no clip could be read.
    """
    rate = model.sample_rate
    order = list(clips)
    random.Random(seed).shuffle(order)
    embedder = SlidingEmbedder(model, model.window_seconds, model.window_seconds, precision="float32")

    def waves() -> Iterable[torch.Tensor]:
        budget = int(minutes * 60 * rate)
        for start in range(0, len(order), 256):  # files read a batch at a time, only as many as needed
            batch = order[start : start + 256]
            paths = [c for c in batch if not torch.is_tensor(c)]
            decoded = iter(load_many(paths, rate, on_error="return")) if paths else iter(())
            for clip in batch:
                wave = clip if torch.is_tensor(clip) else next(decoded)
                if isinstance(wave, BaseException):
                    continue
                wave = wave.reshape(-1)[: int(clip_seconds * rate)].float()
                yield wave
                budget -= wave.numel()
                if budget <= 0:
                    return

    def recordings() -> Iterable[torch.Tensor]:
        held, count = [], 0
        for wave in waves():
            held.append(wave)
            count += wave.numel()
            if count >= recording_seconds * rate:
                yield torch.cat(held)
                held, count = [], 0
        if count:
            yield torch.cat(held)

    bar = tqdm(desc="int8 ranges", unit=" recordings", disable=not progress)
    with torch.inference_mode(), bar:
        try:
            return fit_activation_ranges(
                model.encoder, (embedder.features(r) for r in recordings()), progress=bar.update
            )
        except ParameterError:
            raise ParameterError(f"int8 ranges: none of the {len(order)} clips could be read") from None
