"""`audiosiam export`: the exported graphs embed as audiosiam embeds.

The bundled default model is exported once per module, through the command line, in both formats; the
example clips (16 kHz mono FLAC, 0.23 to 3 s) are embedded by onnxruntime, by ``torch.export.load`` and by
audiosiam, alone and in batches of equal length, and classified by example with each. The length policy
(padding, windows) is checked at each of its boundaries on a real clip, and the errors name what is wrong.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from cli_runner import cli

import audiosiam
from audiosiam.errors import AudiosiamError, CheckpointError, ParameterError
from audiosiam.models import EmbeddingModel, load_model
from audiosiam.models.export import ClipEmbedder, export_model

pytestmark = pytest.mark.slow  # subprocesses, training runs and exports: the full suite only

ort = pytest.importorskip("onnxruntime")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SUPPORT = sorted(EXAMPLES.glob("support/*/*.flac"))
QUERIES = sorted(EXAMPLES.glob("query/*.flac"))
CLIPS = SUPPORT + QUERIES
PARITY = 0.9999  # the least cosine between an exported embedding and audiosiam's


def read(path: Path) -> np.ndarray:
    """A clip as the README reads it for onnxruntime: soundfile, float32, the channels' mean."""
    wave, _ = sf.read(path, dtype="float32", always_2d=True)
    return wave.mean(axis=1)


@pytest.fixture(scope="module")
def model():
    return load_model("default")


@pytest.fixture(scope="module")
def expected(model) -> dict[Path, np.ndarray]:
    """audiosiam's embedding of each example clip."""
    return dict(zip(CLIPS, model.embed(CLIPS).numpy()))


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    """The default model written by the command line, once in each format."""
    folder = tmp_path_factory.mktemp("export")
    paths = {}
    for fmt, name in (("onnx", "default.onnx"), ("torch", "default.pt2")):
        code, out, err = cli("export", "default", "--format", fmt, "--out", folder / name)
        assert code == 0, err
        assert "16000 Hz" in out and "(batch, 192)" in out
        assert "mel_power: the compiled kernel cannot be exported" in err  # it says what it replaced
        paths[fmt] = folder / name
    assert sorted(p.name for p in folder.iterdir()) == ["default.onnx", "default.pt2"]  # no temporaries left
    return paths


@pytest.fixture(scope="module")
def session(exported):
    return ort.InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])


def load_pt2(path: Path, **kwargs):
    with warnings.catch_warnings():  # torch's own note that it reads the weights from a read-only buffer
        warnings.filterwarnings("ignore", "The given buffer is not writable", UserWarning)
        return torch.export.load(path, **kwargs)


@pytest.fixture(scope="module")
def program(exported):
    return load_pt2(exported["torch"]).module()


def run_onnx(session, batch: np.ndarray) -> np.ndarray:
    return session.run(None, {"waveform": np.ascontiguousarray(batch, dtype=np.float32)})[0]


def run_torch(program, batch: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return program(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).numpy()


RUNNERS = {"onnx": ("session", run_onnx), "torch": ("program", run_torch)}


@pytest.fixture(params=list(RUNNERS))
def embed(request):
    """(batch, samples) float32 -> (batch, D) embeddings, by one exported format."""
    fixture, run = RUNNERS[request.param]
    graph = request.getfixturevalue(fixture)
    return lambda batch: run(graph, batch)


def test_each_example_clip_alone(embed, expected):
    worst = min(float(embed(read(p)[None])[0] @ expected[p]) for p in CLIPS)
    assert worst >= PARITY


def test_clips_of_equal_length_in_one_batch(embed, expected):
    by_length = defaultdict(list)
    for path in CLIPS:
        by_length[len(read(path))].append(path)
    sizes = sorted(len(paths) for paths in by_length.values())
    assert sizes[-1] >= 8 and 1 in sizes  # one-second words, three-second water, single clips
    for paths in by_length.values():
        got = embed(np.stack([read(p) for p in paths]))
        assert got.shape == (len(paths), 192)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        assert min(float(g @ expected[p]) for g, p in zip(got, paths)) >= PARITY


# Every boundary of the length policy (window 2 s, hop 1 s, minimum 1 s, lengths padded to 0.25 s): one
# sample, short clips centred, middling ones padded, two windows from 2 s + 1 sample, a last window aligned
# to the end, many windows.
BOUNDARIES = (1, 160, 3999, 4001, 15999, 16000, 16001, 27999, 31999, 32000, 32001, 47999, 48001, 100_000)


@pytest.fixture(scope="module")
def long_real_wave() -> np.ndarray:
    """Real recordings end to end (the water, bird and word clips), 6.6 s: cropped to each length."""
    names = ("water/0ad_river_med", "bird/widelands_bird2_00", "word_yes/1acc97de_4", "water/redeclipse_river")
    return np.concatenate([read(EXAMPLES / "support" / f"{n}.flac") for n in names])


def test_every_boundary_of_the_length_policy(embed, model, long_real_wave):
    for batch in (1, 3):
        for n in BOUNDARIES:
            clips = [np.roll(long_real_wave, 7919 * i)[:n] for i in range(batch)]
            want = model.embed([torch.from_numpy(c) for c in clips], sample_rate=16000).numpy()
            got = embed(np.stack(clips))
            cosines = (got * want).sum(axis=1)
            assert cosines.min() >= PARITY, (batch, n, cosines)


def test_clip_embedder_is_the_length_policy_of_embed(model, long_real_wave):
    # the eager module, without tracing: the pad="end" policy too
    ends = EmbeddingModel(model.frontend, model.encoder, pad="end").eval()
    for m in (model, ends):
        module = ClipEmbedder(m).eval()
        for n in BOUNDARIES:
            wave = torch.from_numpy(long_real_wave[:n])
            with torch.no_grad():
                got = module(wave[None])[0]
            assert float(got @ m.embed(wave, sample_rate=16000)[0]) >= PARITY, (m.pad, n)


def test_a_decision_by_example_equals_audiosiams(embed, model):
    labels = [p.parent.name for p in SUPPORT]
    ours = audiosiam.FewShotClassifier(model).fit(SUPPORT, labels)
    support = np.concatenate([embed(read(p)[None]) for p in SUPPORT])
    queries = np.concatenate([embed(read(p)[None]) for p in QUERIES])
    theirs = audiosiam.FewShotClassifier(model).add_embeddings(torch.from_numpy(support), labels)
    assert list(theirs.predict_embeddings(torch.from_numpy(queries))) == list(ours.predict(QUERIES))
    np.testing.assert_allclose(
        theirs.predict_proba_embeddings(torch.from_numpy(queries)), ours.predict_proba(QUERIES), atol=1e-3
    )


def test_the_files_say_what_they_expect(exported, session):
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["sample_rate"] == "16000" and meta["embedding_dim"] == "192"
    assert meta["reference_ops"] == "mel_power" and json.loads(meta["length_policy"])["window_seconds"] == 2.0
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.type, out.name) == ("waveform", "tensor(float)", "embedding")
    assert isinstance(inp.shape[0], str) and isinstance(inp.shape[1], str) and out.shape[1] == 192  # dynamic axes
    extra = {"audiosiam.json": ""}
    load_pt2(exported["torch"], extra_files=extra)
    assert json.loads(extra["audiosiam.json"]) == meta


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("aisfx") is None, reason="aisfx is not installed (the sfx weights)")
def test_the_sfx_preset_exports_too(tmp_path):
    sfx = load_model("sfx")
    result = export_model(sfx, tmp_path / "sfx", format="onnx")
    assert result.path.name == "sfx.onnx" and result.sample_rate == 44100 and result.reference_ops == ()
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for n in (1000, 101_430, 200_000):  # padded to its 2.3 s window, exactly one, two windows
        clips = (0.1 * rng.standard_normal((2, n))).astype(np.float32)
        want = sfx.embed([torch.from_numpy(c) for c in clips], sample_rate=44100).numpy()
        assert (run_onnx(session, clips) * want).sum(axis=1).min() >= PARITY


# ------------------------------------------------------------------------------------------------ errors


def test_bad_models_are_named(tmp_path):
    code, _, err = cli("export", "nosuch", "--out", tmp_path / "m.onnx")
    assert code == 1 and "no bundled model named 'nosuch'" in err
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    code, _, err = cli("export", broken, "--out", tmp_path / "m.onnx")
    assert code == 1 and str(broken) in err
    with pytest.raises(CheckpointError, match="broken.pt"):
        load_model(broken)
    assert not (tmp_path / "m.onnx").exists()


def test_bad_outputs_are_named(tmp_path):
    code, _, err = cli("export", "default", "--out", tmp_path)
    assert code == 1 and f"{tmp_path}: is a folder" in err
    code, _, err = cli("export", "default", "--format", "torch", "--out", tmp_path / "m.onnx")
    assert code == 1 and "--format torch" in err and "m.pt2" in err
    with pytest.raises(SystemExit):  # argparse: an unknown format is a usage error
        cli("export", "default", "--format", "tflite", "--out", tmp_path / "m.tflite")
    with pytest.raises(ParameterError, match="format='tflite'"):
        export_model(load_model(), tmp_path / "m.tflite", format="tflite")


def test_a_length_policy_it_cannot_express_is_refused(checkpoint):
    model = load_model(checkpoint)
    odd = EmbeddingModel(model.frontend, model.encoder, min_seconds=0.9)
    with pytest.raises(AudiosiamError, match="cannot be exported"):
        ClipEmbedder(odd)


def test_a_failed_export_leaves_the_old_file(tmp_path, checkpoint, monkeypatch):
    from audiosiam.models import export

    out = tmp_path / "m.onnx"
    out.write_bytes(b"the previous export")

    def fail(module, fmt):
        raise RuntimeError("an op the exporter does not know\nmore lines")

    monkeypatch.setattr(export, "_trace", fail)
    with pytest.raises(AudiosiamError, match=r"tiny.pt: could not be exported as onnx \(RuntimeError: an op"):
        export_model(load_model(checkpoint), out)
    assert out.read_bytes() == b"the previous export" and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
