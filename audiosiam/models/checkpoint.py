"""Model checkpoints: one file with everything needed to turn audio into the same embeddings again.

Contents (a plain dict saved with ``torch.save`` and read with ``torch.load(weights_only=True)``, so
loading a checkpoint cannot run code): format name and version, audiosiam version, the architecture
(``"resnet"``, audiosiam's own, when absent; ``"aisfx"``: :mod:`audiosiam.models.aisfx`), front-end config,
encoder config, length policy, weights, and ``info`` (training config, label set of the training data,
metrics, calibrated thresholds, data sources).

A checkpoint may name its weights instead of holding them: ``"weights_from": {"package": "aisfx",
"sha256": ...}`` reads them from that installed package (the ``sfx`` preset: aiSFX's weights stay in
their own wheel, under their licence, and the preset file holds only its configuration and calibration).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .._version import __version__
from ..devices import resolve_device
from ..errors import CheckpointError
from ..files import as_path, atomic_write, not_a_regular_file
from ..transforms import LogMelSpectrogram
from .aisfx import AiSfxConfig, AiSfxEncoder, AiSfxFrontEnd, aisfx_weights
from .embedding import EmbeddingModel
from .encoder import EncoderConfig, ResNetEncoder
from .info import ModelInfo

__all__ = ["save_checkpoint", "load_checkpoint"]

#: The ``format`` entry of every checkpoint audiosiam writes; a file without it is refused.
FORMAT = "audiosiam-model"
#: The version of the checkpoint format that this audiosiam writes.
FORMAT_VERSION = 1

#: architecture name -> (front end class, encoder class, encoder config class)
ARCHITECTURES = {
    "resnet": (LogMelSpectrogram, ResNetEncoder, EncoderConfig),
    "aisfx": (AiSfxFrontEnd, AiSfxEncoder, AiSfxConfig),
}

# packages whose installed weights a checkpoint may name, and how to read them (as the model's state dict)
_WEIGHT_PACKAGES = {"aisfx": lambda sha256: {f"encoder.{k}": v for k, v in aisfx_weights(sha256=sha256).items()}}


def architecture_of(model: EmbeddingModel) -> str:
    """The :data:`ARCHITECTURES` name of ``model``'s encoder.

    Args:
        model (EmbeddingModel): the model.

    Returns:
        str: ``"resnet"`` or ``"aisfx"``.

    Raises:
        CheckpointError: an encoder class no checkpoint can describe.
    """
    for name, (_, encoder_class, _) in ARCHITECTURES.items():
        if type(model.encoder) is encoder_class:
            return name
    raise CheckpointError(f"a {type(model.encoder).__name__} encoder cannot be saved as an audiosiam checkpoint")


def _plain(value):
    """Only types that ``torch.load(weights_only=True)`` accepts: turn tuples, paths, numpy scalars into plain ones."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None or torch.is_tensor(value):
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def read_trusted(path: str | os.PathLike, what: str, fix: str):
    """``torch.load(path, weights_only=True)`` with torch's own advice kept from the user.

    torch's messages for a damaged or foreign file suggest ``weights_only=False`` (which could run code
    hidden in the file) or filing an issue with PyTorch, and it warns about pickle protocols of crafted
    files; none of that helps someone holding a broken checkpoint. What reaches them instead is a
    :class:`CheckpointError` that names the file, what is wrong and ``fix``.

    Args:
        path (str or os.PathLike): the file (a checkpoint, or a training run's ``state.pt``).
        what (str): what the file should be, for the message, e.g. ``"audiosiam checkpoint"``.
        fix (str): what to do about it, for the message.

    Returns:
        object: the loaded payload (plain types and tensors only).

    Raises:
        CheckpointError: the file cannot be read as such a payload.
    """
    import pickle
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # e.g. "Detected pickle protocol ... file an issue"
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        reason = "it holds objects other than tensors and plain values, not loaded because that could run code"
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        reason = f"{type(exc).__name__}{': ' + first if first else ''}"
    raise CheckpointError(f"{path}: not a readable {what} ({reason}); {fix}")


def save_checkpoint(model: EmbeddingModel, path: str | os.PathLike) -> str:
    """Write ``model`` to ``path`` atomically (a failed write leaves an older file intact).

    Args:
        model (EmbeddingModel): the model; its weights are saved from the CPU, its ``info`` as plain types.
        path (str or Path): the checkpoint file.

    Returns:
        str: ``path``.
    """
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "audiosiam_version": __version__,
        "architecture": architecture_of(model),
        "frontend": _plain(model.frontend.config()),
        "encoder": _plain(model.encoder.config.to_dict()),
        "policy": _plain(model.policy()),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "info": _plain(model.info),
    }
    write_checkpoint_file(path, payload)
    return str(path)


def write_checkpoint_file(path: str | os.PathLike, payload: dict) -> Path:
    """``torch.save(payload)`` to ``path`` atomically; a full disk or an unwritable place is a
    :class:`CheckpointError` that names the file (the previous file stays as it was).

    Args:
        path (str or os.PathLike): the file.
        payload (dict): plain types and tensors.

    Returns:
        Path: ``path``.

    Raises:
        CheckpointError: the file cannot be written.
    """
    try:
        return atomic_write(path, lambda tmp: torch.save(payload, tmp))
    except OSError as exc:
        raise CheckpointError(
            f"{path}: cannot be written ({exc.strerror or exc}); free some space or choose another place "
            "(the previous file, if any, is unchanged)"
        ) from None


def update_checkpoint_info(path: str | os.PathLike, **entries) -> Path:
    """Set ``entries`` in the ``info`` of the checkpoint at ``path`` and write it back atomically, its weights
    untouched (for what is measured after training: calibration maps, int8 ranges).

    Args:
        path (str or os.PathLike): an audiosiam checkpoint, rewritten in place.
        **entries (Any): plain-typed values to set in its ``info``.

    Returns:
        Path: ``path``.

    Raises:
        CheckpointError: the file cannot be read or written, or its weights read back differ (the file is
            then not to be shipped).
    """
    payload = read_trusted(path, "audiosiam checkpoint", "use another checkpoint")
    before = {k: v.clone() for k, v in payload.get("state_dict", {}).items()}
    payload["info"].update(_plain(entries))
    write_checkpoint_file(path, payload)
    after = read_trusted(path, "audiosiam checkpoint", "use another checkpoint").get("state_dict", {})
    if before.keys() != after.keys() or not all(torch.equal(before[k], after[k]) for k in before):
        raise CheckpointError(f"{path}: the weights changed on re-saving; do not ship this file")
    return Path(path)


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
