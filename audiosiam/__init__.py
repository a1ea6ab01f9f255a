"""audiosiam: classify audio clips by example with a twin (Siamese) CNN encoder.

Public names are imported lazily so that ``import audiosiam`` stays fast (no torch.compile, no
extension build probe, no model load) and a command-line call pays only for what it uses.

Example:
    >>> import audiosiam
    >>> model = audiosiam.load_model()                      # bundled default encoder
    >>> clf = audiosiam.FewShotClassifier(model).fit(paths, labels)
    >>> clf.predict(["query.wav"])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__
from .errors import (
    AudioLoadError,
    AudiosiamError,
    CheckpointError,
    EmptyAudioError,
    ExtensionError,
    GalleryError,
    InvalidAudioError,
    NoAudioFilesError,
    NotRegularFileError,
    ParameterError,
    TrainingDivergedError,
)

if TYPE_CHECKING:  # what the lazy __getattr__ below returns, visible to type checkers and IDEs
    from . import data, detection, evaluation, fewshot, functional, losses, models, ops, training, transforms
    from .detection import EventDetector
    from .fewshot import FewShotClassifier
    from .io import load_audio
    from .models import load_model
    from .models.estimator import AudioEmbedder

# public name -> submodule that defines it
_LAZY = {
    "load_audio": "audiosiam.io",
    "functional": "audiosiam.functional",
    "transforms": "audiosiam.transforms",
    "ops": "audiosiam.ops",
    "losses": "audiosiam.losses",
    "models": "audiosiam.models",
    "data": "audiosiam.data",
    "training": "audiosiam.training",
    "evaluation": "audiosiam.evaluation",
    "fewshot": "audiosiam.fewshot",
    "load_model": "audiosiam.models",
    "FewShotClassifier": "audiosiam.fewshot",
    "AudioEmbedder": "audiosiam.models.estimator",
    "EventDetector": "audiosiam.detection",
    "detection": "audiosiam.detection",
}

__all__ = [
    "__version__",
    "AudiosiamError",
    "ParameterError",
    "AudioLoadError",
    "EmptyAudioError",
    "InvalidAudioError",
    "NoAudioFilesError",
    "NotRegularFileError",
    "CheckpointError",
    "GalleryError",
    "ExtensionError",
    "TrainingDivergedError",
    *_LAZY,
]


def __getattr__(name: str):
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'audiosiam' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
