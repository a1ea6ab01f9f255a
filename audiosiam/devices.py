"""Where a model runs: one check of a device name, so that asking for a GPU where there is none is a
:class:`~audiosiam.errors.ParameterError` that says what to do, on the command line and in the API alike
(torch's own error, raised later and deeper, names neither the option nor the fix)."""

from __future__ import annotations

import torch

from .errors import ParameterError


def resolve_device(device: str | torch.device = "cpu", *, what: str = "device") -> torch.device:
    """The :class:`torch.device` for ``device``, checked against this machine.

    Args:
        device (str or torch.device, optional): ``"cpu"``, ``"cuda"``, ``"cuda:N"``, or ``"auto"`` (the
            first GPU where torch sees one, else the CPU). Default: ``"cpu"``.
        what (str, optional): how the message names the setting, e.g. ``"--device"``. Default: ``"device"``.

    Returns:
        torch.device: the device.

    Raises:
        ParameterError: not a device name, or a GPU that torch does not see here.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ParameterError(f"{what}={device!r}: not a device; expected cpu, cuda, cuda:N or auto") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ParameterError(f"{what}={device!r}: no CUDA GPU is visible to torch here; use cpu")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ParameterError(
                f"{what}={device!r}: this machine has {torch.cuda.device_count()} GPU(s), numbered from 0"
            )
    return resolved
