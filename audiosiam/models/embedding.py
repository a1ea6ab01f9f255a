"""The complete model users load: raw waveform -> log-mel front end -> encoder -> embedding.

Because the front end lives inside the model, a checkpoint maps 16 kHz audio to embeddings with no
settings to get wrong. :meth:`EmbeddingModel.embed` accepts paths or waveforms of any length:

* clips shorter than ``min_seconds`` are zero-padded to it (centred, or at the end with ``pad="end"``);
* clips up to ``window_seconds`` are embedded whole (padded at the end to a multiple of 0.25 s, so
  similar lengths share a batch; the result never depends on what else is in the batch);
* longer clips are cut into ``window_seconds`` windows every ``hop_seconds``; the window embeddings are
  averaged and re-normalised;
* a file that would take more than :data:`STREAM_BYTES` decoded whole (about 35 minutes of 16 kHz mono, 6 of
  48 kHz stereo), or whose header announces no length, is read in blocks instead and its windows embedded
  as ``find`` and ``classify --segments`` embed a recording's (a
  :class:`~audiosiam.models.sliding.SlidingEmbedder`: in float32, the hop rounded to the trunk's 80 ms
  frames), then averaged: memory stays a few blocks and chunks whatever the length (1 h of 48 kHz stereo:
  ``benchmarks/bench_find.py``), and
  the embedding is the whole-file one to a cosine of about 0.995 (trunk frames see their real neighbours
  at window edges).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import torch
from torch import nn

from ..errors import AudioLoadError, ParameterError
from ..io import read_blocks
from ..io.decode import decoded_bytes
from ..io.framing import fix_length, sliding_windows
from ..io.inputs import as_clips, describe_input, is_one_clip, is_path, read_clips
from ..transforms import LogMelSpectrogram
from .checkpoint_file import save_checkpoint
from .encoder import EncoderConfig, ResNetEncoder
from .info import ModelInfo
from .sliding import SlidingEmbedder

# A file that would take more than this decoded whole is embedded in a stream (module docstring): 128 MiB of
# float32 samples, so the whole-file path's peak (the samples, their mono mix, the resampled copy) stays
# a few hundred MB, and an hour of 48 kHz stereo (1.4 GB decoded, 4 GB peak) never loads.
#: Files whose decoded waveform would exceed this many bytes are embedded as they stream (bounded memory).
STREAM_BYTES = 128 << 20


@dataclass(frozen=True)
class EmbedFailure:
    """One input that could not be embedded: its position, what it was, and why.

    Attributes:
        index (int): its position in the inputs.
        source (str): what it was, as ``describe_input`` names it.
        error (Exception): why: an ``AudioLoadError`` for a file, a ``ParameterError`` for a waveform.
    """

    index: int
    source: str
    error: Exception


class EmbeddingResult(NamedTuple):
    """What :meth:`EmbeddingModel.embed_all` returns; unpacks as ``embeddings, kept, failures``.

    Attributes:
        embeddings (Tensor): (K, D), rows L2-normalised.
        kept (list of int): positions in the inputs of the K rows.
        failures (list of EmbedFailure): the inputs that could not be embedded.
    """

    embeddings: torch.Tensor  # (K, D), rows L2-normalised
    kept: list[int]  # positions in the inputs of the K rows
    failures: list[EmbedFailure]


_LENGTH_QUANTUM_SECONDS = 0.25

# EmbeddingModel's pad -> io.fix_length's mode
_PADDING = {"center": "center", "end": "start"}


class EmbeddingModel(nn.Module):
    """Waveforms (B, time) at ``sample_rate`` -> L2-normalised embeddings (B, D).

    Args:
        frontend (LogMelSpectrogram or None, optional): the log-mel transform (its sample rate is the
            model's); ``None``: ``LogMelSpectrogram()`` (16 kHz, 64 mels). Default: ``None``.
        encoder (ResNetEncoder or None, optional): the CNN encoder; ``None``: a default
            :class:`ResNetEncoder` for the front end's ``n_mels``. Default: ``None``.
        window_seconds (float, optional): longer clips are cut into windows of this length; shorter ones
            are embedded whole (module docstring). Default: ``2.0``.
        hop_seconds (float, optional): step between the windows of a long clip. Default: ``1.0``.
        min_seconds (float, optional): shorter clips are zero-padded to this length. Default: ``1.0``.
        pad (str, optional): where a short clip's padding goes: ``"center"`` (both sides) or ``"end"``.
            Default: ``"center"``.
        info (dict or None, optional): metadata from the checkpoint (training config, label set, metrics,
            thresholds); ``None``: empty. Default: ``None``.

    Raises:
        ParameterError: unless ``0 < min_seconds <= window_seconds``, ``hop_seconds > 0`` and ``pad`` is
            ``"center"`` or ``"end"``.

    Attributes:
        source (str or None): the preset name or checkpoint path it was loaded from (galleries record it).

    Example:
        >>> model = audiosiam.load_model()
        >>> model.embed(["a.wav", "b.wav"]).shape
        torch.Size([2, 192])
    """

    def __init__(
        self,
        frontend: LogMelSpectrogram | None = None,
        encoder: ResNetEncoder | None = None,
        *,
        window_seconds: float = 2.0,
        hop_seconds: float = 1.0,
        min_seconds: float = 1.0,
        pad: str = "center",
        info: dict | None = None,
    ):
        super().__init__()
        self.frontend = frontend or LogMelSpectrogram()
        self.encoder = encoder or ResNetEncoder(EncoderConfig(n_mels=self.frontend.n_mels))
        if not 0 < min_seconds <= window_seconds or hop_seconds <= 0:
            raise ParameterError(
                f"min_seconds={min_seconds}, window_seconds={window_seconds}, hop_seconds={hop_seconds}: "
                "expected 0 < min_seconds <= window_seconds and hop_seconds > 0"
            )
        if pad not in _PADDING:
            raise ParameterError(f"pad={pad!r}: expected one of {', '.join(_PADDING)}")
        self.window_seconds, self.hop_seconds, self.min_seconds = window_seconds, hop_seconds, min_seconds
        self.pad = pad
        self.info = info or {}
        self.source: str | None = None  # preset name or checkpoint path it was loaded from

    @property
    def info(self) -> ModelInfo:
        """The checkpoint's metadata: a ``dict`` with typed views of its entries
        (:class:`~audiosiam.models.info.ModelInfo`); :meth:`save` writes it, and a ``dict`` assigned to it is
        wrapped."""
        return self._info

    @info.setter
    def info(self, value) -> None:
        self._info = ModelInfo(value or {})

    @property
    def sample_rate(self) -> int:
        """The rate in Hz that waveforms are read at (the front end's); other rates are resampled to it."""
        return self.frontend.sample_rate

    @property
    def embedding_dim(self) -> int:
        """The length D of an embedding."""
        return self.encoder.embedding_dim

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(B, time) -> (B, D); the twin/triplet networks call this with shared weights.

        No length policy here: each row is embedded as it is (:meth:`embed` applies the policy).

        Args:
            waveforms (Tensor): (B, time) at :attr:`sample_rate`.

        Returns:
            Tensor: (B, D) L2-normalised embeddings.
        """
        return self.encoder(self.frontend(waveforms))

    def policy(self) -> dict:
        """The length policy (``window_seconds``, ``hop_seconds``, ``min_seconds``, and ``pad`` when not
        ``"center"``), as a checkpoint stores it."""
        policy = dict(window_seconds=self.window_seconds, hop_seconds=self.hop_seconds, min_seconds=self.min_seconds)
        return policy if self.pad == "center" else {**policy, "pad": self.pad}

    # ------------------------------------------------------------------ inference
    def _segments(self, wave: torch.Tensor) -> torch.Tensor:
        """(n, length) windows of one clip per the length policy."""
        rate = self.sample_rate
        window, minimum = int(self.window_seconds * rate), int(self.min_seconds * rate)
        if wave.shape[0] > window:
            return sliding_windows(wave, window, int(self.hop_seconds * rate))
        if wave.shape[0] < minimum:
            return fix_length(wave, minimum, mode=_PADDING[self.pad])[None]
        quantum = int(_LENGTH_QUANTUM_SECONDS * rate)
        return fix_length(wave, min(window, math.ceil(wave.shape[0] / quantum) * quantum), mode="start")[None]

    @torch.inference_mode()
    def embed_all(
        self,
        inputs: Sequence[Any],
        *,
        sample_rate: int | None = None,
        batch_size: int = 64,
        on_error: str = "raise",
        progress: bool = False,
    ) -> EmbeddingResult:
        """The one path from clips to embeddings: every command, the classifier and the benchmarks use it.

        Files are decoded together on one thread per core (:func:`~audiosiam.io.load_many`); waveforms
        pass ``check_waveform()``. Clips are grouped by length into batches; the result
        of a clip never depends on what else is in the batch.

        Args:
            inputs (sequence of str, Path, Tensor or array): paths and/or 1-D waveforms, in any mix.
            sample_rate (int or None, optional): rate of the waveforms among ``inputs`` (files carry their
                own); required when there are any, which are then resampled to the model's rate.
                Default: ``None``.
            batch_size (int, optional): windows per forward pass, at least 1. Default: ``64``.
            on_error (str, optional): ``"raise"``: the first bad input's error (``AudioLoadError`` for a
                file, ``ParameterError`` for a waveform); ``"skip"``: leave bad inputs out, each reported in
                ``failures``. Default: ``"raise"``.
            progress (bool, optional): a progress bar over the batches. Default: ``False``.

        Returns:
            :class:`EmbeddingResult`: (K, D) L2-normalised float32 embeddings on the CPU of the K inputs
            that worked, their positions in ``inputs``, and one :class:`EmbedFailure` per input that did not.

        Raises:
            ParameterError: ``inputs`` is not a sequence of clips, a bad setting, or (with ``on_error="raise"``)
                a waveform that is not one (text, ``None``, NaN, silence).
            AudioLoadError: (with ``on_error="raise"``) a file that cannot be used.
        """
        if batch_size < 1:
            raise ParameterError(f"batch_size={batch_size}: must be >= 1")
        if on_error not in ("raise", "skip"):
            raise ParameterError(f"on_error={on_error!r}: expected 'raise' or 'skip'")
        items = as_clips(inputs, single=False)
        files = [i for i, item in enumerate(items) if is_path(item)]
        streamed = self._embed_streamed(items, files)  # i -> embedding or error, for files too long to load
        read = read_clips(
            items,
            self.sample_rate,
            sample_rate=sample_rate,
            on_error="return" if on_error == "skip" else "raise",
            skip=set(streamed),
        )
        waves, kept, failures = [], [], []
        for i, item in enumerate(items):
            got = streamed.get(i, read[i])
            if isinstance(got, Exception):
                if on_error == "raise":
                    raise got
                failures.append(EmbedFailure(i, describe_input(item), got))
                continue
            if i not in streamed:
                waves.append(got)
            kept.append(i)
        embeddings = self._embed_waveforms(waves, batch_size, progress)
        if streamed:  # the rows in input order
            loaded = iter(embeddings)
            embeddings = (
                torch.stack([streamed[i] if i in streamed else next(loaded) for i in kept]) if kept else embeddings
            )
        return EmbeddingResult(embeddings, kept, failures)

    def _embed_streamed(self, items: list, files: list[int]) -> dict[int, torch.Tensor | AudioLoadError]:
        """The files among ``items[files]`` too long to decode whole (:data:`STREAM_BYTES`), each embedded as
        the average of its windows streamed through a :class:`~audiosiam.models.sliding.SlidingEmbedder`
        (module docstring): position -> (D,) embedding, or the error that ended the file."""
        if not getattr(self.frontend, "slides", False):  # cannot slide: such a model loads every file whole
            return {}
        long = []
        for i in files:
            try:
                size = decoded_bytes(items[i])
            except AudioLoadError:
                continue  # the whole-file path says what is wrong with it, as for any file
            if size < 0 or size > STREAM_BYTES:
                long.append(i)
        if not long:
            return {}
        was_training = self.training
        self.eval()
        embedder = SlidingEmbedder(self, self.window_seconds, self.hop_seconds, precision="float32")
        sums = {i: torch.zeros(self.embedding_dim) for i in long}
        errors: dict[int, AudioLoadError] = {}
        recordings = (read_blocks(items[i], self.sample_rate) for i in long)
        for chunk in embedder.embed_each(recordings, catch=(AudioLoadError,)):
            if isinstance(chunk.embeddings, AudioLoadError):
                errors[long[chunk.index]] = chunk.embeddings
            else:
                sums[long[chunk.index]] += chunk.embeddings.sum(0)
        self.train(was_training)
        return {i: errors.get(i, nn.functional.normalize(sums[i], dim=0)) for i in long}

    def _embed_waveforms(self, waves: list[torch.Tensor], batch_size: int, progress: bool) -> torch.Tensor:
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        owners: list[int] = []
        by_length: dict[int, list[torch.Tensor]] = defaultdict(list)
        slots: dict[int, list[int]] = defaultdict(list)
        for i, wave in enumerate(waves):
            for segment in self._segments(wave):
                slots[segment.shape[0]].append(len(owners))
                by_length[segment.shape[0]].append(segment)
                owners.append(i)
        out = torch.empty(len(owners), self.embedding_dim)
        batches = [(length, start) for length, segs in by_length.items() for start in range(0, len(segs), batch_size)]
        iterator = batches
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(batches, desc="embedding", unit="batch", leave=False)
        for length, start in iterator:
            chunk = torch.stack(by_length[length][start : start + batch_size]).to(device)
            out[slots[length][start : start + batch_size]] = self(chunk).float().cpu()
        pooled = torch.zeros(len(waves), self.embedding_dim).index_add_(0, torch.tensor(owners, dtype=torch.long), out)
        self.train(was_training)
        return nn.functional.normalize(pooled, dim=1)

    def embed(
        self, inputs: Any, *, sample_rate: int | None = None, batch_size: int = 64, progress: bool = False
    ) -> torch.Tensor:
        """Embed one clip or a list of clips (paths, or 1-D waveforms at ``sample_rate``); see :meth:`embed_all`.

        Args:
            inputs (str, Path, Tensor, array or a sequence of them): one clip, or several in any mix.
            sample_rate (int or None, optional): rate of the waveforms among ``inputs`` (files carry their
                own). Default: ``None``.
            batch_size (int, optional): windows per forward pass. Default: ``64``.
            progress (bool, optional): a progress bar over the batches. Default: ``False``.

        Returns:
            (N, D) float32 on the CPU, rows L2-normalised (N = 1 for a single clip).

        Raises:
            AudioLoadError: a file could not be used.
            ParameterError: a waveform could not.
        """
        return self.embed_all(
            as_clips(inputs), sample_rate=sample_rate, batch_size=batch_size, progress=progress
        ).embeddings

    def similarity(self, a: Any, b: Any, *, sample_rate: int | None = None) -> float | torch.Tensor:
        """Cosine similarity: a float for two single clips, an (N, M) matrix for two lists.

        Args:
            a (str, Path, Tensor, array or a sequence of them): one clip or N clips, as :meth:`embed` takes.
            b (str, Path, Tensor, array or a sequence of them): one clip or M clips.
            sample_rate (int or None, optional): rate of the waveforms among ``a`` and ``b``.
                Default: ``None``.

        Returns:
            float or Tensor: a float when both are single clips, else an (N, M) tensor (a single clip
            counts as one row).
        """
        ea = self.embed(a, sample_rate=sample_rate)
        eb = self.embed(b, sample_rate=sample_rate)
        sims = ea @ eb.T
        return float(sims[0, 0]) if is_one_clip(a) and is_one_clip(b) else sims

    def save(self, path: str | os.PathLike, **extra_info) -> str:
        """Write a checkpoint (see ``audiosiam.models.checkpoint``); ``extra_info`` is merged into ``info``.

        Args:
            path (str or Path): the checkpoint file, written atomically.
            **extra_info (Any): entries to add to (or replace in) :attr:`info` before saving; they stay in
                the model's ``info`` afterwards.

        Returns:
            str: ``path``.
        """
        self.info.update(extra_info)
        return save_checkpoint(self, path)
