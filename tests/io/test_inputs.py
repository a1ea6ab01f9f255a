"""The one way in from audio (audiosiam/io/inputs.py): a mix of paths and waveforms read in order, bad clips
raised or returned in their place, positions skipped, and what counts as one clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiosiam.errors import AudioLoadError, ParameterError
from audiosiam.io.inputs import as_clips, describe_input, is_one_clip, read_clips

from audio_fixtures import sine, write


def test_a_mix_of_files_and_waveforms_is_read_in_order(tmp_path):
    path = write(tmp_path / "a.wav", sine(440, 0.5, rate=8000), 8000)
    wave = sine(880, 0.5, rate=16000)
    out = read_clips([wave, path, torch.from_numpy(wave)], 16000, sample_rate=16000)
    assert [o.shape[0] for o in out] == [8000, 8000, 8000] and all(o.dtype == torch.float32 for o in out)
    torch.testing.assert_close(out[0], out[2])
    assert read_clips([wave, path], 16000, sample_rate=16000, skip={1})[1] is None


def test_bad_clips_raise_or_take_their_place(tmp_path):
    missing, silence = tmp_path / "missing.wav", np.zeros(16000, np.float32)
    good = sine(440, 0.5)
    with pytest.raises(AudioLoadError, match="missing.wav"):
        read_clips([good, missing], 16000, sample_rate=16000)
    with pytest.raises(ParameterError, match=r"examples\[1\]"):
        read_clips([good, silence], 16000, sample_rate=16000, what="examples")
    out = read_clips([missing, good, silence], 16000, sample_rate=16000, on_error="return")
    assert isinstance(out[0], AudioLoadError) and isinstance(out[2], ParameterError) and out[1].numel() == 8000
    with pytest.raises(ParameterError, match="sample_rate"):
        read_clips([good], 16000)  # a waveform needs its rate


def test_what_counts_as_one_clip():
    wave = sine(440, 0.1)
    assert is_one_clip("a.wav") and is_one_clip(wave) and not is_one_clip([wave])
    assert not is_one_clip(np.array(["a.wav", "b.wav"]))  # a 1-D array of text is paths
    assert as_clips(np.array(["a.wav", "b.wav"])) == ["a.wav", "b.wav"] and len(as_clips(wave)) == 1
    assert describe_input(wave) == "<waveform (1600,)>" and describe_input("x/a.wav") == "x/a.wav"
    for bad in (None, 5, b"bytes"):
        with pytest.raises(ParameterError, match="inputs: expected"):
            as_clips(bad)
