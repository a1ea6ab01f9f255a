"""The ``sfx`` preset: aiSFX's front end against its librosa recipe, its network against the authors' module,
the weights read from the aisfx wheel (and refused when they differ), and the model behind every audiosiam
path (clips, long recordings, checkpoints)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import audiosiam
from audiosiam.errors import CheckpointError
from audiosiam.models import EmbeddingModel, load_checkpoint
from audiosiam.models.aisfx import AiSfxEncoder, AiSfxFrontEnd, _package_file, aisfx_weights, authors_features
from audiosiam.models.sliding import SlidingEmbedder

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("aisfx") is None, reason="aisfx is not installed (requirements-nodeps.txt)"
)


@pytest.fixture(scope="module")
def sfx():
    return audiosiam.load_model("sfx")


@pytest.mark.slow
def test_front_end_matches_the_librosa_recipe_on_real_clips():
    # documented tolerance: 1e-4 absolute on features whose range is [0, ~1]
    for path in sorted((EXAMPLES / "support").rglob("*.flac"))[:4]:
        wave = audiosiam.io.load_audio(path, 44100)
        ours = AiSfxFrontEnd()(wave).numpy()
        theirs = authors_features(wave.numpy().astype(np.float32))
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_front_end_of_silence_is_zero_and_batch_rows_are_independent():
    fe = AiSfxFrontEnd()
    assert torch.count_nonzero(fe(torch.zeros(44100))) == 0
    a, b = torch.randn(44100) * 1e-3, torch.randn(44100) * 10
    batched = fe(torch.stack([a, b]))
    torch.testing.assert_close(batched[0], fe(a))
    torch.testing.assert_close(batched[1], fe(b))
    torch.testing.assert_close(fe(a), fe(100 * a), atol=1e-5, rtol=1e-4)  # peak-normalised: level-free


def test_encoder_matches_the_authors_network():
    path = _package_file()
    spec = importlib.util.spec_from_file_location("aisfx_cnn2d", path.parent / "cnn2d.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    theirs = module.EmbeddingNet("max", 3, 1, 64)
    weights = aisfx_weights()
    theirs.load_state_dict(weights)
    ours = AiSfxEncoder()
    ours.load_state_dict(weights)
    theirs.eval(), ours.eval()
    features = torch.rand(3, 96, 100)
    with torch.no_grad():
        expected = theirs(features.transpose(1, 2))  # their layout: (batch, time, freq)
        torch.testing.assert_close(ours(features), torch.nn.functional.normalize(expected, dim=1))
        torch.testing.assert_close(ours.inference_trunk()(features), ours.frames(features), atol=1e-4, rtol=1e-4)


def test_windows_pool_exactly_as_clips_of_their_frames():
    torch.manual_seed(0)
    encoder = AiSfxEncoder().eval()
    frames = torch.randn(512, 40)
    windows = encoder.embed_windows(frames, 12, 4)
    assert windows.shape == (1 + (40 - 12) // 4, 512)
    for i in range(len(windows)):
        torch.testing.assert_close(windows[i], encoder.embed_frames(frames[None, :, 4 * i : 4 * i + 12])[0])


def test_sfx_preset_embeds_clips_and_long_recordings(sfx):
    clips = sorted((EXAMPLES / "support").rglob("*.flac"))[:3]
    emb = sfx.embed(clips)
    assert emb.shape == (3, 512)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    assert sfx.info["attribution"].startswith("aiSFX")
    # a long recording streamed in small chunks gives the windows of the whole recording at once
    wave = torch.cat([audiosiam.io.load_audio(c, sfx.sample_rate) for c in clips] * 3)
    whole = SlidingEmbedder(sfx, 1.5, 0.4, chunk_seconds=600)
    pieces = SlidingEmbedder(sfx, 1.5, 0.4, chunk_seconds=3)
    a = torch.cat([e for _, e in whole.embed([wave])])
    b = torch.cat([e for _, e in pieces.embed(wave.split(20000))])
    assert whole.precision == "float32" and a.shape == b.shape and len(a) > 5
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_sfx_preset_refuses_other_weights_and_saves_as_a_full_checkpoint(sfx, tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="sha256"):
        aisfx_weights(sha256="0" * 64)
    saved = load_checkpoint(sfx.save(tmp_path / "mine.pt"))  # a user's copy holds its weights
    assert isinstance(saved.encoder, AiSfxEncoder) and isinstance(saved, EmbeddingModel)
    for a, b in zip(saved.state_dict().values(), sfx.state_dict().values()):
        assert torch.equal(a, b)
    # without the aisfx package, the preset says how to install it
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(CheckpointError, match="pip install --no-deps aisfx==0.1.2"):
        audiosiam.load_model("sfx")


def test_detector_finds_with_the_sfx_model(sfx):
    examples = sorted((EXAMPLES / "support" / "snare").glob("*.flac"))
    other = sorted((EXAMPLES / "support" / "water").glob("*.flac"))
    rate = sfx.sample_rate
    silence = torch.zeros(rate)
    recording = torch.cat(
        [silence, audiosiam.io.load_audio(other[0], rate), silence, audiosiam.io.load_audio(examples[0], rate), silence]
    )
    detector = audiosiam.EventDetector(model=sfx).fit(examples[1:], labels="snare")
    events = detector.detect(recording, sample_rate=rate)
    assert events, "the snare was not found"
    snare_at = (2 * rate + len(audiosiam.io.load_audio(other[0], rate))) / rate
    assert any(e.start - 1.0 <= snare_at <= e.end + 1.0 for e in events)
