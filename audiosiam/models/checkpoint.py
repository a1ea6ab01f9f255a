"""Model checkpoints: one file with everything needed to turn audio into the same embeddings again.

Contents (a plain dict saved with ``torch.save`` and read with ``torch.load(weights_only=True)``, so
loading a checkpoint cannot run code): format name and version, audiosiam version, the architecture
(``"resnet"``, audiosiam's own, when absent; ``"aisfx"``: :mod:`audiosiam.models.aisfx`), front-end config,
encoder config, length policy, weights, and ``info`` (training config, label set of the training data,
metrics, calibrated thresholds, data sources).

A checkpoint may name its weights instead of holding them: ``"weights_from": {"package": "aisfx",
"sha256": ...}`` reads them from that installed package (the ``sfx`` preset: aiSFX's weights stay in
their own wheel, under their licence, and the preset file holds only its configuration and calibration).

The file itself is written and read in ``models/checkpoint_file.py``, which imports no model class
(so :meth:`EmbeddingModel.save <audiosiam.models.embedding.EmbeddingModel.save>` writes with it); this module
builds the model from what it reads.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .._version import __version__
from ..devices import resolve_device
from ..errors import CheckpointError
from ..paths import as_path, not_a_regular_file
from ..transforms import LogMelSpectrogram
from .aisfx import AiSfxConfig, AiSfxEncoder, AiSfxFrontEnd, aisfx_weights
from .checkpoint_file import FORMAT, FORMAT_VERSION, read_trusted
from .embedding import EmbeddingModel
from .encoder import EncoderConfig, ResNetEncoder
from .info import ModelInfo

#: architecture name -> (front end class, encoder class, encoder config class)
ARCHITECTURES = {
    parts[1].architecture: parts
    for parts in ((LogMelSpectrogram, ResNetEncoder, EncoderConfig), (AiSfxFrontEnd, AiSfxEncoder, AiSfxConfig))
}

# packages whose installed weights a checkpoint may name, and how to read them (as the model's state dict)
_WEIGHT_PACKAGES = {"aisfx": lambda sha256: {f"encoder.{k}": v for k, v in aisfx_weights(sha256=sha256).items()}}


def load_checkpoint(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> EmbeddingModel:
    """Rebuild an :class:`EmbeddingModel` from a checkpoint file.

    Args:
        path (str or Path): a checkpoint written by :func:`save_checkpoint`.
        device (str or torch.device, optional): where to put the model. Default: ``"cpu"``.

    Returns:
        EmbeddingModel: in eval mode, on ``device``.

    Raises:
        CheckpointError: the file is missing, not a checkpoint, corrupt, of a newer format, or holds
            non-finite weights, weights no training run writes (a corrupted file).
        ParameterError: ``device`` is not a device of this machine, or ``path`` is no path.
    """
    target = resolve_device(device)  # before reading: a GPU that is not there is the first thing to say
    path = Path(os.fsdecode(as_path(path)))
    found = not_a_regular_file(path, "checkpoint file")
    if found is not None:
        raise CheckpointError(f"{path}: {found[1]}; pass a checkpoint written by `audiosiam train` or a preset name")
    payload = read_trusted(path, "audiosiam checkpoint", "copy it again, or use another checkpoint of the run")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an audiosiam model checkpoint (no '{FORMAT}' marker)")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version}, this audiosiam ({__version__}) reads "
            f"version {FORMAT_VERSION}; install the audiosiam version that wrote it "
            f"({payload.get('audiosiam_version')}) or retrain"
        )
    architecture = payload.get("architecture", "resnet")
    if architecture not in ARCHITECTURES:
        raise CheckpointError(
            f"{path}: architecture {architecture!r}, this audiosiam ({__version__}) knows "
            f"{', '.join(ARCHITECTURES)}; install a newer audiosiam"
        )
    info = payload.get("info") or {}
    if not isinstance(info, dict):
        raise CheckpointError(
            f"{path}: its 'info' is a {type(info).__name__}, not a table of settings; use another checkpoint"
        )
    try:
        stored_threshold(info)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    state = payload.get("state_dict")
    if state is None:
        state = _named_weights(path, payload.get("weights_from"))
    frontend_class, encoder_class, config_class = ARCHITECTURES[architecture]
    try:
        frontend = frontend_class(**payload["frontend"])
        encoder = encoder_class(config_class.from_dict(payload["encoder"]))
        model = EmbeddingModel(frontend, encoder, **payload["policy"], info=info)
        model.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: checkpoint contents do not fit this audiosiam's model ({exc})") from exc
    problem = implausible_weights(state)
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    return model.to(target).eval()


# No training run writes a weight this large (the shipped models' largest is about 10); one flipped exponent
# bit on disk does, and a float32 forward pass then overflows to NaN.
LARGEST_PLAUSIBLE_WEIGHT = 1e8


def implausible_weights(state: dict) -> str | None:
    """What makes a state dict's weights impossible for a trained model, said for its error message, or
    ``None``: NaN or infinite values (a diverged run), magnitudes over :data:`LARGEST_PLAUSIBLE_WEIGHT` or
    negative BatchNorm variances (both the marks of a corrupted file, and both give NaN embeddings).
    """

    def listed(names: list[str]) -> str:
        return f"{', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"

    floats = {name: t for name, t in state.items() if torch.is_tensor(t) and t.is_floating_point()}
    non_finite = [name for name, t in floats.items() if not bool(torch.isfinite(t).all())]
    if non_finite:
        return (
            f"weights {listed(non_finite)} hold NaN or infinite values (a diverged training run); "
            "use an earlier checkpoint of the run"
        )
    huge = [name for name, t in floats.items() if t.numel() and float(t.abs().max()) > LARGEST_PLAUSIBLE_WEIGHT]
    negative = [name for name, t in floats.items() if name.endswith("running_var") and bool((t < 0).any())]
    if huge or negative:
        what = (f"weights {listed(huge)} over {LARGEST_PLAUSIBLE_WEIGHT:g} in magnitude" if huge else "") + (
            f"{'; ' if huge else ''}negative BatchNorm variances in {listed(negative)}" if negative else ""
        )
        return f"{what}: no training run writes these, the file is corrupt; copy it again or retrain"
    return None


def stored_threshold(info: dict) -> float | None:
    """The equal-error verification threshold stored in a checkpoint's ``info`` (at its top, or in its
    ``metrics``), checked: ``None`` when there is none (:attr:`ModelInfo.verification_threshold
    <audiosiam.models.info.ModelInfo.verification_threshold>`).

    Args:
        info (dict): the checkpoint's ``info``.

    Returns:
        float or None: a cosine similarity in [-1, 1].

    Raises:
        ValueError: a stored value that is not a number in [-1, 1] (NaN, 5.0, ``"x"``, ``true``).
    """
    return ModelInfo(info).verification_threshold


def _named_weights(path: Path, source) -> dict[str, torch.Tensor]:
    """The weights a checkpoint names instead of holding (``"weights_from"``)."""
    if not isinstance(source, dict) or source.get("package") not in _WEIGHT_PACKAGES:
        raise CheckpointError(
            f"{path}: holds no weights and names none this audiosiam can read "
            f"(packages: {', '.join(_WEIGHT_PACKAGES)}); use another checkpoint"
        )
    sha256 = source.get("sha256")
    if sha256 is not None and not isinstance(sha256, str):
        raise CheckpointError(f"{path}: 'weights_from.sha256' is {sha256!r}, expected a hex string")
    return _WEIGHT_PACKAGES[source["package"]](sha256)
