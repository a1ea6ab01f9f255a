"""The exported model in onnxruntime against audiosiam, same waveforms, same run.

Run:  python -m pytest benchmarks/bench_export.py --benchmark-columns=median

The bundled ``default`` model is exported to ONNX once (``models.export.export_model``, as ``audiosiam export``
writes it). Both embed waveforms already in memory (decoding is the same work for both and stays outside
the graph): audiosiam with ``model.embed(waveforms, sample_rate=16000)`` (its compiled ``mel_power``, batches
of 64 windows), onnxruntime with one ``session.run`` of the (clips, samples) batch (the reference ``mel_power``
in the graph; all its graph optimisations, as many intra-op threads as torch is given). Clips: 64 x 1 s and
16 x 5 s (4 windows each, so 64 windows either way), real recordings from ../shared/data when present
(speech_commands_dev), else the example clips joined end to end. The embeddings are compared (cosine
>= 0.9999) before the times count. ``ratio`` = audiosiam time / onnxruntime time (above 1: onnxruntime is
faster), in the onnxruntime row's extra info and printed: the ratio of the two rows' medians, and
``paired_ratio``, the median ratio of 7 back-to-back pairs (steadier on a shared machine whose speed drifts).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import audiosiam
from audiosiam.models.export import export_model
from benchmarks.measure import median_seconds, run_timed

ort = pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "speech_commands_dev"
CLIPS = {1: 64, 5: 16}  # seconds -> clips in the batch
_MEDIANS: dict[tuple, float] = {}


@pytest.fixture(scope="module")
def model():
    return audiosiam.load_model()


@pytest.fixture(scope="module")
def onnx_file(model, tmp_path_factory):
    return export_model(model, tmp_path_factory.mktemp("export") / "default.onnx").path


@pytest.fixture(scope="module")
def waves() -> dict[int, np.ndarray]:
    """{seconds: (clips, seconds * 16000) float32}, real recordings."""
    if SHARED.is_dir():
        sources = sorted(p for p in SHARED.rglob("*.flac") if p.parent.name != "noise")[:200]
    else:
        sources = sorted((ROOT / "examples").rglob("*.flac"))
    audio = np.concatenate([sf.read(p, dtype="float32", always_2d=True)[0].mean(axis=1) for p in sources])
    while len(audio) < 2 * 80 * 16000:  # enough for both sizes without reuse of a stretch within one
        audio = np.concatenate([audio, audio[::-1]])
    out = {}
    for seconds, count in CLIPS.items():
        n = seconds * 16000
        out[seconds] = np.stack([audio[i * n : (i + 1) * n] for i in range(count)])
    return out


_SESSIONS: dict[int, object] = {}


def _session(path: Path, threads: int):
    if threads not in _SESSIONS:
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        _SESSIONS[threads] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return _SESSIONS[threads]


@pytest.mark.parametrize("impl", ["audiosiam", "onnxruntime"])
@pytest.mark.parametrize("seconds", list(CLIPS))
def test_embed_waveforms(benchmark, model, onnx_file, waves, threads, seconds, impl):
    batch = waves[seconds]
    session = _session(onnx_file, threads)
    clips = [torch.from_numpy(w) for w in batch]
    ours = lambda: model.embed(clips, sample_rate=16000)  # noqa: E731
    theirs = lambda: session.run(None, {"waveform": batch})[0]  # noqa: E731
    cosines = (ours().numpy() * theirs()).sum(axis=1)
    assert cosines.min() >= 0.9999  # the same embeddings before the time counts
    run_timed(
        benchmark, ours if impl == "audiosiam" else theirs, rounds=7, clips=len(batch), seconds=seconds, threads=threads
    )
    median = median_seconds(benchmark)
    if median is None:
        return
    _MEDIANS[seconds, threads, impl] = median
    other = _MEDIANS.get((seconds, threads, "audiosiam"))
    if impl == "onnxruntime" and other is not None:
        paired = statistics.median(_seconds(ours) / _seconds(theirs) for _ in range(7))
        benchmark.extra_info.update(ratio=other / median, paired_ratio=paired)
        print(
            f"\n{len(batch)} x {seconds} s, {threads} thread(s): audiosiam {other * 1e3:.1f} ms, onnxruntime "
            f"{median * 1e3:.1f} ms, ratio {other / median:.2f}, paired {paired:.2f}"
        )


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
