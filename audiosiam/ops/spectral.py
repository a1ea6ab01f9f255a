"""Spectral ops of the front end: the power spectrum folded into mel bands.

``mel_power`` runs audiosiam's compiled CPU kernel when the extension is built (one pass over the
spectrum, skipping the zeros of the filterbank), and its pure-PyTorch reference otherwise and on other
devices. Both are differentiable; their values agree to rounding (the sums run in a different order).
"""

from __future__ import annotations

import torch

from ..errors import ParameterError
from . import _reference as reference
from ._extension import call, use_compiled


def mel_power(spectrum: torch.Tensor, filterbank: torch.Tensor) -> torch.Tensor:
    """``|spectrum|^2 @ filterbank``: power spectra folded into mel bands.

    Args:
        spectrum (Tensor): (..., bins) complex64/complex128, e.g. STFT frames (a transposed ``torch.stft``
            output is read without a copy: its memory is already frame-major).
        filterbank (Tensor): (bins, n_mels) real, of the spectrum's precision (it is converted to the
            spectrum's device and real dtype otherwise).

    Returns:
        Tensor: (..., n_mels) real, differentiable with respect to both inputs.

    Raises:
        ParameterError: ``spectrum`` is not a complex tensor, or ``filterbank`` is not (bins, n_mels) with
            the spectrum's number of bins.

    Example:
        >>> spec = torch.stft(torch.randn(16000), 512, 160, window=torch.hann_window(512), return_complex=True)
        >>> mel_power(spec.T, mel_filterbank(16000, 512, 64)).shape
        torch.Size([101, 64])
    """
    if not torch.is_tensor(spectrum) or not spectrum.is_complex():
        raise ParameterError(
            f"spectrum: expected a complex tensor (..., bins), got "
            f"{spectrum.dtype if torch.is_tensor(spectrum) else type(spectrum).__name__}"
        )
    if not torch.is_tensor(filterbank) or filterbank.ndim != 2 or filterbank.shape[0] != spectrum.shape[-1]:
        raise ParameterError(
            f"filterbank: expected (bins, n_mels) with bins = {spectrum.shape[-1]}, got "
            f"{tuple(filterbank.shape) if torch.is_tensor(filterbank) else type(filterbank).__name__}"
        )
    parts = torch.view_as_real(spectrum)
    filterbank = filterbank.to(device=parts.device, dtype=parts.dtype)
    if not use_compiled("mel_power", parts, devices=("cpu",)):
        return reference.mel_power(spectrum, filterbank)
    rows = parts.reshape(-1, parts.shape[-2], 2)  # a view when the frames are contiguous
    return call("mel_power", rows, filterbank).reshape(*spectrum.shape[:-1], filterbank.shape[1])
