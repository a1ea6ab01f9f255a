"""The checkpoint file: its payload written and read, with no model class imported, so that the models
themselves (:meth:`EmbeddingModel.save <audiosiam.models.embedding.EmbeddingModel.save>`, aiSFX's weights)
use it without an import circle; ``audiosiam.models.checkpoint`` builds models from what it reads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .._version import __version__
from ..errors import CheckpointError
from ..files import atomic_write

if TYPE_CHECKING:
    from .embedding import EmbeddingModel

#: The ``format`` entry of every checkpoint audiosiam writes; a file without it is refused.
FORMAT = "audiosiam-model"
#: The version of the checkpoint format that this audiosiam writes.
FORMAT_VERSION = 1


def architecture_of(model: EmbeddingModel) -> str:
    """The architecture name a checkpoint records for ``model``: its encoder class's own ``architecture``
    (``"resnet"`` or ``"aisfx"``; a subclass must declare its own, since it may compute something else).

    Args:
        model (EmbeddingModel): the model.

    Returns:
        str: ``"resnet"`` or ``"aisfx"``.

    Raises:
        CheckpointError: an encoder class no checkpoint can describe.
    """
    name = type(model.encoder).__dict__.get("architecture")
    if not isinstance(name, str):
        raise CheckpointError(f"a {type(model.encoder).__name__} encoder cannot be saved as an audiosiam checkpoint")
    return name


def plain(value):
    """Only types that ``torch.load(weights_only=True)`` accepts: turn tuples, paths, numpy scalars into plain ones."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
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
        "frontend": plain(model.frontend.config()),
        "encoder": plain(model.encoder.config.to_dict()),
        "policy": plain(model.policy()),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "info": plain(model.info),
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
    payload["info"].update(plain(entries))
    write_checkpoint_file(path, payload)
    after = read_trusted(path, "audiosiam checkpoint", "use another checkpoint").get("state_dict", {})
    if before.keys() != after.keys() or not all(torch.equal(before[k], after[k]) for k in before):
        raise CheckpointError(f"{path}: the weights changed on re-saving; do not ship this file")
    return Path(path)
