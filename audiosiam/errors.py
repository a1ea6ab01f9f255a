"""One error hierarchy for everything audiosiam raises on purpose.

Every message says what was given, what was expected and what to do about it, so a user reading a
traceback from a batch job knows which file or argument to fix without opening the source.
"""

from __future__ import annotations

import os


class AudiosiamError(Exception):
    """Base class of every error audiosiam raises deliberately."""


class ParameterError(AudiosiamError, ValueError):
    """An argument has the wrong value, type, shape, dtype or device.

    Subclasses ``ValueError`` so code written against generic Python conventions still catches it.
    """


class AudioLoadError(AudiosiamError, OSError):
    """An audio file could not be read: missing, unreadable, not audio, truncated or corrupt.

    The message is ``"<path>: <problem> (<hint>)"``: the file first, so a bulk command's report lines up.

    Args:
        path (str or os.PathLike): the file.
        problem (str): what is wrong with it, e.g. ``"truncated: 6383 of 16000 frames decoded"``.
        hint (str, optional): what to do about it. Default: ``""`` (none).
    """

    def __init__(self, path: str | os.PathLike, problem: str, hint: str = ""):
        self.path = os.fspath(path)
        self.problem = problem
        self.hint = hint
        message = f"{self.path}: {problem}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class EmptyAudioError(AudioLoadError):
    """The file decoded, but holds no usable signal (zero samples, or all zeros)."""


class InvalidAudioError(AudioLoadError):
    """The file decoded, but its content cannot be trusted (NaN/Inf samples, absurd sample rate)."""


class NotRegularFileError(AudioLoadError):
    """The path names a named pipe (FIFO), a device or a socket, directly or through symbolic links: reading
    one could block forever or never end, so it is refused before it is opened."""


class NoAudioFilesError(AudiosiamError, FileNotFoundError):
    """A folder or manifest that should list audio files lists none."""


class CheckpointError(AudiosiamError):
    """A model checkpoint is missing, corrupt, or was written by an incompatible version."""


class GalleryError(AudiosiamError):
    """An enrolment gallery is missing, corrupt, or belongs to a different model."""


class ExtensionError(AudiosiamError, RuntimeError):
    """The compiled extension ``audiosiam._C`` is required for this call but is not usable."""


class TrainingDivergedError(AudiosiamError, ArithmeticError):
    """A training step produced a non-finite loss or gradient; the run stopped before it spoiled a checkpoint."""
