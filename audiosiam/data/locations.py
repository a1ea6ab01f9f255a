"""Where the project's data lives: the one place that knows, each location overridable by an environment variable.

* :func:`shared_data`, the shared real recordings (tests, validation rows): ``$AUDIOSIAM_SHARED_DATA``, else
  ``shared/data`` beside the source checkout (``../shared/data`` from the repository's root).
* :func:`cache_root`, everything audiosiam downloads or computes once: ``$AUDIOSIAM_CACHE``, else
  ``$XDG_CACHE_HOME/audiosiam`` (``~/.cache/audiosiam``).
* :func:`training_data`, the corpus of ``scripts/fetch_training_data.py`` and its recipes:
  ``$AUDIOSIAM_TRAINING_DATA``, else ``cache_root()/training-data``.
* :func:`teacher_cache`, the distillation teacher's embeddings: ``$AUDIOSIAM_TEACHER_CACHE``, else
  ``cache_root()/teacher``.
* :func:`source_checkout`, the repository the package is imported from (its recipes and benchmarks), if it is
  one.

Each is read when called, so a test or a script that sets the variable sees it. The shipped package needs
none of them: an installed package has no ``../shared/data`` unless the variable points at one.
"""

from __future__ import annotations

import os
from pathlib import Path


def _from_env(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def shared_data() -> Path:
    """The shared recordings: ``$AUDIOSIAM_SHARED_DATA``, else ``shared/data`` beside the source checkout.

    Returns:
        Path: the folder (it may not exist: callers that need it skip or say so).
    """
    return _from_env("AUDIOSIAM_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data"


def cache_root() -> Path:
    """audiosiam's cache: ``$AUDIOSIAM_CACHE``, else ``$XDG_CACHE_HOME/audiosiam`` or ``~/.cache/audiosiam``.

    Returns:
        Path: the folder (created by whoever writes into it).
    """
    xdg = os.environ.get("XDG_CACHE_HOME")
    return _from_env("AUDIOSIAM_CACHE") or Path(xdg or Path.home() / ".cache") / "audiosiam"


def training_data() -> Path:
    """The training corpus and its recipes: ``$AUDIOSIAM_TRAINING_DATA``, else ``cache_root()/training-data``.

    Returns:
        Path: the folder ``scripts/fetch_training_data.py`` writes (``recipe.json``, ``manifests/``, ...).
    """
    return _from_env("AUDIOSIAM_TRAINING_DATA") or cache_root() / "training-data"


def teacher_cache() -> Path:
    """The teacher embedding cache: ``$AUDIOSIAM_TEACHER_CACHE``, else ``cache_root()/teacher``.

    Returns:
        Path: the root under which each teacher's entries live (:class:`~audiosiam.data.teacher_cache.TeacherCache`).
    """
    return _from_env("AUDIOSIAM_TEACHER_CACHE") or cache_root() / "teacher"


def source_checkout() -> Path | None:
    """The source checkout the package is imported from, or None for an installed package.

    Returns:
        Path | None: the repository's root (it holds ``benchmarks/`` and its recipes), where there is one.
    """
    root = Path(__file__).resolve().parents[2]
    return root if (root / "benchmarks" / "recipes").is_dir() else None
