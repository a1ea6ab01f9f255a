"""Encoder, embedding model, twin network and checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import audiosiam
from audiosiam.errors import CheckpointError, ParameterError
from audiosiam.models import EmbeddingModel, EncoderConfig, ResNetEncoder, SiameseNetwork, load_checkpoint
from audiosiam.transforms import LogMelSpectrogram

from audio_fixtures import sine, write

TINY = EncoderConfig(channels=(8, 8, 16, 16), embedding_dim=24, attention_dim=8)


@pytest.fixture
def model():
    return EmbeddingModel(LogMelSpectrogram(), ResNetEncoder(TINY)).eval()


def test_encoder_shapes_norms_and_any_length():
    enc = ResNetEncoder(TINY).eval()
    for frames in (30, 101, 333):
        out = enc(torch.randn(3, 64, frames))
        assert out.shape == (3, 24)
        torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    with pytest.raises(ParameterError, match=r"expected \(batch, 64, frames\)"):
        enc(torch.randn(3, 40, 50))


def test_default_encoder_is_small():
    params = sum(p.numel() for p in ResNetEncoder().parameters())
    assert params < 3_000_000


def test_siamese_branches_share_one_set_of_weights(model):
    twin = SiameseNetwork(model)
    assert sum(p.numel() for p in twin.parameters()) == sum(p.numel() for p in model.parameters())
    a, b, c = torch.randn(2, 8000), torch.randn(2, 8000), torch.randn(2, 8000)
    sims = twin(a, b)
    torch.testing.assert_close(sims, (model(a) * model(b)).sum(1))
    ea, ep, en = twin(a, b, c)
    torch.testing.assert_close(ea, model(a))
    torch.testing.assert_close(twin.distance(a, a), torch.zeros(2), atol=1e-3, rtol=0)
    with torch.no_grad():  # changing the one encoder changes every branch
        model.encoder.head[0].weight.mul_(-1)
    assert not torch.allclose(twin(a, b, c)[2], en)
    with pytest.raises(ParameterError, match="pair or a triplet"):
        twin(a)


def test_embed_is_batch_independent_and_pools_long_clips(model):
    clips = [torch.randn(4000), torch.randn(16000), torch.randn(16000 * 5), torch.randn(21000)]
    together = model.embed(clips, sample_rate=16000, batch_size=2)
    alone = torch.cat([model.embed(c, sample_rate=16000) for c in clips])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(together.norm(dim=1), torch.ones(4))
    long = clips[2]
    windows = model._segments(long)
    assert windows.shape == (4, 32000)  # 2 s windows every 1 s over 5 s
    expected = torch.nn.functional.normalize(model(windows).mean(0, keepdim=True), dim=1)
    torch.testing.assert_close(model.embed(long, sample_rate=16000), expected, atol=1e-5, rtol=0)


def test_embed_resamples_reads_files_and_checks_input(model, tmp_path):
    tone = torch.from_numpy(sine(500, 1.0, rate=8000))
    path = write(tmp_path / "t.wav", tone.numpy(), rate=8000)
    from_file = model.embed([path])
    from_wave = model.embed([tone], sample_rate=8000)
    torch.testing.assert_close(from_file, from_wave, atol=1e-4, rtol=0)
    assert isinstance(model.similarity(path, path), float)
    assert model.similarity(path, path) == pytest.approx(1.0, abs=1e-5)
    assert model.similarity([path, path], [tone], sample_rate=8000).shape == (2, 1)
    with pytest.raises(ParameterError, match="sample_rate"):
        model.embed([tone])
    with pytest.raises(ParameterError, match="1-D"):
        model.embed([torch.zeros(2, 100)], sample_rate=16000)


def test_checkpoint_round_trip(model, tmp_path):
    model.info = {"label_set": ["a", "b"], "metrics": {"acc": 0.5}}
    path = model.save(tmp_path / "m.pt", verification_threshold=0.7)
    loaded = audiosiam.load_model(path)
    x = [torch.randn(12000)]
    torch.testing.assert_close(loaded.embed(x, sample_rate=16000), model.embed(x, sample_rate=16000))
    assert loaded.info["verification_threshold"] == 0.7 and loaded.info["label_set"] == ["a", "b"]
    assert loaded.frontend.config() == model.frontend.config()
    assert loaded.source == str(path)


def test_bad_checkpoints_are_explained(tmp_path, model):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="not a readable audiosiam checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not an audiosiam model checkpoint"):
        load_checkpoint(other)
    future = tmp_path / "future.pt"
    model.save(future)
    payload = torch.load(future, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, future)
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(future)
    with pytest.raises(CheckpointError, match="no bundled model named 'nonexistent'"):
        audiosiam.load_model("nonexistent")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        audiosiam.load_model(tmp_path / "missing.pt")


def test_a_checkpoint_file_is_a_checkpoint_whatever_its_name(tmp_path, monkeypatch):
    from audiosiam.errors import CheckpointError
    from audiosiam.models import EmbeddingModel, load_model

    model = EmbeddingModel()
    for name in ("mine.pth", "model.ckpt", "weights"):
        path = model.save(tmp_path / name)
        monkeypatch.chdir(tmp_path)
        loaded = load_model(name)  # relative, as typed on a command line
        assert loaded.source == str((tmp_path / name).resolve())  # recorded so it works from any folder
        assert loaded.source == str(Path(path).resolve())
    with pytest.raises(CheckpointError, match="no bundled model named 'nosuch'"):
        load_model("nosuch")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model("missing.pth")


class _Executable:  # a pickled object: weights_only loading refuses it
    pass


def test_a_checkpoint_with_code_in_it_is_refused_without_unsafe_advice(tmp_path, recwarn):
    crafted = tmp_path / "crafted.pt"
    torch.save({"format": "audiosiam-model", "payload": _Executable()}, crafted)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(crafted)
    message = str(info.value)
    assert "crafted.pt" in message and "could run code" in message
    assert "weights_only" not in message and "file an issue" not in message.lower()
    assert not [w for w in recwarn if "pickle protocol" in str(w.message)]


def test_a_device_that_is_not_there_is_a_parameter_error(tmp_path, model):
    from audiosiam.devices import resolve_device
    from audiosiam.errors import ParameterError

    path = tmp_path / "m.pt"
    model.save(path)
    with pytest.raises(ParameterError, match="device='gpu': not a device"):
        load_checkpoint(path, device="gpu")
    if not torch.cuda.is_available():
        for call in (lambda: audiosiam.load_model(device="cuda"), lambda: load_checkpoint(path, device="cuda:0")):
            with pytest.raises(ParameterError, match="no CUDA GPU is visible"):
                call()
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
