"""mel_power: the shared op tests (``op_tester``), then what is special to it: real mel filterbanks of
many shapes, dense signed filterbanks and batch dimensions, transposed STFT frames, zeros, errors."""

from __future__ import annotations

import pytest
import torch

from audiosiam.errors import ParameterError
from audiosiam.functional import mel_filterbank
from audiosiam.ops import _reference
from audiosiam.ops.spectral import mel_power

from op_tester import OpTester

reference_mel_power = _reference.mel_power


def spectra(*shape, dtype=torch.complex64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=dtype, generator=g)


def random_filterbank(bins, n_mels, dtype=torch.float32, seed=1):
    """Dense, signed and with an all-zero band: nothing the kernel may assume about mel filters."""
    g = torch.Generator().manual_seed(seed)
    fb = torch.randn(bins, n_mels, generator=g, dtype=dtype)
    fb[:, n_mels // 2] = 0
    return fb


class TestMelPower(OpTester):
    dtypes = [torch.complex64, torch.complex128]  # complex spectra; there is no complex half in torch.stft

    def variants(self):
        return [{"bins": 33, "n_mels": 16}, {"bins": 9, "n_mels": 3}]

    def make(self, device, dtype, rows, *, bins, n_mels):
        real = torch.float64 if dtype == torch.complex128 else torch.float32
        return spectra(rows, bins, dtype=dtype).to(device), random_filterbank(bins, n_mels, real).to(device)

    def call(self, spectrum, filterbank, **variant):
        return mel_power(spectrum, filterbank)

    def expected(self, spectrum, filterbank, **variant):
        return reference_mel_power(spectrum, filterbank)

    def opcheck_samples(self, device):
        spec = torch.view_as_real(spectra(10, 33)).contiguous().to(device)
        fb = mel_filterbank(16000, 64, 16).to(device)
        return [
            (torch.ops.audiosiam.mel_power.default, (spec, fb)),
            (torch.ops.audiosiam.mel_power.default, (spec.double().requires_grad_(), fb.double())),
        ]


@pytest.mark.needs_extension
@pytest.mark.parametrize(
    "rows,bins,n_mels", [(1, 257, 64), (13, 257, 64), (101, 257, 40), (9, 5, 3), (17, 33, 16), (8, 513, 128)]
)
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_kernel_matches_reference_with_mel_filterbanks(rows, bins, n_mels, dtype, cpu_level):
    spec = spectra(rows, bins, dtype=dtype)
    real = torch.float32 if dtype == torch.complex64 else torch.float64
    fb = mel_filterbank(16000, 2 * (bins - 1), n_mels).to(real) if bins > 5 else random_filterbank(bins, n_mels, real)
    got = mel_power(spec, fb)
    want = reference_mel_power(spec.to(torch.complex128), fb.double())
    assert got.dtype == real and got.shape == (rows, n_mels)
    tol = dict(rtol=1e-5, atol=1e-5) if real == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got.double(), want, **tol)


@pytest.mark.needs_extension
def test_kernel_matches_reference_with_dense_signed_filterbank_and_batch_dims(cpu_level):
    spec = spectra(2, 3, 19, 45, dtype=torch.complex128)
    fb = random_filterbank(45, 37, torch.float64)
    got = mel_power(spec, fb)
    assert got.shape == (2, 3, 19, 37)
    torch.testing.assert_close(got, reference_mel_power(spec, fb), rtol=1e-12, atol=1e-12)
    assert torch.all(got[..., 37 // 2] == 0)  # the empty band


@pytest.mark.needs_extension
def test_non_contiguous_spectrum_and_transposed_stft_frames(cpu_level):
    wave = torch.randn(3, 8000, generator=torch.Generator().manual_seed(2))
    spec = torch.stft(wave, 512, 160, window=torch.hann_window(512), return_complex=True)  # (3, bins, frames)
    fb = mel_filterbank(16000, 512, 64)
    frames = spec.transpose(-2, -1)  # frame-major memory: read without a copy
    torch.testing.assert_close(mel_power(frames, fb), reference_mel_power(frames, fb), rtol=1e-5, atol=1e-4)
    strided = frames[:, ::3]  # every third frame: a copy is made, the result is the same
    torch.testing.assert_close(mel_power(strided, fb), reference_mel_power(strided, fb), rtol=1e-5, atol=1e-4)


def test_empty_and_zero_spectra(cpu_level):
    fb = mel_filterbank(16000, 512, 64)
    assert mel_power(spectra(0, 257), fb).shape == (0, 64)
    assert torch.all(mel_power(torch.zeros(4, 257, dtype=torch.complex64), fb) == 0)


def test_argument_errors_name_the_argument():
    fb = mel_filterbank(16000, 512, 64)
    with pytest.raises(ParameterError, match="spectrum: expected a complex tensor"):
        mel_power(torch.randn(3, 257), fb)
    with pytest.raises(ParameterError, match="filterbank: expected \\(bins, n_mels\\) with bins = 100"):
        mel_power(spectra(3, 100), fb)


@pytest.mark.needs_cuda
def test_cuda_matches_cpu():
    spec, fb = spectra(50, 257), mel_filterbank(16000, 512, 64)
    torch.testing.assert_close(mel_power(spec.cuda(), fb.cuda()).cpu(), mel_power(spec, fb), rtol=1e-5, atol=1e-4)
