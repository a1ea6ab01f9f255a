"""The one way in from audio: what an argument that takes clips may hold (a path, a 1-D waveform, or a
sequence of them in any mix), how each is named in messages, and how a mix is read into checked
waveforms at a model's rate. The embedding model, the classifier and the detector all take their clips
through here, so a clip means the same thing, and is refused with the same words, everywhere."""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch

from ..errors import AudioLoadError, ParameterError
from .checks import check_waveform
from .discovery import load_many


def is_path(item: Any) -> bool:
    """Whether a clip is a file to read (``str`` or ``os.PathLike``) rather than a waveform."""
    return isinstance(item, (str, os.PathLike))


def is_one_clip(item: Any) -> bool:
    """Whether an argument is a single clip (a path or a 1-D waveform) rather than a sequence of clips; a
    1-D array of text is paths, not samples."""
    if is_path(item):
        return True
    return getattr(item, "ndim", None) == 1 and getattr(getattr(item, "dtype", None), "kind", "") != "U"


def describe_input(item: Any) -> str:
    """A path as given, or a waveform's shape: how messages and reports name an input.

    Args:
        item (str, Path, Tensor or array): a clip.

    Returns:
        str: e.g. ``"clips/a.wav"`` or ``"<waveform (16000,)>"``.
    """
    if is_path(item):
        return os.fspath(item)
    return f"<waveform {tuple(getattr(item, 'shape', ()))}>"


def as_clips(inputs: Any, what: str = "inputs", *, single: bool = True) -> list:
    """The clips of an argument that takes one clip or a sequence of them, as a list; anything else is a
    :class:`~audiosiam.errors.ParameterError` naming what was given (``embed(5)``, ``fit(None, ...)``).

    Args:
        inputs (Any): a path, a 1-D waveform, or an iterable of them (a list, a generator, a 1-D array of
            paths as text).
        what (str, optional): how the message names the argument. Default: ``"inputs"``.
        single (bool, optional): a lone path or waveform is one clip (``[inputs]``); ``False``: only a
            sequence is accepted. Default: ``True``.

    Returns:
        list: the clips (each still to be read: :func:`read_clips`).

    Raises:
        ParameterError: neither a clip nor an iterable of them (a number, ``None``, bytes).
    """
    import numpy as np

    if single and is_one_clip(inputs):
        return [inputs]
    if isinstance(inputs, np.ndarray) and inputs.dtype.kind == "U":
        return [str(x) for x in inputs.reshape(-1)]
    expected = f"expected {'a clip (a path or a 1-D waveform) or ' if single else ''}a sequence of clips"
    if isinstance(inputs, (str, bytes, bytearray, dict)) or inputs is None:
        raise ParameterError(f"{what}: {expected}, got {'None' if inputs is None else type(inputs).__name__}")
    try:
        return list(inputs)
    except TypeError:
        raise ParameterError(f"{what}: {expected}, got {type(inputs).__name__}") from None


def read_clips(
    clips: Sequence[Any],
    rate: int,
    *,
    sample_rate: int | None = None,
    what: str = "inputs",
    on_error: str = "raise",
    skip: frozenset[int] | set[int] = frozenset(),
) -> list[torch.Tensor | AudioLoadError | ParameterError | None]:
    """Read a mix of paths and waveforms into checked mono waveforms at ``rate``: the files decoded
    together (:func:`~audiosiam.io.load_many`, one thread per core), the waveforms checked and resampled
    (``check_waveform()``, named ``what[i]``).

    Args:
        clips (sequence): paths and/or 1-D waveforms (:func:`as_clips` makes one from an argument).
        rate (int): the rate to read at (the model's).
        sample_rate (int or None, optional): rate of the waveforms among ``clips``; required when there are
            any. Default: ``None``.
        what (str, optional): how messages name the argument. Default: ``"inputs"``.
        on_error (str, optional): ``"raise"``: the first bad clip's error; ``"return"``: that error takes the
            bad clip's place in the result. Default: ``"raise"``.
        skip (set of int, optional): positions not to read (``None`` in their place): clips the caller
            reads otherwise (files too long to decode whole). Default: none.

    Returns:
        list: one entry per clip, in order: a (time,) float32 tensor, the error (with ``on_error="return"``),
        or ``None`` for a skipped position.

    Raises:
        AudioLoadError: (with ``on_error="raise"``) a file that cannot be used.
        ParameterError: (with ``on_error="raise"``) a waveform that is not one (text, NaN, silence).
    """
    if on_error not in ("raise", "return"):
        raise ParameterError(f"on_error={on_error!r}: expected 'raise' or 'return'")
    files = [i for i, clip in enumerate(clips) if is_path(clip) and i not in skip]
    decoded = dict(zip(files, load_many([clips[i] for i in files], rate, on_error=on_error))) if files else {}
    out: list = []
    for i, clip in enumerate(clips):
        if i in skip:
            out.append(None)
        elif i in decoded:
            out.append(decoded.pop(i))
        else:
            try:
                out.append(check_waveform(clip, sample_rate, rate, what=f"{what}[{i}]"))
            except ParameterError as exc:
                if on_error == "raise":
                    raise
                out.append(exc)
    return out
