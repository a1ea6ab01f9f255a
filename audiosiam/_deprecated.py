"""The one way a renamed argument, attribute, function or module is said to still work for one release."""

from __future__ import annotations

import warnings


def renamed(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn (``DeprecationWarning``) that ``old``, as the user wrote it, is now ``new``.

    ``stacklevel`` counts from the caller of this function: 3 names the line that called the function
    which calls this one, the user's line.
    """
    warnings.warn(f"{old} is now {new}; the old name goes in the next release", DeprecationWarning, stacklevel)


def moved(old: str, new: str) -> None:
    """Warn (``DeprecationWarning``), from the module-level code of module ``old``, that it moved to ``new``."""
    warnings.warn(
        f"{old} moved to {new} (import from there; this alias goes in the next release)", DeprecationWarning, 3
    )
