"""The one way a renamed argument, attribute, function or module is said to still work for one release."""

from __future__ import annotations

import importlib
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


def withdrawn_exports(package: str, homes: dict[str, str]):
    """A module ``__getattr__`` for names a package exported before 0.1.0 and no longer does: each still
    resolves, from ``homes[name]`` (the module that defines it), with a ``DeprecationWarning`` that says
    where it lives; the package-level name goes in the next release.

    Args:
        package (str): the package's ``__name__``.
        homes (dict[str, str]): withdrawn name -> the module to import it from.
    """

    def __getattr__(name: str):
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(home)
        # exported there (audiosiam.data.DataSource): the name moved; else it is internal now
        note = "" if name in getattr(module, "__all__", ()) else ", an internal module: it may change without notice"
        warnings.warn(
            f"{package}.{name} is no longer exported by {package}; import it from {home}{note} "
            "(this alias goes in the next release)",
            DeprecationWarning,
            2,
        )
        return getattr(module, name)

    return __getattr__
