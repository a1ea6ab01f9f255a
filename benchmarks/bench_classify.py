"""Classification by example: embedding throughput from files, and decisions against a large gallery.

Run:  python -m pytest benchmarks/bench_classify.py --benchmark-columns=median,ops

* ``test_embed_files``: clips per second from audio files on disk to embeddings with the bundled ``default``
  and the ``sfx`` preset (aiSFX, 44.1 kHz; skipped without the aisfx package), for 1 s and 5 s clips,
  batched (64 per call) and one clip per call: the ratio of the two models in one run is their speed.
  Clips are real recordings from ../shared/data when present (speech_commands_dev, 1 s), else generated;
  5 s clips are five 1 s clips joined. "x real time" = audio seconds per wall-clock second = clips/s x clip length.
* ``test_classify_against_large_gallery``: 1,000 already-embedded queries against a 100,000-clip gallery
  (1,000 classes of 100), nearest prototype and k-NN (FAISS above 100k items).
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import audiosiam
from audiosiam.data.locations import shared_data
from audiosiam.fewshot import FewShotClassifier
from benchmarks.measure import median_seconds

SHARED = shared_data() / "speech_commands_dev"
N_CLIPS = 64


@pytest.fixture(scope="module")
def model():
    return audiosiam.load_model()


_PRESETS: dict[str, audiosiam.models.EmbeddingModel] = {}


def _preset(name: str):
    if name == "sfx":
        pytest.importorskip("aisfx", reason="the sfx preset reads its weights from the aisfx package")
    if name not in _PRESETS:
        _PRESETS[name] = audiosiam.load_model(name)
    return _PRESETS[name]


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    """{seconds: [paths]}: 64 one-second and 64 five-second 16 kHz FLAC files."""
    folder = tmp_path_factory.mktemp("clips")
    if SHARED.is_dir():
        sources = sorted(p for p in SHARED.rglob("*.flac") if p.parent.name != "noise")[: 5 * N_CLIPS]
        ones = [sf.read(p, dtype="float32")[0] for p in sources]
    else:  # no shared data: chirps in noise, still real decoding and resampling work
        rng = np.random.default_rng(0)
        t = np.arange(16000) / 16000
        ones = [
            (0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t * (1 + t)) + 0.01 * rng.standard_normal(16000)).astype(
                np.float32
            )
            for i in range(5 * N_CLIPS)
        ]
    files = {1: [], 5: []}
    for i in range(N_CLIPS):
        one = folder / f"one_{i}.flac"
        sf.write(one, ones[i], 16000)
        files[1].append(one)
        five = folder / f"five_{i}.flac"
        sf.write(five, np.concatenate(ones[5 * i : 5 * i + 5]), 16000)
        files[5].append(five)
    return files


@pytest.mark.parametrize("seconds", [1, 5])
@pytest.mark.parametrize("mode", ["batched", "one_at_a_time"])
@pytest.mark.parametrize("preset", ["default", "sfx"])
def test_embed_files(benchmark, preset, clip_files, seconds, mode):
    model = _preset(preset)
    paths = clip_files[seconds]
    reference = model.embed(paths[:4])
    assert torch.allclose(model.embed(paths[:1])[0], reference[0], atol=1e-4)  # batching changes nothing

    if mode == "batched":
        run = lambda: model.embed(paths, batch_size=64)  # noqa: E731
    else:
        run = lambda: [model.embed([p]) for p in paths]  # noqa: E731
    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    median = median_seconds(benchmark)
    if median is not None:
        clips_per_s = len(paths) / median
        benchmark.extra_info.update(
            clips_per_second=clips_per_s, x_real_time=clips_per_s * seconds, threads=torch.get_num_threads()
        )


@pytest.fixture(scope="module")
def large_gallery(model):
    gen = torch.Generator().manual_seed(0)
    dim, classes, per_class = model.embedding_dim, 1000, 100
    centres = torch.nn.functional.normalize(torch.randn(classes, dim, generator=gen), dim=1)
    emb = centres.repeat_interleave(per_class, 0) + 0.08 * torch.randn(classes * per_class, dim, generator=gen)
    labels = [f"class{i}" for i in range(classes) for _ in range(per_class)]
    queries = centres[torch.arange(1000) % classes] + 0.08 * torch.randn(1000, dim, generator=gen)
    truth = np.asarray([f"class{i % classes}" for i in range(1000)], dtype=object)
    return emb, labels, queries, truth


@pytest.mark.parametrize("rule", ["prototype", "knn"])
def test_classify_against_large_gallery(benchmark, model, large_gallery, rule):
    emb, labels, queries, truth = large_gallery
    clf = FewShotClassifier(model, rule=rule, n_neighbors=5).add_embeddings(emb, labels)
    predicted = clf.predict_embeddings(queries)
    assert (predicted == truth).mean() > 0.99  # the answer is right before its time counts
    benchmark.pedantic(clf.predict_embeddings, args=(queries,), rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(gallery=len(emb), queries=len(queries))
