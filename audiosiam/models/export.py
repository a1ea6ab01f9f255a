"""A model as one graph for deployment: waveforms in, embeddings out, as :meth:`EmbeddingModel.embed` gives them.

:func:`export_model` writes a model as an ONNX file (``torch.onnx.export``, dynamo) or a ``torch.export``
program (``.pt2``), for onnxruntime (phones, browsers, C++ services) or PyTorch without audiosiam. The graph
is :class:`ClipEmbedder`: the front end, the encoder and the length policy of
:meth:`EmbeddingModel.embed <audiosiam.models.EmbeddingModel.embed>` (short clips padded, long ones cut into
windows whose embeddings are averaged), so a clip's embedding is the one audiosiam gives it.

* Input ``waveform``: (batch, samples) float32, mono, at the model's sample rate (16 kHz for the bundled
  ``default`` and ``speaker``, 44.1 kHz for ``sfx``); any batch and any length, one length per call (the
  rows of a batch are clips of equal length; padding a clip changes its embedding, so clips of other
  lengths go in calls of their own). Output ``embedding``: (batch, D) float32, rows L2-normalised.
* Outside the graph, as audiosiam does them before embedding (:func:`audiosiam.io.load_audio`): decoding,
  the mono mix (the mean of the channels), resampling to the model's rate, and the refusal of unusable
  audio (silence, NaN, absurd levels).
* Compiled ops cannot be exported: the graph holds each one's pure-PyTorch reference
  (``audiosiam/ops/_reference.py``; for the log-mel front end, ``mel_power``), which gives the same values
  to float rounding. :attr:`ExportResult.reference_ops` names them.

The ONNX file's ``metadata_props`` carry the sample rate, the embedding size, the input and output names and
the length policy (onnxruntime: ``session.get_modelmeta().custom_metadata_map``); the ``.pt2`` archive
carries the same as ``audiosiam.json`` (``torch.export.load(path, extra_files={"audiosiam.json": ""})``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import AudiosiamError, ParameterError
from .embedding import _LENGTH_QUANTUM_SECONDS, EmbeddingModel

# format -> the file suffix it is written with
#: The export formats and the file suffix each one writes.
FORMATS = {"onnx": ".onnx", "torch": ".pt2"}

INPUT_NAME, OUTPUT_NAME = "waveform", "embedding"

# The example traced: several windows (so nothing is specialised to one window), a batch of 2.
_EXAMPLE_SECONDS, _EXAMPLE_BATCH = 3.3, 2


class ClipEmbedder(nn.Module):
    """(batch, samples) waveforms -> (batch, D) embeddings, each row embedded as :meth:`EmbeddingModel.embed`
    embeds a clip: the length policy as arithmetic on the length, with no branch, so one traced graph serves
    every batch size and length.

    For a clip of ``n`` samples (``window``, ``minimum``, ``hop`` and the 0.25 s ``quantum`` in samples):
    its windows are ``w = min(window, max(minimum, ceil(n / quantum) * quantum))`` samples long (a short clip
    padded to ``minimum``, a middling one to a multiple of the quantum, a long one cut into ``window``-long
    pieces); there are ``k = 1 + ceil(max(0, n - w) / hop)`` of them, starting at ``min(i * hop, n - w)``
    (the last one aligned to the clip's end); a clip shorter than ``minimum`` is centred in its window
    (``pad="center"``) or starts it (``pad="end"``). Zeros fill what lies outside the clip. The windows
    are embedded by the model's ``forward``, summed per clip and L2-normalised: what
    ``EmbeddingModel._segments`` and ``_embed_waveforms`` do, window by window (tests/models/test_export.py
    compares them at every boundary).

    Args:
        model (EmbeddingModel): the model; its sample rate, front end, encoder and length policy.

    Raises:
        AudiosiamError: a length policy this arithmetic cannot express: ``min_seconds`` neither a multiple
            of 0.25 s nor equal to ``window_seconds`` (a clip just shorter would be rounded up beyond it).
    """

    def __init__(self, model: EmbeddingModel):
        super().__init__()
        self.model = model
        rate = model.sample_rate
        # the sizes EmbeddingModel._segments uses, converted to samples as it converts them
        self.window, self.minimum = int(model.window_seconds * rate), int(model.min_seconds * rate)
        self.hop, self.quantum = int(model.hop_seconds * rate), int(_LENGTH_QUANTUM_SECONDS * rate)
        self.centre = model.pad == "center"
        # a clip just shorter than the minimum, rounded up to the quantum, must not pass the minimum
        rounded = -(-(self.minimum - 1) // self.quantum) * self.quantum
        if rounded > self.minimum and self.minimum != self.window:
            raise AudiosiamError(
                f"the model's length policy ({model.policy()}) cannot be exported: min_seconds must be a "
                "multiple of 0.25 s or equal to window_seconds"
            )

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Embed each row as a clip.

        Args:
            waveform (Tensor): (batch, samples) float32 at the model's sample rate, samples >= 1.

        Returns:
            Tensor: (batch, D) L2-normalised embeddings.
        """
        batch, n = waveform.shape
        # Only non-negative operands are divided: ONNX's integer division truncates toward zero.
        rounded = (n + self.quantum - 1) // self.quantum * self.quantum
        length = torch.sym_min(self.window, torch.sym_max(self.minimum, rounded))
        last = torch.sym_max(0, n - length)
        count = 1 + (last + self.hop - 1) // self.hop
        left = torch.sym_max(0, self.minimum - n) // 2 if self.centre else 0
        starts = torch.arange(count, device=waveform.device).mul(self.hop).clamp_max(last)
        index = starts[:, None] + torch.arange(length, device=waveform.device)[None, :] - left  # (count, length)
        inside = (index >= 0) & (index < n)
        windows = waveform[:, index.clamp(0, n - 1)] * inside  # (batch, count, length)
        embeddings = self.model(windows.reshape(batch * count, length))
        pooled = embeddings.reshape(batch, count, self.model.embedding_dim).sum(dim=1)
        return nn.functional.normalize(pooled, dim=1)


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote.

    Attributes:
        path (Path): the file.
        format (str): ``"onnx"`` or ``"torch"``.
        sample_rate (int): the rate the graph expects its waveforms at, in Hz.
        embedding_dim (int): D, the size of its embeddings.
        reference_ops (tuple of str): audiosiam's compiled ops whose pure-PyTorch reference the graph holds
            in their place (``("mel_power",)`` for audiosiam's own front end).
        metadata (dict): the metadata written into the file (all values strings).
    """

    path: Path
    format: str
    sample_rate: int
    embedding_dim: int
    reference_ops: tuple[str, ...]
    metadata: dict


def exported_metadata(model: EmbeddingModel, reference_ops: tuple[str, ...] = ()) -> dict[str, str]:
    """The metadata an exported file carries: what a user of the graph needs to feed it and read it.

    Args:
        model (EmbeddingModel): the exported model.
        reference_ops (tuple of str, optional): compiled ops replaced by their references. Default: ``()``.

    Returns:
        dict: string keys and string values (ONNX ``metadata_props`` hold strings only).
    """
    from .._version import __version__

    return {
        "sample_rate": str(model.sample_rate),
        "embedding_dim": str(model.embedding_dim),
        "input": f"{INPUT_NAME}: (batch, samples) float32, mono, {model.sample_rate} Hz, one length per call",
        "output": f"{OUTPUT_NAME}: (batch, {model.embedding_dim}) float32, rows L2-normalised",
        "length_policy": json.dumps(model.policy()),
        "model": str(model.source or ""),
        "audiosiam_version": __version__,
        "reference_ops": ",".join(reference_ops),
    }


@contextlib.contextmanager
def _quiet_exporters():
    """The exporters' progress lines, their notes about optional packages (torchvision) and their
    deprecation warnings are not the user's business: keep them off the terminal while tracing."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _trace(module: ClipEmbedder, fmt: str):
    """Trace ``module`` once with ``torch.export`` (dynamic batch and length, every compiled op running its
    reference), convert it to ONNX for ``fmt="onnx"``; return the program (an ``ExportedProgram`` or an
    ``ONNXProgram``) and the compiled ops replaced by their references."""
    import torch.fx.experimental._config as fx_config

    from ..ops._extension import reference_ops

    rate = module.model.sample_rate
    example = (torch.randn(_EXAMPLE_BATCH, int(_EXAMPLE_SECONDS * rate)) * 0.1,)
    dims = ({0: torch.export.Dim("batch", min=1), 1: torch.export.Dim("samples", min=1)},)
    # backed_size_oblivious: sizes 0 and 1 are not special-cased, so the example's batch of 2 and its two
    # windows do not make a graph that serves only batches of several clips or clips of several windows.
    with _quiet_exporters(), reference_ops() as replaced, torch.no_grad(), fx_config.patch(backed_size_oblivious=True):
        program = torch.export.export(module, example, dynamic_shapes=dims, strict=False)
        if fmt == "onnx":
            program = torch.onnx.export(
                program, dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], optimize=True, verbose=False
            )
    return program, tuple(sorted(replaced))


def export_model(model: EmbeddingModel, path: str | os.PathLike, *, format: str = "onnx") -> ExportResult:
    """Write ``model`` (front end, encoder, length policy) as one graph: waveforms in, embeddings out.

    Args:
        model (EmbeddingModel): any model :func:`~audiosiam.models.load_model` returns (``default``,
            ``speaker``, ``sfx``, a checkpoint); exported from a copy on the CPU in eval mode, the model
            itself is left as it is.
        path (str or Path): the file to write, atomically; the format's suffix (``.onnx``, ``.pt2``) is
            added when it has none.
        format (str, optional): ``"onnx"`` (ONNX at the exporter's default opset, 20 with torch 2.11, for
            onnxruntime) or ``"torch"`` (a ``torch.export`` archive, for ``torch.export.load``).
            Default: ``"onnx"``.

    Returns:
        ExportResult: the file, the sample rate the graph expects, its embedding size and the compiled ops
        it holds the references of.

    Raises:
        ParameterError: an unknown ``format``, or ``path`` a folder or not writable (named in the message).
        AudiosiamError: the model cannot be exported (the message says why).

    Example:
        >>> export_model(audiosiam.load_model(), "default.onnx").sample_rate
        16000
    """
    import copy

    from ..files import write_output

    if format not in FORMATS:
        raise ParameterError(f"format={format!r}: expected one of {', '.join(FORMATS)}")
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(FORMATS[format])
    if path.is_dir():
        raise ParameterError(f"{path}: is a folder; give a file name to write")
    name = model.source or type(model).__name__
    module = ClipEmbedder(copy.deepcopy(model).cpu().eval())
    try:
        program, replaced = _trace(module, format)
    except AudiosiamError:
        raise
    except Exception as exc:  # the exporters raise many kinds; the message is what the user can act on
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AudiosiamError(f"{name}: could not be exported as {format} ({type(exc).__name__}: {first})") from exc
    metadata = exported_metadata(model, replaced)
    if format == "onnx":
        program.model.metadata_props.update(metadata)

    def write(tmp: Path) -> None:
        with _quiet_exporters():
            if format == "onnx":
                program.save(tmp)
            else:
                torch.export.save(program, tmp, extra_files={"audiosiam.json": json.dumps(metadata)})

    write_output(path, write)
    return ExportResult(path, format, model.sample_rate, model.embedding_dim, replaced, metadata)
