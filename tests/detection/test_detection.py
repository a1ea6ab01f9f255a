"""Scoring detected events (the DCASE matching rule) and synthetic soundscapes with a known answer."""

from __future__ import annotations

import math

import pytest
import torch

from audiosiam.detection import Event, score_events
from audiosiam.detection.events import match_events
from audiosiam.detection.soundscapes import Placement, make_soundscape, random_placements
from audiosiam.errors import ParameterError

RATE = 16000


def ev(start, end, label="bird", file="a.wav"):
    return Event(file, label, start, end)


def test_a_detection_counts_from_an_iou_of_0_3():
    truth = [ev(0.0, 1.0)]
    assert score_events([ev(0.0, 0.3)], truth)["tp"] == 1  # IoU exactly 0.3
    assert score_events([ev(0.0, 0.29)], truth)["tp"] == 0
    assert score_events([ev(0.0, 1.0, label="dog")], truth) | {"per_label": None} == {
        "precision": 0.0,
        "recall": 0.0,
        "f_measure": 0.0,
        "tp": 0,
        "fp": 1,
        "fn": 1,
        "per_label": None,
    }
    assert score_events([ev(0.0, 1.0, file="b.wav")], truth)["tp"] == 0  # another recording


def test_matching_is_one_to_one_and_maximal():
    truth = [ev(0.0, 1.0)]
    result = score_events([ev(0.0, 1.0), ev(0.1, 0.9)], truth)
    assert (result["tp"], result["fp"], result["fn"]) == (1, 1, 0)
    assert result["precision"] == 0.5 and result["recall"] == 1.0 and result["f_measure"] == pytest.approx(2 / 3)
    # X overlaps both true events equally, Y only A: greedily X could take A and leave Y unmatched
    a, b = ev(0.0, 1.0), ev(0.5, 1.5)
    x, y = ev(0.3, 1.2), ev(0.0, 0.6)
    assert [(d, t) for d, t, _ in match_events([x, y], [a, b])] == [(0, 1), (1, 0)]


def test_scores_per_label_and_bad_events():
    truth = [ev(0, 1), ev(2, 3), ev(5, 6, "dog")]
    detected = [ev(0.1, 1.0), ev(5.0, 5.9, "dog"), ev(8, 9, "dog")]
    result = score_events(detected, truth)
    assert result["per_label"]["bird"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f_measure": pytest.approx(2 / 3),
        "tp": 1,
        "fp": 0,
        "fn": 1,
    }
    assert (result["per_label"]["dog"]["tp"], result["per_label"]["dog"]["fp"]) == (1, 1)
    for start, end in ((1.0, 1.0), (2.0, 1.0), (-1.0, 1.0), (0.0, math.nan)):
        with pytest.raises(ParameterError, match="expected 0 <= start < end"):
            ev(start, end)
    with pytest.raises(ParameterError, match="min_iou"):
        score_events(detected, truth, min_iou=0)


def tone_burst(seconds=0.5, pad=0.2, freq=880.0):
    t = torch.arange(int(RATE * seconds)) / RATE
    burst = 0.5 * torch.sin(2 * math.pi * freq * t)
    silence = torch.zeros(int(RATE * pad))
    return torch.cat([silence, burst, silence])  # padded, as many sound-effect files are


def test_a_soundscape_puts_each_event_where_asked_at_the_asked_snr():
    g = torch.Generator().manual_seed(0)
    background = 0.01 * torch.randn(RATE * 10, generator=g)
    clip = tone_burst()
    mix, truth = make_soundscape(background, [Placement(clip, "beep", 2.0, 6.0), Placement(clip, "beep", 6.5, 0.0)])
    assert mix.shape == background.shape and mix.dtype == torch.float32
    assert [(e.label, round(e.start, 2), round(e.end, 2)) for e in truth] == [("beep", 2.2, 2.7), ("beep", 6.7, 7.2)]
    for event, snr in zip(truth, (6.0, 0.0)):
        span = slice(int(event.start * RATE), int(event.end * RATE))
        added = mix[span].double() - background[span].double()
        level = 20 * math.log10(
            float(added.pow(2).mean().sqrt()) / float(background[span].double().pow(2).mean().sqrt())
        )
        assert level == pytest.approx(snr, abs=0.3)
    assert score_events(truth, truth)["f_measure"] == 1.0
    with pytest.raises(ParameterError, match="outside the 10.000 s background"):
        make_soundscape(background, [Placement(clip, "beep", 9.5, 0.0)])
    with pytest.raises(ParameterError, match="non-silent"):
        make_soundscape(background, [Placement(torch.zeros(100), "beep", 1.0, 0.0)])


def test_random_placements_fit_without_overlap_and_repeat_by_seed():
    clips = [(tone_burst(0.3 + 0.1 * i), f"c{i % 3}") for i in range(12)]

    def where(placements):
        return [(p.label, p.start, p.snr_db) for p in placements]

    a = random_placements(clips, 60.0, seed=3)
    assert where(a) == where(random_placements(clips, 60.0, seed=3)) != where(random_placements(clips, 60.0, seed=4))
    ends = [p.start + p.clip.numel() / RATE for p in a]
    assert all(ends[i] + 0.25 <= a[i + 1].start + 1 / RATE for i in range(len(a) - 1)) and ends[-1] <= 60.0
    assert all(0.0 <= p.snr_db <= 12.0 for p in a) and sorted(p.label for p in a) == sorted(c[1] for c in clips)
    with pytest.raises(ParameterError, match="do not fit"):
        random_placements(clips, 5.0)
