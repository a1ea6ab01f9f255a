"""Windows of long recordings in one pass: sliding normalisation, windowed pooling, the streaming embedder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiosiam.errors import ParameterError
from audiosiam.functional import log_mel_spectrogram, normalize_sliding
from audiosiam.models import load_model
from audiosiam.models.encoder import AttentiveStatsPooling, EncoderConfig, ResNetEncoder
from audiosiam.models.sliding import SlidingEmbedder

RATE = 16000
EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def model():
    return load_model().eval()


def test_sliding_normalisation_is_the_utterance_normalisation_of_each_frames_neighbourhood():
    wave = torch.randn(24000, dtype=torch.float64) * torch.linspace(0.01, 1.0, 24000, dtype=torch.float64)
    raw = log_mel_spectrogram(wave, top_db=None)[None]  # (1, 64, 151)
    window = 40
    out = normalize_sliding(raw, window, top_db=80.0)
    for t in (20, 75, 130):  # frames whose whole neighbourhood exists
        stretch = raw[..., t - window // 2 : t - window // 2 + window]
        floored = torch.maximum(stretch, stretch.amax() - 80.0)
        centred = floored - floored.mean()
        expected = centred / (centred.square().sum() / (centred.numel() - 1)).sqrt()
        torch.testing.assert_close(out[..., t], expected[..., window // 2])
    # A neighbourhood wider than the clip everywhere is the clip's own utterance normalisation.
    utterance = log_mel_spectrogram(wave, normalize="utterance")
    torch.testing.assert_close(normalize_sliding(raw, 2 * raw.shape[-1] + 1)[0], utterance)
    with pytest.raises(ParameterError):
        normalize_sliding(raw, 0)


def test_windowed_pooling_equals_pooling_each_window():
    pool = AttentiveStatsPooling(24, 8).double()
    x = torch.randn(24, 50, dtype=torch.float64)
    for window, hop in ((7, 3), (12, 2), (6, 3), (1, 1), (50, 4), (48, 4)):  # hop dividing the window or not
        ref = pool(x.unfold(1, window, hop).permute(1, 0, 2).contiguous())
        torch.testing.assert_close(pool.windows(x, window, hop), ref)
    for windows, hop in (((12, 4), 2), ((9, 3), 3), ((7, 4), 2)):  # several lengths sharing their sums, or not
        for window, pooled in zip(windows, pool.windows_of(x, windows, hop)):
            torch.testing.assert_close(pooled, pool.windows(x, window, hop))
    # Logits spread far apart (box sums would underflow) take the exact per-window path.
    with torch.no_grad():
        pool.attention[2].weight.mul_(500.0)
    ref = pool(x.unfold(1, 7, 3).permute(1, 0, 2).contiguous())
    torch.testing.assert_close(pool.windows(x, 7, 3), ref)


def test_encoder_windows_and_inference_trunk_match_the_plain_path():
    encoder = ResNetEncoder(
        EncoderConfig(n_mels=16, channels=(8, 8, 16, 16), blocks=(2, 1, 1), embedding_dim=12)
    ).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so folding them is tested
        for m in encoder.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    features = torch.randn(1, 16, 300)
    with torch.inference_mode():
        frames = encoder.frames(features)
        assert frames.shape[-1] == -(-300 // encoder.time_stride)
        torch.testing.assert_close(encoder.inference_trunk()(features), frames, atol=1e-4, rtol=1e-4)
        windows = encoder.embed_windows(frames[0], 6, 2)
        each = encoder.embed_frames(frames[0].unfold(1, 6, 2).permute(1, 0, 2).contiguous())
        torch.testing.assert_close(windows, each, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(encoder(features), encoder.embed_frames(frames))


def _run(embedder, wave, block):
    out = list(embedder.embed(wave[i : i + block] for i in range(0, wave.numel(), block)))
    return torch.cat([s for s, _ in out]), torch.cat([e for _, e in out])


def test_streaming_gives_the_windows_of_the_whole_recording(model):
    wave = torch.from_numpy(np.random.default_rng(0).standard_normal(RATE * 40).astype(np.float32)) * 0.05
    wave[RATE * 10 : RATE * 12] *= 20  # something to see
    whole = SlidingEmbedder(model, 1.0, 0.16, chunk_seconds=100)
    starts, embeddings = _run(whole, wave, wave.numel())
    assert whole.window_seconds == pytest.approx(0.96) and whole.hop_seconds == pytest.approx(0.16)
    assert starts[0] == 0 and np.allclose(np.diff(starts.numpy()), 0.16)
    assert float(starts[-1]) + whole.window_seconds <= 40.0 < float(starts[-1]) + whole.window_seconds + 0.16
    streamed = SlidingEmbedder(model, 1.0, 0.16, chunk_seconds=3)
    starts2, embeddings2 = _run(streamed, wave, 12345)  # blocks that align with nothing
    torch.testing.assert_close(starts2, starts)
    torch.testing.assert_close(embeddings2, embeddings, atol=2e-5, rtol=1e-4)
    # Per chunk in flight (and the one being read): 3 s, a window and context. Not the recording.
    assert streamed.peak_buffered_seconds < (1 + streamed.concurrent_chunks) * (3 + 4)


def test_memory_stays_bounded_however_long_the_recording(model):
    embedder = SlidingEmbedder(model, 1.0, 0.32, chunk_seconds=20)
    rng = np.random.default_rng(1)
    blocks = (torch.from_numpy(rng.standard_normal(RATE * 30).astype(np.float32)) * 0.05 for _ in range(20))
    windows = sum(e.shape[0] for _, e in embedder.embed(blocks))  # 10 minutes
    assert windows == pytest.approx(600 / 0.32, abs=2)
    # The blocks a chunk starts and ends in, and per chunk in flight (and the one being read) 20 s with a
    # window and context.
    assert embedder.peak_buffered_seconds < 2 * 30 + (1 + embedder.concurrent_chunks) * (20 + 5)


def test_a_window_over_a_clip_looks_like_the_clip(model):
    import soundfile as sf

    clip, rate = sf.read(EXAMPLES / "query" / "bird_wesnoth_birds2.flac", dtype="float32")
    clip = torch.from_numpy(clip if clip.ndim == 1 else clip.mean(1))
    assert rate == RATE
    clip = clip[:RATE]
    embedder = SlidingEmbedder(model, clip.numel() / RATE, 0.08)
    recording = torch.cat([torch.zeros(RATE * 3), clip, torch.zeros(RATE * 3)])
    recording += 1e-4 * torch.randn(recording.numel())
    starts, embeddings = _run(embedder, recording, recording.numel())
    at = int(np.argmin(np.abs(starts.numpy() - 3.0)))
    with torch.inference_mode():
        own = model.embed(clip, sample_rate=RATE)[0]
    assert float(embeddings[at] @ own) > 0.9
    assert float(embeddings[0] @ own) < float(embeddings[at] @ own) - 0.2  # silence is not the bird


def test_a_recording_shorter_than_a_window_is_one_window(model):
    embedder = SlidingEmbedder(model, 2.0, 0.16)
    out = list(embedder.embed([torch.randn(RATE // 2) * 0.1]))
    assert len(out) == 1 and out[0][0].tolist() == [0.0] and out[0][1].shape == (1, model.embedding_dim)
    assert list(embedder.embed([])) == []


def test_bad_settings_are_named(model):
    with pytest.raises(ParameterError, match="must be > 0"):
        SlidingEmbedder(model, 0.0, 0.16)
    with pytest.raises(ParameterError, match="at most 604800 \\(a week\\)"):  # frame counts past int64 otherwise
        SlidingEmbedder(model, 1.0, 1e9)
    band = load_model()
    band.frontend.normalize = "band"
    with pytest.raises(ParameterError, match="'utterance'"):
        SlidingEmbedder(band, 1.0, 0.16)


def test_chunks_embedded_side_by_side_leave_torch_as_they_found_it(model):
    threads = torch.get_num_threads()
    embedder = SlidingEmbedder(model, 1.0, 0.16, chunk_seconds=2)
    wave = torch.randn(RATE * 12) * 0.05
    windows = embedder.embed(wave[i : i + RATE] for i in range(0, wave.numel(), RATE))
    next(windows)
    if threads > 1:  # chunks side by side: this thread reads on one torch thread while the workers compute
        assert torch.get_num_threads() == 1
    windows.close()  # a caller that stops early: the workers are waited for, nothing hangs
    assert torch.get_num_threads() == threads
    assert embedder.concurrent_chunks == min(4, threads)

    def broken():
        yield wave[: RATE * 6]
        raise OSError("the disk went away")

    with pytest.raises(OSError, match="went away"):
        list(embedder.embed(broken()))
    assert torch.get_num_threads() == threads


def test_several_recordings_one_after_the_other(model):
    embedder = SlidingEmbedder(model, 1.0, 0.16, chunk_seconds=2)
    a, b = torch.randn(RATE * 5) * 0.05, torch.randn(RATE * 3) * 0.05

    def failing():
        yield torch.randn(RATE) * 0.05
        raise OSError("the disk went away")

    out = list(embedder.embed_each([[a], [], failing(), [b]], catch=(OSError,)))
    by_index = {}
    for index, starts, embeddings, last, *_ in out:
        by_index.setdefault(index, []).append((starts, embeddings, last))
    assert [index for index, *_ in out] == sorted(index for index, *_ in out)  # in order
    assert all(pieces[-1][2] for pieces in by_index.values())  # each recording ends with its last piece
    for index, wave in ((0, a), (3, b)):
        alone = _run(embedder, wave, wave.numel())
        torch.testing.assert_close(torch.cat([s for s, _, _ in by_index[index]]), alone[0])
        torch.testing.assert_close(torch.cat([e for _, e, _ in by_index[index]]), alone[1], atol=2e-5, rtol=1e-4)
    assert len(by_index[1]) == 1 and by_index[1][0][0].numel() == 0  # no samples: one empty piece
    assert isinstance(by_index[2][-1][1], OSError)


def _located(embedder, wave, block):
    chunks = list(embedder.embed_each([[wave[i : i + block] for i in range(0, wave.numel(), block)]]))
    return torch.cat([c.locate_starts for c in chunks]), torch.cat([c.locate_embeddings for c in chunks])


def test_the_locating_grid_is_pooled_from_the_same_frames_at_the_same_starts_however_the_chunks_fall(model):
    wave = torch.from_numpy(np.random.default_rng(2).standard_normal(RATE * 20).astype(np.float32)) * 0.05
    wave[RATE * 5 : RATE * 6] *= 20
    whole = SlidingEmbedder(model, 1.0, 0.16, chunk_seconds=100, precision="float32", locate_seconds=0.32)
    starts, embeddings = _located(whole, wave, wave.numel())
    main_starts, _ = _run(whole, wave, wave.numel())
    assert whole.locate_window == 4 and torch.equal(starts, main_starts)
    with torch.inference_mode():  # the short windows of the long windows' trunk frames, not a new pass
        expected = model.encoder.embed_windows(whole._frames(wave), 4, whole.hop)[: len(starts)]
    torch.testing.assert_close(embeddings, expected, atol=2e-5, rtol=1e-4)
    streamed = SlidingEmbedder(model, 1.0, 0.16, chunk_seconds=3, precision="float32", locate_seconds=0.32)
    starts2, embeddings2 = _located(streamed, wave, 12345)
    torch.testing.assert_close(starts2, starts)
    torch.testing.assert_close(embeddings2, embeddings, atol=2e-5, rtol=1e-4)
    # A recording shorter than a window still gets locating windows; no locating grid unless asked for.
    short = list(whole.embed_each([[wave[: RATE // 2]]]))[0]
    assert len(short.starts) == 1 and len(short.locate_starts) == (7 - 4) // 2 + 1  # 0.5 s: 7 trunk frames
    assert list(SlidingEmbedder(model, 1.0, 0.16).embed_each([[wave]]))[0].locate_starts is None
    with pytest.raises(ParameterError, match="locate_seconds"):
        SlidingEmbedder(model, 1.0, 0.16, locate_seconds=0.0)
    with pytest.warns(DeprecationWarning, match=r"fine_window_seconds=\.\.\.\) is now locate_seconds"):
        assert SlidingEmbedder(model, 1.0, 0.16, fine_window_seconds=0.32).locate_window == 4  # the old spelling


def test_a_file_too_long_to_load_whole_is_embedded_in_a_stream(model, tmp_path, monkeypatch):
    import soundfile as sf

    import audiosiam.models.embedding as embedding
    from audiosiam.io import load_audio

    clips = [load_audio(p, sample_rate=48000) for p in sorted((EXAMPLES / "support").glob("*/*.flac"))]
    recording = torch.cat(clips[::2]).numpy()  # 12 clips one after the other, ~30 s
    long = tmp_path / "long.wav"
    sf.write(long, np.stack([recording, 0.5 * recording], axis=1), 48000, subtype="PCM_16")  # 48 kHz stereo
    broken = tmp_path / "broken.wav"
    broken.write_bytes(long.read_bytes()[: long.stat().st_size // 2])
    short = EXAMPLES / "query" / "snare_sn_02.flac"
    whole = model.embed([short, long])
    monkeypatch.setattr(embedding, "STREAM_BYTES", 1 << 20)  # now 5 MB of samples is too long to load whole
    import audiosiam.io.inputs as inputs

    real_load_many = inputs.load_many

    def loads(paths, *args, **kwargs):
        assert [str(p) for p in paths] == [str(short)], f"decoded whole: {paths}"
        return real_load_many(paths, *args, **kwargs)

    monkeypatch.setattr(inputs, "load_many", loads)  # the one reader of clips
    streamed, kept, failures = model.embed_all([short, broken, long], on_error="skip")
    assert kept == [0, 2] and [f.index for f in failures] == [1] and "truncated" in str(failures[0].error)
    torch.testing.assert_close(streamed[0], whole[0])  # the short clip: as before
    assert float(streamed[1] @ whole[1]) > 0.99  # the long one: the whole-file embedding, to the windows' edges
    torch.testing.assert_close(streamed.norm(dim=1), torch.ones(2))
    with pytest.raises(embedding.AudioLoadError, match="broken.wav: truncated"):
        model.embed([long, broken])
