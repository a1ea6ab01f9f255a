"""The encoder's convolutional trunk in 8-bit integers, for long recordings on the CPU.

The trunk is three quarters of the work of searching a long recording (``find``), and in 32-bit floats it
already runs near this CPU's peak multiply-add rate, so only less arithmetic makes it faster: with 8-bit
weights and activations, oneDNN's integer convolutions do the same work in about 0.6x the time (1.6-1.7x
on one core of the AVX2 development machine, 120 s of audio), and the windows' embeddings stay within a
cosine of 0.9996 of the float ones on average, 0.996 at worst (``tests/models/test_quantized.py``; detection
accuracy, unchanged, in ``docs/experiments/2026-12-01-find-int8-trunk.md``).

The rule, static post-training quantization:

* **Weights**: each convolution (batch norm folded in, as in
  :meth:`~audiosiam.models.encoder.ResNetEncoder.inference_trunk`) per output channel, symmetric, int8;
  biases stay float.
* **Activations**: per tensor, unsigned 8-bit, over a fixed range for each point the network quantizes:
  the normalised log-mel input, the stem's output, and each residual block's two convolutions, projected
  shortcut and output. The ranges are measured once on real recordings
  (:func:`audiosiam.models.int8_ranges.fit_activation_ranges`: the smallest and largest value of each
  point) and stored in the checkpoint (``info["int8_ranges"]``),
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

import threading

import torch
from torch import nn

from ..errors import ParameterError
from .encoder import ResNetEncoder

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


class Int8Trunk(nn.Module):
    """The trunk of ``encoder`` in 8-bit integers: (B, n_mels, T) log-mel -> (B, C, T') float32 frames, as
    :meth:`ResNetEncoder.frames` gives them to within the quantization error (CPU only).

    Args:
        encoder (ResNetEncoder): the encoder; its weights are copied now.
        ranges (dict): ``{point: [low, high]}`` for every name of :func:`trunk_points`
            (:func:`~audiosiam.models.int8_ranges.fit_activation_ranges`, as a checkpoint stores it).

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
            raise ParameterError(f"int8 ranges: no range for {missing}; refit them (scripts/fit_int8_ranges.py)")
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
