"""The encoder's convolutional trunk in 8-bit integers, for long recordings on the CPU.

The trunk is three quarters of the work of searching a long recording (``find``), and in 32-bit floats it
already runs near this CPU's peak multiply-add rate, so only less arithmetic makes it faster: with 8-bit
weights and activations, oneDNN's integer convolutions do the same work in about 0.6x the time (1.6-1.7x
on one core of the AVX2 development machine, 120 s of audio), and the windows' embeddings stay within a
cosine of 0.9996 of the float ones on average, 0.996 at worst (``tests/test_quantized.py``; detection
accuracy, unchanged, in ``docs/experiments/2026-12-01-find-int8-trunk.md``).

The rule, static post-training quantization:

* **Weights**: each convolution (batch norm folded in, as in
  :meth:`~audiosiam.models.encoder.ResNetEncoder.inference_trunk`) per output channel, symmetric, int8;
  biases stay float.
* **Activations**: per tensor, unsigned 8-bit, over a fixed range for each point the network quantizes:
  the normalised log-mel input, the stem's output, and each residual block's two convolutions, projected
  shortcut and output. The ranges are measured once on real recordings (:func:`fit_activation_ranges`:
  the smallest and largest value of each point) and stored in the checkpoint (``info["int8_ranges"]``),
  because they must not depend on the recording being searched: a quiet start must not clip a loud event
  later. Values beyond a range saturate. Clipping costs more than resolution: ranges cut at the 99.9th,
  99.99th and 99.999th percentiles gave worst-window cosines of 0.95, 0.983 and 0.992 to the float
  embeddings on recordings of training sounds, the full range 0.998.
* Each ReLU is fused into the integer convolution before it (``quantized::conv2d_relu``) and each residual
  sum is one integer op with its ReLU (``quantized::add_relu``; fusing it into the convolution as well
  needs torch's process-wide quantized engine switched to oneDNN at every call, and gains nothing
  measurable); the frames come back as float32.

A checkpoint without ranges (a model trained before they existed) runs the float trunk.
"""

from __future__ import annotations

import os
import random
import threading
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from ..errors import ParameterError
from .encoder import ResNetEncoder

__all__ = ["RANGES_KEY", "Int8Trunk", "int8_available", "trunk_points", "fit_activation_ranges", "fit_int8_ranges"]

#: Where a checkpoint keeps the activation ranges: ``info[RANGES_KEY] = {point: [low, high]}``.
RANGES_KEY = "int8_ranges"

# torch picks the integer kernels by a process-wide setting when weights are packed; packed weights keep
# the kernels they were packed for, so the setting is changed only while packing, under this lock.
_ENGINE_LOCK = threading.Lock()


def int8_available() -> bool:
    """Whether this torch build has oneDNN's integer convolutions (every x86-64 CPU build does)."""
    return "onednn" in torch.backends.quantized.supported_engines


def trunk_points(encoder: ResNetEncoder) -> list[str]:
    """The names of the activations the int8 trunk quantizes, in order.

    Args:
        encoder (ResNetEncoder): the encoder (its residual blocks decide the names).

    Returns:
        list[str]: ``"input"``, ``"stem"``, then per block ``"block<i>.conv1"``, ``"block<i>.shortcut"`` (a
        projected shortcut only), ``"block<i>.conv2"`` and ``"block<i>.out"``.
    """
    points = ["input", "stem"]
    for i, block in enumerate(_blocks(encoder)):
        points.append(f"block{i}.conv1")
        if not isinstance(block.shortcut, nn.Identity):
            points.append(f"block{i}.shortcut")
        points += [f"block{i}.conv2", f"block{i}.out"]
    return points


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
        dict: ``{point: [low, high]}`` for every name of :func:`trunk_points`: the smallest and largest
        value seen there. Store it as ``info[RANGES_KEY]``.

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
        dict: ``{point: [low, high]}`` (:func:`fit_activation_ranges`), for ``info[RANGES_KEY]``.

    Raises:
        ParameterError: no clip could be read.
    """
    from tqdm.auto import tqdm

    from ..io import load_many
    from .sliding import SlidingEmbedder

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


class Int8Trunk(nn.Module):
    """The trunk of ``encoder`` in 8-bit integers: (B, n_mels, T) log-mel -> (B, C, T') float32 frames, as
    :meth:`ResNetEncoder.frames` gives them to within the quantization error (CPU only).

    Args:
        encoder (ResNetEncoder): the encoder; its weights are copied now.
        ranges (dict): ``{point: [low, high]}`` for every name of :func:`trunk_points`
            (:func:`fit_activation_ranges`, as a checkpoint stores it).

    Raises:
        ParameterError: ``ranges`` lacks a point or has one with ``high <= low``, or this torch build has
            no integer convolutions (:func:`int8_available`).
    """

    def __init__(self, encoder: ResNetEncoder, ranges: dict):
        super().__init__()
        if not int8_available():
            raise ParameterError("int8 inference needs torch's oneDNN integer kernels, which this build lacks")
        missing = [p for p in trunk_points(encoder) if p not in ranges]
        if missing:
            raise ParameterError(f"int8 ranges: no range for {missing}; refit them (fit_activation_ranges)")
        self._scales = {}  # point -> (scale, zero point) of its quint8 values
        for point in trunk_points(encoder):
            low, high = (float(v) for v in ranges[point])
            if not high > low:
                raise ParameterError(f"int8 ranges: {point} has low={low}, high={high}; refit them")
            low, high = min(low, 0.0), max(high, 0.0)  # zero must be exact (padding, ReLU)
            scale = (high - low) / 255
            self._scales[point] = (scale, int(round(-low / scale)))
        folded = encoder.inference_trunk()  # batch norms folded into the convolutions
        with _ENGINE_LOCK:
            engine = torch.backends.quantized.engine
            torch.backends.quantized.engine = "onednn"
            try:
                self._stem = _pack(folded.stem)
                self._blocks = [
                    (
                        _pack(b.conv1),
                        _pack(b.conv2),
                        None if isinstance(b.shortcut, nn.Identity) else _pack(b.shortcut),
                    )
                    for b in folded.blocks
                ]
            finally:
                torch.backends.quantized.engine = engine

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Trunk frames of log-mel features.

        Args:
            features (Tensor): (B, n_mels, T) float32 normalised log-mel spectrograms, on the CPU.

        Returns:
            Tensor: (B, C, T') float32 frames.
        """
        s = self._scales
        x = features[:, None].contiguous(memory_format=torch.channels_last)
        x = torch.quantize_per_tensor(x, *s["input"], torch.quint8)
        x = torch.ops.quantized.conv2d_relu(x, self._stem, *s["stem"])
        for i, (conv1, conv2, shortcut) in enumerate(self._blocks):
            y = torch.ops.quantized.conv2d_relu(x, conv1, *s[f"block{i}.conv1"])
            skip = x if shortcut is None else torch.ops.quantized.conv2d(x, shortcut, *s[f"block{i}.shortcut"])
            z = torch.ops.quantized.conv2d(y, conv2, *s[f"block{i}.conv2"])
            x = torch.ops.quantized.add_relu(z, skip, *s[f"block{i}.out"])
        return x.dequantize().flatten(1, 2).contiguous()


def _blocks(encoder: ResNetEncoder) -> list:
    return [block for stage in encoder.stages for block in stage]


def _pack(conv: nn.Conv2d):
    """A float convolution as oneDNN's packed int8 weights (per output channel, symmetric) and float bias."""
    weight = conv.weight.detach().float()
    scales = weight.abs().amax(dim=(1, 2, 3)).clamp_min(1e-12) / 127
    zero_points = torch.zeros(len(scales), dtype=torch.long)
    qweight = torch.quantize_per_channel(weight, scales.double(), zero_points, 0, torch.qint8)
    bias = None if conv.bias is None else conv.bias.detach().float()
    return torch.ops.quantized.conv2d_prepack(
        qweight, bias, list(conv.stride), list(conv.padding), list(conv.dilation), conv.groups
    )
