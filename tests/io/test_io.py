"""Loading audio: formats, mono/resample policy, and a specific error for every kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from audiosiam.errors import AudioLoadError, EmptyAudioError, InvalidAudioError, NoAudioFilesError, ParameterError
from audiosiam.io import audio_duration, find_audio_files, load_audio, load_many, read_blocks
from audiosiam.io.framing import fix_length, sliding_windows

from audio_fixtures import clicks, noise, sine, write


@pytest.mark.parametrize(
    "ext,kwargs",
    [(".wav", {}), (".flac", {}), (".ogg", {"format": "OGG", "subtype": "VORBIS"}), (".mp3", {"format": "MP3"})],
)
def test_formats_decode_to_float32_mono(tmp_path, ext, kwargs):
    path = write(tmp_path / f"a{ext}", sine(440, 0.5), **kwargs)
    wave = load_audio(path)
    assert wave.dtype == torch.float32 and wave.ndim == 1
    assert abs(wave.shape[0] - 8000) < 2000  # lossy codecs pad a little
    assert 0.3 < wave.abs().max() < 0.7


@pytest.mark.parametrize("ext,kwargs", [(".flac", {}), (".mp3", {"format": "MP3"})])
def test_reading_into_the_header_size_equals_soundfile_read(tmp_path, ext, kwargs):
    """load_audio reads straight into an array of the header's length (no seeks); same samples as
    soundfile.read, including for MP3 whose length the header may only estimate."""
    path = write(tmp_path / f"a{ext}", np.stack([sine(440, 0.7), noise(0.7)], 1), **kwargs)
    want, _ = sf.read(path, dtype="float32", always_2d=True)
    got = load_audio(path, None, mono=False)
    assert got.T.shape == want.shape
    # FLAC is lossless: bit-identical. mpg123 decodes in chunks, and the chunking moves the last bit.
    np.testing.assert_allclose(got.T.numpy(), want, rtol=0, atol=0 if ext == ".flac" else 1e-6)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_load_many_keeps_order_and_names_the_bad_file(tmp_path, workers):
    paths = [write(tmp_path / f"{i}.wav", sine(200 + 100 * i, 0.1 + 0.05 * i)) for i in range(7)]
    waves = load_many(paths, workers=workers)
    for path, wave in zip(paths, waves):
        torch.testing.assert_close(wave, load_audio(path))
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    with pytest.raises(AudioLoadError, match="bad.wav"):
        load_many(paths[:3] + [tmp_path / "bad.wav"] + paths[3:], workers=workers)


@pytest.mark.parametrize("workers", [1, 2])
def test_load_many_transform_matches_one_clip_at_a_time(tmp_path, workers):
    from audiosiam.transforms import LogMelSpectrogram

    # Lengths interleaved so that each thread's share holds clips of two lengths.
    paths = [write(tmp_path / f"{i}.flac", sine(200 + 50 * i, 0.3 if i % 2 else 0.5)) for i in range(6)]
    transform = LogMelSpectrogram()
    got = load_many(paths, workers=workers, transform=transform)
    assert [g.shape[-1] for g in got] == [transform.num_frames(4800 if i % 2 else 8000) for i in range(6)]
    for path, mel in zip(paths, got):
        torch.testing.assert_close(mel, transform(load_audio(path)[None])[0], rtol=0, atol=1e-5)


def test_stereo_is_averaged_and_resampled(tmp_path):
    left, right = sine(440, 0.5, rate=8000), np.zeros(4000, dtype=np.float32)
    path = write(tmp_path / "s.wav", np.stack([left, right], 1), rate=8000)
    wave = load_audio(path, 16000)
    assert wave.shape == (8000,)
    assert wave.abs().max() == pytest.approx(0.25, abs=0.02)  # mean of a 0.5 tone and silence
    both = load_audio(path, None, mono=False)
    assert both.shape == (2, 4000)


def test_normalisation_and_trimming(tmp_path):
    quiet = np.concatenate([np.zeros(8000, np.float32), sine(440, 0.5, amp=0.05), np.zeros(8000, np.float32)])
    path = write(tmp_path / "q.wav", quiet)
    assert load_audio(path, normalize="peak").abs().max() == pytest.approx(1.0, abs=1e-3)
    rms = load_audio(path, normalize="loudness").pow(2).mean().sqrt()
    assert float(20 * torch.log10(rms)) == pytest.approx(-20.0, abs=0.1)
    trimmed = load_audio(path, trim_silence=True)
    assert 7600 <= trimmed.shape[0] <= 8800


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(AudioLoadError, match="nope.wav: no such file"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioLoadError, match="is a folder"):
        load_audio(tmp_path)


def test_non_audio_and_corrupt_files(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("hello, not audio")
    with pytest.raises(AudioLoadError, match="not a readable audio file") as info:
        load_audio(text)
    assert info.value.path == str(text) and "convert" in str(info.value)
    flac = write(tmp_path / "a.flac", noise(1.0))
    data = flac.read_bytes()
    flac.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioLoadError, match="a.flac"):
        load_audio(flac)


def test_truncated_wav_is_caught(tmp_path):
    wav = write(tmp_path / "t.wav", noise(1.0))
    data = wav.read_bytes()
    wav.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioLoadError, match="truncated"):
        load_audio(wav)


def test_empty_silent_and_non_finite(tmp_path):
    with pytest.raises(EmptyAudioError, match="no samples"):
        load_audio(write(tmp_path / "e.wav", np.zeros(0, np.float32)))
    with pytest.raises(EmptyAudioError, match="silence"):
        load_audio(write(tmp_path / "z.wav", np.zeros(1600, np.float32)))
    bad = noise(0.1)
    bad[10] = np.nan
    with pytest.raises(InvalidAudioError, match="NaN"):
        load_audio(write(tmp_path / "n.wav", bad, subtype="FLOAT"))


def test_absurd_sample_rate(tmp_path):
    path = write(tmp_path / "r.wav", clicks(0.5, rate=16000), rate=16000)
    raw = bytearray(path.read_bytes())
    raw[24:28] = (10).to_bytes(4, "little")  # header claims 10 Hz
    path.write_bytes(bytes(raw))
    with pytest.raises(InvalidAudioError, match="sample rate 10 Hz"):
        load_audio(path)
    with pytest.raises(ParameterError, match="sample_rate=5"):
        load_audio(path, 5)


def test_find_audio_files(tmp_path):
    write(tmp_path / "b" / "x.WAV", sine())
    write(tmp_path / "a.flac", sine())
    (tmp_path / "readme.txt").write_text("no")
    write(tmp_path / ".hidden" / "h.wav", sine())
    assert [p.name for p in find_audio_files(tmp_path)] == ["a.flac", "x.WAV"]
    assert [p.name for p in find_audio_files(tmp_path, recursive=False)] == ["a.flac"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoAudioFilesError, match="no audio files"):
        find_audio_files(tmp_path / "empty")


def test_fix_length_policies():
    x = torch.arange(10.0)
    assert fix_length(x, 4, mode="start").tolist() == [0, 1, 2, 3]
    assert fix_length(x, 4, mode="center").tolist() == [3, 4, 5, 6]
    g = torch.Generator().manual_seed(1)
    crop = fix_length(x, 4, mode="random", generator=g)
    assert crop.shape == (4,) and torch.equal(crop, torch.arange(crop[0].item(), crop[0].item() + 4))
    padded = fix_length(x[:3], 7, mode="center")
    assert padded.tolist() == [0, 0, 0, 1, 2, 0, 0]
    with pytest.raises(ParameterError, match="num_samples=0"):
        fix_length(x, 0)


def test_sliding_windows_cover_the_tail():
    x = torch.arange(25.0)
    w = sliding_windows(x, 10, 5)
    assert w.shape == (4, 10)
    assert w[-1].tolist() == list(range(15, 25))
    assert sliding_windows(x[:4], 10, 5).shape == (1, 10)


@pytest.mark.needs_shared_data
def test_real_clips_from_every_shared_source(shared_data):
    for rel in [
        "fsdd/recordings/0_george_0.wav",
        "speech_commands_dev/noise/1024.flac",
        "hedgewars_voices/British/Amazing.ogg",
    ]:
        wave = load_audio(shared_data / rel)
        assert wave.ndim == 1 and wave.shape[0] > 1000 and torch.isfinite(wave).all()


@pytest.mark.parametrize("fmt,subtype", [("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_truncated_compressed_files_are_refused_by_name(tmp_path, fmt, subtype):
    import numpy as np
    import soundfile as sf

    from audiosiam.errors import AudioLoadError
    from audiosiam.io import load_audio

    t = np.arange(32000) / 16000
    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000, format=fmt, subtype=subtype)
    whole = load_audio(path)
    assert whole.numel() > 0.95 * 32000
    data = path.read_bytes()
    cut = tmp_path / f"cut.{fmt.lower()}"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(AudioLoadError, match=r"cut\.\w+: (truncated|not a readable|contains no samples)"):
        load_audio(cut)


def test_the_mp3_decoders_own_notes_do_not_reach_the_terminal(tmp_path, capfd):
    import numpy as np
    import soundfile as sf

    from audiosiam.errors import AudioLoadError
    from audiosiam.io import load_audio

    t = np.arange(32000) / 16000
    path = tmp_path / "clip.mp3"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000, format="MP3")
    raw = bytearray(path.read_bytes())
    for i in range(200, len(raw), 97):  # damaged frames: libmpg123 complains on descriptor 2
        raw[i] ^= 0x55
    path.write_bytes(bytes(raw))
    try:
        load_audio(path)
    except AudioLoadError:
        pass
    err = capfd.readouterr().err
    assert "libmpg123" not in err and "mpg123" not in err.lower(), err
    print("still here", file=__import__("sys").stderr)  # descriptor 2 is restored afterwards
    assert "still here" in capfd.readouterr().err


def test_a_header_announcing_absurd_length_is_decoded_block_by_block(tmp_path):
    import struct

    import numpy as np
    import soundfile as sf

    from audiosiam.errors import AudioLoadError
    from audiosiam.io import load_audio

    path = tmp_path / "clip.flac"
    sf.write(path, (0.3 * np.sin(np.arange(16000) / 5)).astype(np.float32), 16000)
    raw = bytearray(path.read_bytes())
    raw[24:28] = struct.pack("<I", 0)  # STREAMINFO damaged: the header now claims 2^63 - 1 frames
    path.write_bytes(bytes(raw))
    assert sf.info(path).frames > 1 << 40  # allocating that up front was a raw ValueError
    with pytest.raises(AudioLoadError, match=r"clip\.flac: (truncated|not a readable audio file)"):
        load_audio(path)


def test_every_readable_container_is_found_in_folders(tmp_path):
    import numpy as np
    import soundfile as sf

    from audiosiam.io import find_audio_files, load_audio

    wave = (0.3 * np.sin(np.arange(48000) / 5)).astype(np.float32)
    for name, fmt, subtype in (("a.opus", "OGG", "OPUS"), ("b.caf", "CAF", "PCM_16"), ("c.aifc", "AIFF", "PCM_16")):
        sf.write(tmp_path / name, wave, 48000, format=fmt, subtype=subtype)
    found = [p.name for p in find_audio_files(tmp_path)]
    assert found == ["a.opus", "b.caf", "c.aifc"]
    for name in found:  # what is listed is also read
        assert load_audio(tmp_path / name, sample_rate=16000).numel() > 10000


def test_a_corrupt_file_is_not_said_to_be_missing(tmp_path):
    from audiosiam.errors import AudioLoadError
    from audiosiam.io import load_audio

    path = tmp_path / "noise.mp3"
    path.write_bytes(bytes(range(256)) * 20)
    with pytest.raises(AudioLoadError, match=r"noise\.mp3: not a readable audio file \(its content is damaged") as info:
        load_audio(path)
    assert "does not exist" not in str(info.value)


@pytest.mark.parametrize("rate", [0, -16000, 16000.5, True])
def test_impossible_sample_rates_are_parameter_errors(tmp_path, rate):
    import torch

    from audiosiam.errors import ParameterError
    from audiosiam.io import load_audio
    from audiosiam.io.checks import check_waveform

    write(tmp_path / "a.wav", sine(440, 0.2))
    with pytest.raises(ParameterError, match="sample_rate"):
        load_audio(tmp_path / "a.wav", sample_rate=rate)
    with pytest.raises(ParameterError, match="sample_rate"):
        check_waveform(torch.ones(100) * 0.1, rate, 16000)


@pytest.mark.parametrize(
    "rate,ext,kwargs",
    [
        (44100, ".wav", {}),
        (48000, ".wav", {"subtype": "FLOAT"}),
        (22050, ".flac", {}),
        (16000, ".flac", {}),
        (8000, ".ogg", {"format": "OGG", "subtype": "VORBIS"}),
    ],
)
def test_blocks_put_together_are_the_whole_file(tmp_path, rate, ext, kwargs):
    stereo = np.stack([noise(7.3, rate, seed=1), noise(7.3, rate, seed=2)], axis=1) * 0.3
    path = write(tmp_path / f"long{ext}", stereo, rate, **kwargs)
    blocks = list(read_blocks(path, 16000, block_seconds=1.3))
    assert len(blocks) == 6 and all(b.dtype == torch.float32 and b.ndim == 1 for b in blocks)
    whole = load_audio(path)
    torch.testing.assert_close(torch.cat(blocks), whole, atol=1e-6, rtol=0)  # no trace of the seams
    assert audio_duration(path) == pytest.approx(7.3, abs=0.02)


def test_flac_decoded_by_several_threads_is_the_same_stream(tmp_path):
    import threading

    stereo = np.stack([noise(9.7, 48000, seed=3), noise(9.7, 48000, seed=4)], axis=1) * 0.3
    path = write(tmp_path / "long.flac", stereo, 48000)
    one = list(read_blocks(path, 16000, block_seconds=1.1, decoders=1))
    for decoders in (2, 3):
        many = list(read_blocks(path, 16000, block_seconds=1.1, decoders=decoders))
        assert len(many) == len(one) == 9 and all(torch.equal(a, b) for a, b in zip(many, one, strict=True))
    # A truncated FLAC is refused by name either way (a block the stream does not reach ends it).
    cut = tmp_path / "cut.flac"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    for decoders in (1, 2):
        with pytest.raises(AudioLoadError, match=r"cut\.flac: (damaged or )?truncated"):
            list(read_blocks(cut, 16000, block_seconds=1.1, decoders=decoders))

    # A caller that stops early leaves no decoding thread behind.
    def decoding() -> int:
        return sum(t.name.startswith("audiosiam-flac-blocks") for t in threading.enumerate())

    blocks = read_blocks(path, 16000, block_seconds=1.1, decoders=2)
    next(blocks)
    assert decoding() == 2
    blocks.close()
    assert decoding() == 0


def test_streamed_files_are_checked_like_loaded_ones(tmp_path):
    with pytest.raises(AudioLoadError, match="no such file"):
        list(read_blocks(tmp_path / "missing.wav"))
    with pytest.raises(AudioLoadError, match="no such file"):
        audio_duration(tmp_path / "missing.wav")
    bad = np.full(16000 * 3, 0.1, dtype=np.float32)
    bad[16000 * 2 + 5] = np.nan
    with pytest.raises(InvalidAudioError, match=r"NaN.*at 2\.0 s"):  # the time it was found at
        list(read_blocks(write(tmp_path / "nan.wav", bad, subtype="FLOAT"), block_seconds=1.0))
    with pytest.raises(EmptyAudioError, match="silence"):
        list(read_blocks(write(tmp_path / "silent.wav", np.zeros(16000, dtype=np.float32))))
    with pytest.raises(ParameterError, match="block_seconds"):
        list(read_blocks(write(tmp_path / "ok.wav", sine(440, 0.5)), block_seconds=0))
    path = write(tmp_path / "cut.wav", sine(440, 2.0))
    path.write_bytes(path.read_bytes()[:20000])
    with pytest.raises(AudioLoadError, match="truncated"):
        list(read_blocks(path))


@pytest.mark.parametrize(
    "orig, new",
    [
        (48000, 16000),
        (32000, 16000),
        (8000, 16000),
        (24000, 16000),
        (96000, 16000),
        (16000, 48000),
        (44100, 16000),
        (22050, 16000),
        (11025, 16000),
        (88200, 16000),
        (16000, 44100),
    ],
)
def test_resample_is_torchaudios_whichever_way_it_is_applied(orig, new):
    """Ratios with few output phases apply torchaudio's filter several steps at once, ratios with many
    each band of phases over its live taps (speed): the result must be torchaudio's, for any length,
    batch shape and dtype."""
    import torchaudio.functional as AF

    from audiosiam.io.resampling import _banded_filter, _grouped_filter, resample

    few, many = _grouped_filter(orig, new, torch.float32), _banded_filter(orig, new, torch.float32)
    assert (few is not None) or (many is not None), "every ratio here takes one of the fast paths"

    g = torch.Generator().manual_seed(orig)
    for shape in ((1,), (5,), (997,), (3, orig + 11)):
        x = torch.randn(*shape, generator=g)
        ours, theirs = resample(x, orig, new), AF.resample(x, orig, new)
        assert ours.shape == theirs.shape
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    x = torch.randn(2, 4001, dtype=torch.float64, generator=g)
    torch.testing.assert_close(resample(x, orig, new), AF.resample(x, orig, new))
