"""Files to normalised log-mel batches: audiosiam's front end against librosa's pipeline, same files.

Run:  python -m pytest benchmarks/bench_frontend.py --benchmark-columns=median

* audiosiam: ``io.load_many(..., transform=LogMelSpectrogram())``: soundfile decoding on one thread per
  core (no resampling needed at 16 kHz), each thread turning its share of the clips into log-mel
  spectrograms (64 mels, utterance-normalised) while the other decodes; stacked into one batch.
* librosa: ``librosa.load(sr=16000)`` + ``librosa.feature.melspectrogram`` (same settings) +
  ``power_to_db``, one file after another, as its documentation shows.
* ``decode_only``: soundfile decoding alone, the ceiling.

Both use every core the machine has (torch intra-op threads; decoding threads). Clips: 64 one-second
and 64 five-second 16 kHz FLAC files (real Speech Commands recordings when ../shared/data is present).
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from audiosiam.data.locations import shared_data
from audiosiam.io import load_many
from audiosiam.transforms import LogMelSpectrogram
from benchmarks.measure import median_seconds

SHARED = shared_data() / "speech_commands_dev"
N = 64


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frontend")
    if SHARED.is_dir():
        ones = [sf.read(p, dtype="float32")[0] for p in sorted(SHARED.rglob("*.flac"))[: 5 * N]]
    else:
        rng = np.random.default_rng(0)
        ones = [(0.1 * rng.standard_normal(16000)).astype(np.float32) for _ in range(5 * N)]
    out = {1: [], 5: []}
    for i in range(N):
        sf.write(folder / f"a{i}.flac", ones[i], 16000)
        out[1].append(folder / f"a{i}.flac")
        sf.write(folder / f"b{i}.flac", np.concatenate(ones[5 * i : 5 * i + 5]), 16000)
        out[5].append(folder / f"b{i}.flac")
    return out


def ours(paths, transform):
    return torch.stack(load_many(paths, 16000, transform=transform))


def librosa_pipeline(paths):
    import librosa

    out = []
    for p in paths:
        y, sr = librosa.load(p, sr=16000)
        mel = librosa.feature.melspectrogram(
            y=y, sr=sr, n_fft=512, hop_length=160, win_length=400, n_mels=64, pad_mode="constant"
        )
        out.append(librosa.power_to_db(mel, ref=1.0, top_db=80.0))
    return np.stack(out)


@pytest.mark.parametrize("seconds", [1, 5])
@pytest.mark.parametrize("impl", ["audiosiam", "librosa", "decode_only"])
def test_files_to_log_mel(benchmark, files, seconds, impl):
    paths = files[seconds]
    transform = LogMelSpectrogram(normalize=None)
    reference = librosa_pipeline(paths[:2])
    got = ours(paths[:2], transform).numpy()
    above = reference > reference.min() + 1e-6
    assert np.abs(got - reference)[above].max() < 0.05  # same features before timing counts
    pipeline = LogMelSpectrogram()  # built once, as a data pipeline would (the filterbank is cached anyway)
    run = {
        "audiosiam": lambda: ours(paths, pipeline),
        "librosa": lambda: librosa_pipeline(paths),
        "decode_only": lambda: load_many(paths, 16000),
    }[impl]
    benchmark.pedantic(run, rounds=15, iterations=1, warmup_rounds=2)  # short calls: 15 rounds tame the noise
    median = median_seconds(benchmark)
    if median is not None:
        clips_per_s = len(paths) / median
        benchmark.extra_info.update(clips_per_second=clips_per_s, x_real_time=clips_per_s * seconds)
