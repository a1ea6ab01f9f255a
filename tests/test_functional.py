"""Log-mel front end: librosa parity, shapes, batch consistency, gradients, module = functional."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiosiam.errors import ParameterError
from audiosiam.functional import log_mel_spectrogram
from audiosiam.transforms import LogMelSpectrogram

from audio_fixtures import clicks, noise, sine, sweep


@pytest.mark.parametrize(
    "signal", [sweep(1.0), noise(0.7), clicks(0.5), sine(3000, 0.3)], ids=["sweep", "noise", "clicks", "sine"]
)
@pytest.mark.parametrize("n_mels,f_max", [(64, None), (128, 7600.0)])
def test_matches_librosa_above_the_floor(signal, n_mels, f_max):
    librosa = pytest.importorskip("librosa")
    sr = 16000
    ref = librosa.power_to_db(
        librosa.feature.melspectrogram(
            y=signal.astype(np.float64),
            sr=sr,
            n_fft=512,
            hop_length=160,
            win_length=400,
            window="hann",
            center=True,
            pad_mode="constant",
            power=2.0,
            n_mels=n_mels,
            fmin=0.0,
            fmax=f_max,
            htk=False,
            norm="slaney",
        ),
        ref=1.0,
        amin=1e-10,
        top_db=80.0,
    )
    ours = log_mel_spectrogram(torch.from_numpy(signal).double(), sr, n_mels=n_mels, f_max=f_max).numpy()
    assert ours.shape == ref.shape
    above = ref > ref.min() + 1e-6  # cells on the floor are equal by construction
    assert np.abs(ours - ref)[above].max() <= 1e-3
    ours32 = log_mel_spectrogram(torch.from_numpy(signal), sr, n_mels=n_mels, f_max=f_max).numpy()
    assert np.abs(ours32 - ref)[above].max() <= 2e-2  # float32 arithmetic, same formula


def test_shapes_and_batch_consistency():
    x = torch.from_numpy(np.stack([sweep(1.0), noise(1.0), sine(500, 1.0)]))
    batched = log_mel_spectrogram(x)
    assert batched.shape == (3, 64, 101)
    for i in range(3):
        torch.testing.assert_close(batched[i], log_mel_spectrogram(x[i]))
    assert log_mel_spectrogram(x.reshape(3, 1, -1)).shape == (3, 1, 64, 101)


def test_module_equals_functional_and_rebuilds_from_config():
    x = torch.from_numpy(sweep(0.5))
    module = LogMelSpectrogram(n_mels=80, normalize=None)
    torch.testing.assert_close(module(x), log_mel_spectrogram(x, n_mels=80))
    clone = LogMelSpectrogram(**module.config())
    torch.testing.assert_close(clone(x), module(x))
    assert module.num_frames(8000) == module(x).shape[-1]


def test_utterance_normalisation_removes_gain():
    # float64: in float32 the STFT's rounding noise sits only ~70 dB under the peak, near the 80 dB floor.
    x = torch.from_numpy(sweep(0.5)).double()
    module = LogMelSpectrogram()  # normalize="utterance" by default
    # -20 dB keeps the 80 dB floor above the 1e-10 (-100 dB) power clamp; below that the clamp differs.
    torch.testing.assert_close(module(x), module(0.1 * x), atol=1e-3, rtol=0)
    out = module(x)
    assert abs(float(out.mean())) < 1e-4 and float(out.std()) == pytest.approx(1.0, abs=1e-3)


def test_gradcheck_float64():
    x = torch.from_numpy(sweep(0.05)).double().requires_grad_()
    assert torch.autograd.gradcheck(lambda w: log_mel_spectrogram(w, n_mels=16, top_db=None), (x,), eps=1e-6, atol=1e-4)


def test_bad_settings_are_explained():
    x = torch.zeros(100)
    with pytest.raises(ParameterError, match="win_length=600"):
        log_mel_spectrogram(x, win_length=600)
    with pytest.raises(ParameterError, match="f_max=9000"):
        log_mel_spectrogram(x, f_max=9000.0)
    with pytest.raises(ParameterError, match="normalize='max'"):
        LogMelSpectrogram(normalize="max")
    with pytest.raises(ParameterError, match="no samples"):
        log_mel_spectrogram(torch.zeros(0))


@pytest.mark.parametrize("normalize", [None, "utterance", "band"])
def test_large_batches_are_computed_in_groups_with_the_same_result(normalize):
    """Batches above 320,000 samples are transformed in groups of clips (memory and speed); the result must
    equal each clip transformed alone, and gradients must still flow."""
    g = torch.Generator().manual_seed(3)
    batch = (0.1 * torch.randn(2, 23, 16000, generator=g)).requires_grad_()  # 46 clips: groups of 20, 20, 6
    out = log_mel_spectrogram(batch, normalize=normalize)
    alone = torch.stack(
        [log_mel_spectrogram(batch[i, j].detach(), normalize=normalize) for i in range(2) for j in range(23)]
    ).reshape(out.shape)
    torch.testing.assert_close(out.detach(), alone, rtol=1e-5, atol=1e-4)
    out.sum().backward()
    assert batch.grad is not None and torch.isfinite(batch.grad).all()
    with torch.no_grad():  # without autograd each group is written straight into the result
        torch.testing.assert_close(log_mel_spectrogram(batch, normalize=normalize), alone, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("normalize", [None, "utterance", "band"])
def test_long_clips_are_computed_in_pieces_with_the_same_result(normalize):
    """Clips above 320,000 samples are transformed 512 frames at a time (cache); every frame, the floor and
    the normalisation must be those of the whole clip at once (the path autograd takes)."""
    g = torch.Generator().manual_seed(4)
    clip = 0.05 * torch.randn(2, 16000 * 21 + 77, generator=g)  # frames not a multiple of the piece
    clip[:, 16000 * 5 : 16000 * 6] *= 30  # a loud second sets the floor for every piece
    whole = log_mel_spectrogram(clip.clone().requires_grad_(), normalize=normalize, top_db=40.0).detach()
    with torch.no_grad():
        pieces = log_mel_spectrogram(clip, normalize=normalize, top_db=40.0)
    assert pieces.shape == whole.shape == (2, 64, 1 + clip.shape[-1] // 160)
    torch.testing.assert_close(pieces, whole, rtol=1e-5, atol=1e-5)
