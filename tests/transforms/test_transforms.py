"""Augmentations: effect sizes, determinism under a seed, shapes."""

from __future__ import annotations

import pytest
import torch

from audiosiam.errors import ParameterError
from audiosiam.transforms import AddNoise, Compose, MixBackground, RandomGain, SpecAugment, TimeShift

from audio_fixtures import sine


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def snr_db(clean, noisy):
    return float(10 * torch.log10(clean.pow(2).mean() / (noisy - clean).pow(2).mean()))


def test_gain_range():
    x = torch.from_numpy(sine())
    for seed in range(5):
        y = RandomGain((-6.0, -6.0))(x, gen(seed))
        assert float(y.abs().max() / x.abs().max()) == pytest.approx(10 ** (-6 / 20), rel=1e-4)


def test_noise_and_background_hit_the_requested_snr():
    x = torch.from_numpy(sine())
    y = AddNoise((10.0, 10.0), p=1.0)(x, gen())
    assert snr_db(x, y) == pytest.approx(10.0, abs=0.01)
    background = [torch.randn(3000), torch.randn(20000)]
    z = MixBackground(background, (5.0, 5.0), p=1.0)(x, gen())
    assert snr_db(x, z) == pytest.approx(5.0, abs=0.01)


def test_time_shift_moves_without_wrapping():
    x = torch.zeros(100)
    x[50] = 1.0
    y = TimeShift(0.3, p=1.0)(x, gen(3))
    assert y.sum() <= 1.0 and y.shape == x.shape
    assert TimeShift(0.0, p=1.0)(x, gen()).equal(x)


def test_band_limit_removes_high_frequencies():
    from audiosiam.transforms import BandLimit

    x = torch.from_numpy(sine(500) + sine(6000))
    y = BandLimit(16000, (3000.0, 3000.0), p=1.0)(x, gen())
    spectrum = torch.fft.rfft(y).abs()
    freqs = torch.fft.rfftfreq(len(y), 1 / 16000)
    assert spectrum[freqs > 3100].max() < 1e-3 * spectrum.max()
    assert spectrum[(freqs > 490) & (freqs < 510)].max() > 0.5 * torch.fft.rfft(x).abs().max()
    with pytest.raises(ParameterError, match="cutoff_hz"):
        BandLimit(16000, (1000.0, 9000.0))


@pytest.mark.parametrize("factor", [0.9, 1.12])
def test_speed_perturb_moves_pitch_and_keeps_length(factor):
    from audiosiam.transforms import SpeedPerturb

    x = torch.from_numpy(sine(1000, 1.0))
    y = SpeedPerturb((factor, factor), p=1.0)(x, gen())
    assert y.shape == x.shape
    # Played faster by `factor`, a 1 kHz tone becomes factor kHz (judged on the middle, away from padding).
    middle = y[4000:12000] * torch.hann_window(8000)
    peak = torch.fft.rfftfreq(8000, 1 / 16000)[torch.fft.rfft(middle).abs().argmax()]
    assert peak == pytest.approx(1000 * factor, abs=4)
    assert SpeedPerturb((1.0, 1.0), p=1.0)(x, gen()).equal(x)
    with pytest.raises(ParameterError, match="factors"):
        SpeedPerturb((0.2, 1.0))


def test_spec_augment_masks_bands_and_frames():
    spec = torch.randn(2, 64, 100)
    out = SpecAugment(time_masks=1, time_width=10, freq_masks=1, freq_width=5)(spec, gen(1))
    assert out.shape == spec.shape
    changed = out != spec
    assert changed.any() and changed.float().mean() < 0.3


def test_deterministic_under_a_seed_and_batched():
    aug = Compose([RandomGain(), AddNoise(p=1.0), TimeShift(p=1.0)])
    batch = torch.from_numpy(sine()).repeat(3, 1)
    assert torch.equal(aug(batch, gen(7)), aug(batch, gen(7)))
    assert not torch.equal(aug(batch, gen(7)), aug(batch, gen(8)))
    out = aug(batch, gen(7))
    assert out.shape == batch.shape and not torch.equal(out[0], out[1])  # each row gets its own draw


def test_bad_arguments():
    with pytest.raises(ParameterError, match="p=2"):
        RandomGain(p=2)
    with pytest.raises(ParameterError, match="low <= high"):
        AddNoise((10, 0))
    with pytest.raises(ParameterError, match="at least one background"):
        MixBackground([])


def test_reverb_spreads_energy_in_time_and_keeps_level():
    from audiosiam.transforms import Reverb
    from audiosiam.transforms.waveform import synthetic_room_responses

    rirs = synthetic_room_responses(16000, count=4, rt60=(0.5, 0.5), seed=1)
    assert all(abs(float(r.norm()) - 1.0) < 1e-5 for r in rirs)
    # a 60 dB decay in 0.5 s: the tail's last 10% is far quieter than its first 10%
    r = rirs[0][1:]
    tenth = r.numel() // 10
    assert r[-tenth:].pow(2).mean() < 1e-3 * r[:tenth].pow(2).mean()
    click = torch.zeros(16000)
    click[1000] = 1.0
    wet = Reverb(rirs, wet=(1.0, 1.0), p=1.0)(click, gen())
    assert wet.shape == click.shape
    assert float(wet[1000 + 1600 :].abs().sum()) > 0.1 * float(wet.abs().sum())  # energy 0.1 s after the click
    assert float(wet[:1000].abs().max()) < 1e-4  # causal: nothing before it
    x = torch.from_numpy(sine())
    y = Reverb(rirs, p=1.0)(x, gen())
    assert float(y.pow(2).mean()) == pytest.approx(float(x.pow(2).mean()), rel=1e-3)


def test_random_equalizer_changes_spectral_balance_within_its_range():
    from audiosiam.transforms import RandomEqualizer

    x = torch.randn(16000, generator=gen(3))
    eq = RandomEqualizer((-9.0, 9.0), p=1.0)
    spectra = []
    for seed in range(3):
        y = eq(x, gen(seed))
        ratio_db = 20 * torch.log10(torch.fft.rfft(y).abs() / torch.fft.rfft(x).abs().clamp_min(1e-9))
        assert float(ratio_db.abs().max()) <= 9.0 + 1e-3
        spectra.append(ratio_db)
    assert float((spectra[0] - spectra[1]).abs().max()) > 1.0  # different seeds, different curves
    flat = RandomEqualizer((0.0, 0.0), p=1.0)(x, gen())
    assert torch.allclose(flat, x, atol=1e-5)


def test_mix_batch_adds_another_class_at_the_requested_snr():
    from audiosiam.transforms import MixBatch

    waves = torch.stack([torch.from_numpy(sine(freq)) for freq in (300.0, 500.0, 700.0)])
    labels = torch.tensor([0, 0, 1])
    out = MixBatch((10.0, 10.0), p=1.0)(waves, labels, gen())
    for i in range(3):
        added = out[i] - waves[i]
        assert snr_db(waves[i], out[i]) == pytest.approx(10.0, abs=0.01)
        # the added clip is of another class: rows 0 and 1 get row 2, row 2 gets row 0 or 1
        partners = [2] if labels[i] == 0 else [0, 1]
        assert any(torch.allclose(added / added.norm(), waves[j] / waves[j].norm(), atol=1e-4) for j in partners)
    same = MixBatch(p=1.0)(waves[:2], labels[:2], gen())  # one class only: nothing to mix in
    assert torch.equal(same, waves[:2])
    with pytest.raises(ParameterError, match="MixBatch"):
        MixBatch()(waves[0], labels, gen())
