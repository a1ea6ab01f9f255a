"""Models: the encoder CNN, the complete embedding model, the twin network, checkpoints and presets.

``load_model()`` returns the bundled default model; ``load_model("speaker")`` the speaker preset;
``load_model("path/to/model.pt")`` any checkpoint written by ``audiosiam train``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._deprecated import withdrawn_exports
from ..errors import CheckpointError, ParameterError
from ..paths import as_path, not_a_regular_file
from .checkpoint import load_checkpoint
from .checkpoint_file import save_checkpoint
from .embedding import EmbeddingModel, EmbeddingResult, EmbedFailure
from .encoder import EncoderConfig, ResNetEncoder
from .export import ExportResult, export_model
from .info import ModelInfo
from .siamese import SiameseNetwork
from .sliding import SlidingEmbedder, WindowChunk

__all__ = [
    "load_model",
    "available_presets",
    "EmbeddingModel",
    "ModelInfo",
    "ResNetEncoder",
    "EncoderConfig",
    "SiameseNetwork",
    "load_checkpoint",
    "save_checkpoint",
    "export_model",
    "EmbeddingResult",
    "EmbedFailure",
    "ExportResult",
    "SlidingEmbedder",
    "WindowChunk",
]

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def available_presets() -> list[str]:
    """Names of the models bundled in ``audiosiam/assets`` (``default`` first)."""
    names = sorted(p.stem for p in ASSETS.glob("*.pt"))
    return sorted(names, key=lambda n: n != "default")


def load_model(name_or_path: str | os.PathLike | None = None, *, device: str = "cpu") -> EmbeddingModel:
    """Load a bundled preset by name (``None`` = ``"default"``) or a checkpoint by path. No network access.

    Args:
        name_or_path (str, Path or None, optional): a preset name (see :func:`available_presets`) or the path
            of a checkpoint written by ``audiosiam train``. A file that exists is a checkpoint whatever its
            name; a bare word (no folder, no suffix) is a preset. ``None``: ``"default"``. Default: ``None``.
        device (str, optional): where to put the model. Default: ``"cpu"``.

    Returns:
        EmbeddingModel: in eval mode, its ``source`` set to the preset name or the checkpoint's absolute
        path (galleries record it, so it must work from any folder).

    Raises:
        CheckpointError: unknown preset name, missing or incompatible file.
        ParameterError: ``name_or_path`` is neither a name nor a path (a number, a list).
    """
    name = "default" if name_or_path is None else os.fsdecode(as_path(name_or_path, "name_or_path"))
    # A file that exists is a checkpoint, whatever its name (mine.pth, model.ckpt); a bare word is a preset.
    is_preset = not Path(name).is_file() and os.sep not in name and not Path(name).suffix
    path = ASSETS / f"{name}.pt" if is_preset else Path(name)
    if is_preset and not path.is_file():
        presets = available_presets()
        found = not_a_regular_file(name, "checkpoint file") if os.path.lexists(name) else None
        here = f"{name}: {found[1]}, and there is " if found else "there is "  # a folder "tr", a link loop, ...
        raise CheckpointError(
            f"{here}no bundled model named {name!r} (bundled: {', '.join(presets) if presets else 'none'}); "
            "pass a preset name or the path of a checkpoint written by `audiosiam train`"
        )
    model = load_checkpoint(path, device=device)
    # galleries record where their model came from: a path that works from any folder
    model.source = name if is_preset else str(path.resolve())
    return model


def resolve_model(model) -> EmbeddingModel:
    """The model an estimator's ``model`` parameter names, the one rule the classifier, the embedder and the
    detector share (each resolves it at ``fit``, into ``model_``, and never changes ``model`` itself).

    Args:
        model (EmbeddingModel, str, Path or None): a model (returned as it is), a preset name or checkpoint
            path (loaded by :func:`load_model`), or ``None`` (the bundled default).

    Returns:
        EmbeddingModel: the model.

    Raises:
        CheckpointError: the name or path cannot be loaded.
        ParameterError: ``model`` is none of these.
    """
    if model is None or isinstance(model, (str, os.PathLike)):
        return load_model(model)
    if not hasattr(model, "embedding_dim"):
        raise ParameterError(
            f"model={model!r}: expected an EmbeddingModel, a preset name, a checkpoint path, or None (the default)"
        )
    return model


# Exported before 0.1.0, internal now: still found here for one release, with a warning.
__getattr__ = withdrawn_exports(__name__, {"AttentiveStatsPooling": "audiosiam.models.encoder"})
