"""Loading of the compiled core ``audiosiam._C``, and the fallback when it is missing.

The ops in ``audiosiam.ops`` call ``torch.ops.audiosiam.*`` when the extension loaded, and their
pure-PyTorch references otherwise. The fallback is announced once, with the command that fixes it,
because a 10x slower training run should never be a mystery. Set ``AUDIOSIAM_DISABLE_EXTENSION=1``
to force the fallback (the test suite does, to test that path).
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings

from ..errors import ExtensionError, ParameterError

REBUILD_HINT = (
    "rebuild it with `pip install --no-build-isolation -e .` from the audiosiam source folder "
    "(add AUDIOSIAM_CUDA=1 for the CUDA kernels); see README.md"
)


class ExtensionFallbackWarning(UserWarning):
    """Emitted once when audiosiam runs its pure-PyTorch references instead of compiled kernels."""


_STATE: tuple | None = None  # (module or None, reason or None), set on first use
_FORCE_REFERENCE = False  # set inside ``reference_ops()``
_REFERENCED: set[str] | None = None  # the ops that ran their reference inside the innermost ``reference_ops()``


@contextlib.contextmanager
def reference_ops():
    """Run every op's pure-PyTorch reference inside this block, without the fallback warning.

    For side-by-side comparisons and debugging: ``with reference_ops(): loss = triplet_loss(...)``.
    A process-wide switch, not per thread. The block receives the set of the ops that ran their reference
    in it (``with reference_ops() as ran:``); the exporter names them (:mod:`audiosiam.models.export`).
    """
    global _FORCE_REFERENCE, _REFERENCED
    saved = _FORCE_REFERENCE, _REFERENCED
    _FORCE_REFERENCE, _REFERENCED = True, set()
    try:
        yield _REFERENCED
    finally:
        _FORCE_REFERENCE, _REFERENCED = saved


def _load():
    """Import ``audiosiam._C`` once; return ``(module or None, reason it failed or None)``.

    A plain module-level memo rather than ``functools.lru_cache``, so that ``torch.compile`` sees a
    constant instead of tracing through a cache wrapper.
    """
    global _STATE
    if _STATE is None:
        _STATE = _import_extension()
    return _STATE


def _import_extension():
    if os.environ.get("AUDIOSIAM_DISABLE_EXTENSION") == "1":
        return None, "disabled by AUDIOSIAM_DISABLE_EXTENSION=1"
    try:
        import torch  # noqa: F401  (the extension links against torch's libraries)

        from .. import _C
    except ImportError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    # Fake kernels and autograd formulas of the compiled ops. An extension built from older sources may
    # lack an op; registering for it fails, and the whole build is then treated as absent (rebuild it).
    try:
        from . import _registrations  # noqa: F401
    except (RuntimeError, AttributeError) as exc:
        return None, f"built from older sources than this package ({str(exc).splitlines()[0]})"
    return _C, None


def has_ops() -> bool:
    """True when the compiled kernels are loaded and ``torch.ops.audiosiam.*`` are the real ops (and not
    switched off by ``reference_ops()``)."""
    if _FORCE_REFERENCE:
        return False
    module, reason = _load()
    if module is None:
        _warn_once(reason)
    return module is not None


def use_compiled(op: str, *tensors, devices: tuple[str, ...] = ("cpu", "cuda")) -> bool:
    """True when the compiled ops are loaded and every tensor is on a device whose kernel this build has.
    (A build from older sources that lacks an op is not loaded at all: see :func:`_import_extension`.)

    Args:
        op (str): the op's name in ``torch.ops.audiosiam`` (it names the op at the call site; every op of a
            loaded build is there).
        *tensors (Tensor): the op's tensor inputs, whose devices are checked.
        devices (tuple of str, optional): the device types the op has kernels for. Default: ``("cpu", "cuda")``.
    """
    if _FORCE_REFERENCE and _REFERENCED is not None:
        _REFERENCED.add(op)
    return has_ops() and all(t.device.type in devices for t in tensors)


def call(op: str, *args):
    """``torch.ops.audiosiam.<op>(*args)``, with the kernels' argument errors raised as audiosiam's own.

    The C++ checks (``csrc/common/checks.h``, ``TORCH_CHECK_VALUE``) reach Python as a plain
    ``ValueError``; the same bad input must give the same :class:`~audiosiam.errors.ParameterError` on the
    compiled and the reference path, so every public op calls its kernel through here.

    Args:
        op (str): the op's name in ``torch.ops.audiosiam`` (it names the op at the call site; every op of a
            loaded build is there).
        *args (Any): its arguments, as its schema takes them.

    Raises:
        ParameterError: the kernel rejected an argument (outside a ``torch.compile`` trace).
    """
    import torch

    kernel = getattr(torch.ops.audiosiam, op)
    if torch.compiler.is_compiling():  # traced into a graph: arguments are fake tensors, errors surface eagerly
        return kernel(*args)
    try:
        return kernel(*args)
    except ValueError as exc:
        if isinstance(exc, ParameterError):
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ParameterError(message.removeprefix("audiosiam: ")) from None


@functools.lru_cache(maxsize=None)
def _warn_once(reason: str) -> None:
    warnings.warn(
        f"audiosiam: the compiled extension audiosiam._C is not loaded ({reason}); every op runs its "
        f"pure-PyTorch reference, which is correct but slower. To fix, {REBUILD_HINT}.",
        ExtensionFallbackWarning,
        stacklevel=3,
    )


def assert_has_ops() -> None:
    """Raise :class:`~audiosiam.errors.ExtensionError` with the fix when the compiled kernels are not loaded."""
    module, reason = _load()
    if module is None:
        raise ExtensionError(f"the compiled extension audiosiam._C is not loaded ({reason}); {REBUILD_HINT}")


def build_info() -> dict:
    """How the loaded extension was built (CUDA, OpenMP threads, torch version) and which CPU level its kernels
    run at (``cpu_capability``, of ``cpu_capabilities``: the levels this CPU and build have), or why it is
    absent."""
    module, reason = _load()
    if module is None:
        return {"loaded": False, "reason": reason}
    return {"loaded": True, **module.build_info()}
