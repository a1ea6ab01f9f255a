"""The int8 trunk for long recordings: its ranges, its closeness to the float trunk, and who uses it when."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from audiosiam.detection import EventDetector
from audiosiam.errors import CheckpointError, ParameterError
from audiosiam.io import load_audio
from audiosiam.models import load_model
from audiosiam.models.checkpoint_file import read_trusted, update_checkpoint_info
from audiosiam.models.embedding import EmbeddingModel
from audiosiam.models.int8_ranges import fit_activation_ranges, fit_int8_ranges
from audiosiam.models.quantized import RANGES_KEY, Int8Trunk, int8_available, trunk_points
from audiosiam.models.sliding import SlidingEmbedder

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RATE = 16000

pytestmark = pytest.mark.skipif(not int8_available(), reason="this torch build has no oneDNN integer kernels")


@pytest.fixture(scope="module")
def model():
    return load_model().eval()


@pytest.fixture(scope="module")
def recording():
    """Half a minute of the bundled example clips (drums, birds, water, words) one after the other, over
    quiet noise."""
    clips = [load_audio(p) for p in sorted(EXAMPLES.rglob("*.flac"))]
    wave = torch.cat(clips)[: 30 * RATE]
    return wave + 1e-3 * torch.from_numpy(np.random.default_rng(0).standard_normal(wave.numel()).astype(np.float32))


def _windows(model, wave, precision):
    embedder = SlidingEmbedder(model, 1.0, 0.16, precision=precision)
    assert embedder.precision == precision
    out = list(embedder.embed([wave]))
    return torch.cat([s for s, _ in out]), torch.cat([e for _, e in out])


def test_bundled_models_carry_their_ranges_and_long_recordings_use_int8_on_the_cpu(model):
    for name in ("default", "speaker"):
        ranges = load_model(name).info[RANGES_KEY]
        assert sorted(ranges) == sorted(trunk_points(model.encoder))
        assert all(low <= 0 <= high and high > low for low, high in ranges.values())
    assert SlidingEmbedder(model, 1.0, 0.16).precision == "int8"
    assert SlidingEmbedder(model, 1.0, 0.16, precision="float32").precision == "float32"


def test_int8_windows_are_the_float_windows_to_within_quantization(model, recording):
    starts, exact = _windows(model, recording, "float32")
    starts8, fast = _windows(model, recording, "int8")
    torch.testing.assert_close(starts8, starts)
    cosine = (exact * fast).sum(1)
    # Measured here: worst window 0.996, mean 0.9996. A sign or scale error in any layer gives < 0.9.
    assert float(cosine.min()) > 0.99 and float(cosine.mean()) > 0.999
    # And they are not the same numbers: the int8 path really ran.
    assert not torch.equal(exact, fast)


def test_int8_streaming_gives_the_windows_of_the_whole_recording(model, recording):
    whole = SlidingEmbedder(model, 1.0, 0.16, chunk_seconds=100, precision="int8")
    streamed = SlidingEmbedder(model, 1.0, 0.16, chunk_seconds=3, precision="int8")
    a = torch.cat([e for _, e in whole.embed([recording])])
    b = torch.cat([e for _, e in streamed.embed(recording[i : i + 7777] for i in range(0, recording.numel(), 7777))])
    assert float((a * b).sum(1).min()) > 0.9999


def test_ranges_are_the_extremes_of_each_point(model, recording):
    embedder = SlidingEmbedder(model, 1.0, 0.16, precision="float32")
    features = [embedder.features(recording[: 10 * RATE]), embedder.features(recording[10 * RATE :] * 3)]
    ranges = fit_activation_ranges(model.encoder, features)
    assert list(ranges) == trunk_points(model.encoder)
    everything = torch.cat([f.reshape(-1) for f in features])
    assert ranges["input"] == pytest.approx([float(everything.min()), float(everything.max())])
    with torch.inference_mode():
        stem = model.encoder.inference_trunk().stem(features[1][:, None]).relu_()
    assert ranges["stem"][0] == 0.0 and ranges["stem"][1] >= float(stem.max()) - 1e-6
    relu_points = [p for p in ranges if p == "stem" or p.endswith((".conv1", ".out"))]
    assert all(ranges[p][0] == 0.0 for p in relu_points)
    assert all(ranges[p][0] < 0 for p in ranges if p.endswith((".shortcut", ".conv2")))
    with pytest.raises(ParameterError, match="no features"):
        fit_activation_ranges(model.encoder, [])


def test_ranges_fitted_from_clips_run_a_new_model(recording):
    """An untrained model with ranges fitted on real clips: the whole path a newly trained checkpoint takes
    (``scripts/fit_int8_ranges.py``, whose call this is), and its int8 windows follow its float ones."""
    torch.manual_seed(0)
    fresh = EmbeddingModel().eval()
    with pytest.raises(ParameterError, match="no int8 ranges"):
        SlidingEmbedder(fresh, 1.0, 0.16, precision="int8")
    assert SlidingEmbedder(fresh, 1.0, 0.16).precision == "float32"  # auto: what it can run
    clips = [recording[i : i + 2 * RATE] for i in range(0, 20 * RATE, 2 * RATE)]
    fresh.info[RANGES_KEY] = fit_int8_ranges(fresh, clips, recording_seconds=10)
    assert list(fresh.info[RANGES_KEY]) == trunk_points(fresh.encoder)
    _, exact = _windows(fresh, recording[20 * RATE :], "float32")
    _, fast = _windows(fresh, recording[20 * RATE :], "int8")
    assert float((exact * fast).sum(1).mean()) > 0.99


def test_ranges_from_files_pass_over_unreadable_ones(tmp_path, model):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not audio")
    files = sorted(EXAMPLES.rglob("*.flac")) + [broken]
    ranges = fit_int8_ranges(model, files, minutes=0.5, seed=1)
    assert list(ranges) == trunk_points(model.encoder)
    with pytest.raises(ParameterError, match="none of the 1 clips could be read"):
        fit_int8_ranges(model, [broken])


def test_bad_ranges_and_precisions_are_named(model):
    ranges = dict(model.info[RANGES_KEY])
    del ranges["stem"]
    with pytest.raises(ParameterError, match="no range for \\['stem'\\]"):
        Int8Trunk(model.encoder, ranges)
    with pytest.raises(ParameterError, match="low=1.0, high=1.0"):
        Int8Trunk(model.encoder, {**model.info[RANGES_KEY], "input": [1.0, 1.0]})
    with pytest.raises(ParameterError, match="choose one of auto, int8, float32"):
        SlidingEmbedder(model, 1.0, 0.16, precision="fp16")
    with pytest.raises(ParameterError, match="choose one of"):
        EventDetector(model, precision="int4")


def test_detections_in_int8_and_float32_agree(model, recording):
    examples = [load_audio(p) for p in sorted((EXAMPLES / "support" / "snare").glob("*.flac"))]
    found = {}
    for precision in ("int8", "float32"):
        detector = EventDetector(model, precision=precision).fit(examples, labels="snare", sample_rate=RATE)
        assert detector.precision_ == precision
        found[precision] = detector.detect(recording, sample_rate=RATE)
    assert found["int8"], "the snare examples' own sounds are in the recording"
    assert len(found["int8"]) == len(found["float32"])
    for a, b in zip(found["int8"], found["float32"], strict=True):
        assert abs(a.start - b.start) <= 0.16 and abs(a.end - b.end) <= 0.16 and abs(a.score - b.score) < 0.02


def test_update_checkpoint_info_keeps_the_weights(tmp_path, model):
    path = model.save(tmp_path / "m.pt")
    update_checkpoint_info(path, **{RANGES_KEY: {"input": (-1.0, 1.0)}})
    payload = read_trusted(path, "audiosiam checkpoint", "-")
    assert payload["info"][RANGES_KEY] == {"input": [-1.0, 1.0]}
    reloaded = load_model(path)
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), model.state_dict().values()))
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="broken.pt"):
        update_checkpoint_info(tmp_path / "broken.pt", x=1)
