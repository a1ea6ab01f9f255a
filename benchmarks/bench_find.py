"""Finding sounds in long recordings: `find` on an hour of audio against decoding it alone, and its memory.

Run:  python -m pytest benchmarks/bench_find.py --benchmark-columns=median

* ``test_decode_hour``: reading the hour-long file block by block (``audiosiam.io.read_blocks``), the
  floor any tool that reads the file pays.
* ``test_find_hour[auto]``: the whole search of that file for one label fitted on 3 examples
  (``EventDetector.detect``: decoding, front end, network, scores, threshold, events), as ``find`` runs it
  (the trunk in int8 where the checkpoint allows); ``[float32]`` the same in float32, the baseline; its
  ``extra_info`` holds "x real time" (audio seconds per second), the peak resident-memory growth and the
  CPU seconds of one search (all threads: steadier than the wall time where the machine's speed drifts).

* ``test_embed_hour_48k_stereo``: one clip embedding of an hour of 48 kHz stereo FLAC (``embed``,
  ``classify`` and ``verify`` on a whole file: ``EmbeddingModel.embed``, which streams a file that long
  through the same windows as ``find``); ``extra_info`` holds its peak resident-memory growth (it loaded
  the file whole before, ~4 GB).

The recording is one hour of 16 kHz 16-bit mono WAV: steady noise with a short sound every few
seconds (the bundled example clips), so the detector has events to decide about; the stereo hour is the
same content at 48 kHz, its right channel at half the level.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import audiosiam
from audiosiam.io import load_audio, read_blocks
from audiosiam.io.resampling import resample
from benchmarks.measure import median_seconds, peak_extra_bytes, run_timed

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RATE, HOUR = 16000, 3600


@pytest.fixture(scope="module")
def hour_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("find") / "hour.wav"
    clips = [load_audio(p).numpy() for p in sorted((EXAMPLES / "query").glob("*.flac"))]
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", RATE, 1, "PCM_16") as f:
        for minute in range(60):
            block = (0.01 * rng.standard_normal(60 * RATE)).astype(np.float32)
            for start in range(RATE, 59 * RATE, 7 * RATE):
                clip = clips[rng.integers(len(clips))][: 2 * RATE]
                block[start : start + len(clip)] += 0.3 * clip
            f.write(np.clip(block, -1, 1))
    return path


@pytest.fixture(scope="module")
def hour_48k_stereo(tmp_path_factory, hour_file):
    path = tmp_path_factory.mktemp("embed") / "hour_48k_stereo.flac"
    with sf.SoundFile(path, "w", 48000, 2, "PCM_16", format="FLAC") as f:
        for block in read_blocks(hour_file, RATE):
            up = resample(block, RATE, 48000).numpy()
            f.write(np.clip(np.stack([up, 0.5 * up], axis=1), -1, 1))
    return path


def fitted(precision: str) -> audiosiam.EventDetector:
    examples = sorted((EXAMPLES / "support" / "snare").glob("*.flac"))
    return audiosiam.EventDetector(precision=precision).fit(examples, labels="snare")


def test_decode_hour(benchmark, hour_file):
    samples = run_timed(benchmark, lambda: sum(b.numel() for b in read_blocks(hour_file, RATE)), rounds=3)
    assert samples == HOUR * RATE


@pytest.mark.parametrize("precision", ["auto", "float32"])
def test_find_hour(benchmark, hour_file, precision):
    detector = fitted(precision)
    events = run_timed(benchmark, lambda: detector.detect(hour_file), rounds=3)
    benchmark.extra_info["precision"] = detector.precision_
    assert events and all(e.label == "snare" for e in events)
    if median_seconds(benchmark) is not None:
        benchmark.extra_info["x_real_time"] = HOUR / median_seconds(benchmark)
    benchmark.extra_info["peak_extra_mib"] = (peak_extra_bytes(lambda: detector.detect(hour_file)) or 0) / 2**20
    # CPU time (all threads) is steadier than wall time on a shared VM whose speed drifts.
    before = os.times()
    detector.detect(hour_file)
    after = os.times()
    benchmark.extra_info["cpu_seconds"] = (after.user - before.user) + (after.system - before.system)
    benchmark.extra_info["events"] = len(events)


def test_embed_hour_48k_stereo(benchmark, hour_48k_stereo):
    import torch

    model = audiosiam.load_model()
    embedding = run_timed(benchmark, lambda: model.embed(hour_48k_stereo), rounds=1)
    assert embedding.shape == (1, model.embedding_dim) and torch.isfinite(embedding).all()
    if median_seconds(benchmark) is not None:
        benchmark.extra_info["x_real_time"] = HOUR / median_seconds(benchmark)
    benchmark.extra_info["peak_extra_mib"] = (peak_extra_bytes(lambda: model.embed(hour_48k_stereo)) or 0) / 2**20
    benchmark.extra_info["file_mib"] = hour_48k_stereo.stat().st_size / 2**20
