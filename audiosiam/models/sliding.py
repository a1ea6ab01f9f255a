"""Embeddings of every window of a long recording, in bounded memory and one pass of the network.

Embedding each window as a clip would run the network ``window / hop`` times over every second (8x for
1.28 s windows every 0.16 s). Instead the recording goes through the front end and the encoder's
convolutional trunk once, and each window is pooled from the trunk frames it covers
(:meth:`~audiosiam.models.encoder.ResNetEncoder.embed_windows`):

* the spectrogram is normalised frame by frame with the statistics of the window-long stretch around
  each frame (:func:`~audiosiam.functional.normalize_sliding`), which is what a window cut out and
  normalised as a clip would see;
* the trunk's frames come every ``time_stride * hop_length`` samples (80 ms for the bundled models), so
  window lengths and hops are whole numbers of those frames;
* the audio arrives in blocks and is processed in chunks of ``chunk_seconds`` with enough context on both
  sides (the trunk's receptive field and half a window) that the result does not depend on where the
  chunks fall: a recording streamed in chunks gives the windows of the whole recording processed at once,
  to float rounding (tests/test_detection.py). Memory is set by ``chunk_seconds``, not by the recording.

A window differs from the same stretch embedded as a clip in one way: its trunk frames see their real
neighbours where a clip's edges see zero padding.
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator

import torch

from ..errors import ParameterError
from ..functional import log_mel_from_filterbank, normalize_sliding

__all__ = ["SlidingEmbedder"]

# Spectrogram frames each side of a trunk frame that can reach it: the receptive field of the bundled
# architecture is 71 frames (0.71 s); kept with room for deeper configs.
_TRUNK_CONTEXT_FRAMES = 64


class SlidingEmbedder:
    """Embeds every window of long recordings for one model and one window grid.

    Args:
        model (EmbeddingModel): the model; its front end must normalise per ``"utterance"`` (every bundled
            model does). Its weights are copied now (:meth:`~audiosiam.models.encoder.ResNetEncoder.
            inference_trunk`): build a new embedder after training the model further.
        window_seconds (float): the wanted window length; rounded to whole trunk frames, at least one.
        hop_seconds (float): the wanted step between window starts; rounded to whole frames, at least one.
        chunk_seconds (float, optional): audio processed per forward pass; sets the memory used (about
            40 MB per minute of audio for the bundled models). Default: ``60.0``.

    Attributes:
        frame_seconds (float): seconds per trunk frame (0.08 for the bundled models).
        window (int): frames per window.
        hop (int): frames between window starts.
        window_seconds (float): ``window * frame_seconds``, the length actually used.
        hop_seconds (float): ``hop * frame_seconds``.
        peak_buffered_seconds (float): the most audio the last :meth:`embed` held at once (its memory
            bound: about ``chunk_seconds`` plus a window and context, whatever the recording's length).

    Raises:
        ParameterError: a length not positive, or a front end that does not normalise per utterance.
    """

    def __init__(self, model, window_seconds: float, hop_seconds: float, *, chunk_seconds: float = 60.0):
        if not (window_seconds > 0 and hop_seconds > 0 and chunk_seconds > 0):
            raise ParameterError(
                f"window_seconds={window_seconds}, hop_seconds={hop_seconds}, chunk_seconds={chunk_seconds}: "
                "all must be > 0"
            )
        if model.frontend.normalize != "utterance":
            raise ParameterError(
                f"the model's front end normalises with {model.frontend.normalize!r}; sliding windows need "
                "'utterance' (every bundled model and every model `audiosiam train` makes by default)"
            )
        self.model = model
        stride = model.encoder.time_stride
        self.samples_per_frame = stride * model.frontend.hop_length
        self.frame_seconds = self.samples_per_frame / model.sample_rate
        self.window = max(1, round(window_seconds / self.frame_seconds))
        self.hop = max(1, round(hop_seconds / self.frame_seconds))
        self.window_seconds = self.window * self.frame_seconds
        self.hop_seconds = self.hop * self.frame_seconds
        self.chunk = max(1, round(chunk_seconds / self.frame_seconds / self.hop)) * self.hop  # starts per chunk
        self.context = math.ceil((self.window * stride / 2 + _TRUNK_CONTEXT_FRAMES) / stride)  # frames each side
        self._device = next(model.parameters()).device
        self._trunk = model.encoder.inference_trunk().to(self._device)
        self.peak_buffered_seconds = 0.0

    def __repr__(self) -> str:
        return f"SlidingEmbedder(window={self.window_seconds:.2f} s, hop={self.hop_seconds:.2f} s)"

    def _frames(self, wave: torch.Tensor) -> torch.Tensor:
        """(samples,) -> (C, T') trunk frames, each spectrogram frame normalised by its window-long stretch."""
        fe = self.model.frontend
        db = log_mel_from_filterbank(
            wave.to(self._device)[None],
            fe.window,
            fe.filterbank,
            n_fft=fe.n_fft,
            hop_length=fe.hop_length,
            top_db=None,
            amin=fe.amin,
        )
        features = normalize_sliding(db, self.window * self.model.encoder.time_stride, top_db=fe.top_db)
        return self._trunk(features)[0]

    def embed(self, blocks: Iterable[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Embed every window of one recording that arrives in blocks.

        Args:
            blocks (Iterable[Tensor]): consecutive (samples,) float pieces of one mono recording at
                ``model.sample_rate``, of any sizes (:func:`audiosiam.io.read_blocks` yields them from a file).

        Yields:
            (Tensor, Tensor): window start times in seconds (n,) float64 and their embeddings (n, D) float32
            on the CPU, in time order, one pair per chunk. A recording shorter than one window yields one
            window of its own length (so a short file is still searched); otherwise windows start every
            ``hop`` frames while they fit, and the last fraction of a hop at the very end is not covered.
        """
        encoder, step = self.model.encoder, self.samples_per_frame
        buffer, buffer_start = torch.empty(0), 0  # samples held, and the global index of the first
        first = 0  # the first window start (in frames) not produced yet
        pending, exhausted = iter(blocks), False
        self.peak_buffered_seconds = 0.0
        with torch.inference_mode():
            while True:
                # Samples needed for the windows starting in [first, first + chunk), with context both sides.
                need_end = (first + self.chunk - 1 + self.window + self.context) * step
                while not exhausted and buffer_start + buffer.numel() < need_end:
                    block = next(pending, None)
                    if block is None:
                        exhausted = True
                    else:
                        buffer = torch.cat([buffer, torch.as_tensor(block, dtype=torch.float32).reshape(-1)])
                total = buffer_start + buffer.numel()
                self.peak_buffered_seconds = max(self.peak_buffered_seconds, buffer.numel() / self.model.sample_rate)
                if total == 0:
                    return
                frames_total = math.ceil((1 + total // self.model.frontend.hop_length) / encoder.time_stride)
                if exhausted and frames_total < self.window:  # shorter than one window: embed it whole
                    frames = self._frames(buffer)
                    yield torch.zeros(1, dtype=torch.float64), encoder.embed_frames(frames[None]).float().cpu()
                    return
                last_start = frames_total - self.window if exhausted else first + self.chunk - 1
                starts_end = min(first + self.chunk, last_start + 1)
                if starts_end <= first:
                    return
                piece_first = max(0, first - self.context)  # in frames
                frames = self._frames(buffer[piece_first * step - buffer_start : need_end - buffer_start])
                offset = first - piece_first
                span = frames[:, offset : offset + (starts_end - 1 - first) + self.window]
                starts = torch.arange(first, starts_end, self.hop, dtype=torch.float64) * self.frame_seconds
                yield starts, encoder.embed_windows(span, self.window, self.hop).float().cpu()
                first = starts_end
                if exhausted and first > last_start:
                    return
                keep_from = max(0, first - self.context) * step  # drop what no later chunk needs
                buffer, buffer_start = buffer[keep_from - buffer_start :], keep_from
