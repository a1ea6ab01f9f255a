"""EventDetector and `audiosiam find`: real example clips mixed into a recording whose answer is known."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiosiam import EventDetector, load_audio
from audiosiam.cli import main
from audiosiam.detection import Event, ScoreCurve, score_events
from audiosiam.detection.curves import calibrated_threshold, curve_events, typical_match
from audiosiam.detection.formats import event_rows, track_names, write_audacity, write_raven
from audiosiam.detection.soundscapes import make_soundscape, random_placements
from audiosiam.errors import AudioLoadError, ParameterError

RATE = 16000
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _noise(seconds: float, seed: int) -> torch.Tensor:
    """Brown-ish noise with its lowest frequencies removed: a steady, not white, background."""
    walk = np.cumsum(np.random.default_rng(seed).standard_normal(int(seconds * RATE)))
    walk -= np.convolve(walk, np.ones(400) / 400, mode="same")
    return torch.from_numpy((walk * 0.01 / walk.std()).astype(np.float32))


@pytest.fixture(scope="module")
def scene():
    """40 s of noise with 'yes' and a snare three times each among five other sounds, and the truth."""
    queries = {p.stem: load_audio(p) for p in sorted((EXAMPLES / "query").glob("*.flac")) if "water" not in p.stem}
    yes, snare = queries.pop("said_yes_837a0f64"), queries.pop("snare_sn_02")
    clips = [(yes, "yes")] * 3 + [(snare, "snare")] * 3 + [(w, "other") for w in queries.values()]
    wave, truth = make_soundscape(_noise(60, 0), random_placements(clips, 60, snr_db=(3, 12), seed=1))
    return wave, [e for e in truth if e.label != "other"]


@pytest.fixture(scope="module")
def yes_detector():
    return EventDetector().fit(sorted((EXAMPLES / "support" / "word_yes").glob("*.flac")), labels="yes")


def _support(label):
    return sorted((EXAMPLES / "support" / label).glob("*.flac"))


def _as(events, file="soundscape"):
    return [Event(file, e.label, e.start, e.end, e.score) for e in events]


def test_finds_each_occurrence_and_nothing_else(scene, yes_detector):
    wave, truth = scene
    found = yes_detector.detect(wave, sample_rate=RATE)
    result = score_events(_as(found), [e for e in truth if e.label == "yes"])
    assert (result["tp"], result["fp"], result["fn"]) == (3, 0, 0)
    assert all(e.label == "yes" and 0 <= e.start < e.end <= 60 and -1 <= e.score <= 1 for e in found)


def test_several_labels_at_once_each_claim_their_own(scene):
    wave, truth = scene
    detector = EventDetector().fit(_support("word_yes") + _support("snare"), labels=["yes"] * 3 + ["snare"] * 3)
    assert detector.labels_ == ["snare", "yes"]
    result = score_events(_as(detector.detect(wave, sample_rate=RATE)), truth)
    assert result["per_label"]["yes"]["tp"] == 3 and result["per_label"]["snare"]["tp"] == 3
    assert result["fp"] <= 1  # a hi-hat next to the snare may pass as one (0.70 against a threshold of 0.69)


def test_negatives_raise_the_threshold_and_a_fixed_threshold_overrides(scene, yes_detector):
    wave, _ = scene
    curve = yes_detector.score(wave, sample_rate=RATE)
    sharpened = EventDetector().fit(_support("word_yes"), labels="yes", negatives=_support("word_no"))
    assert sharpened.score(wave, sample_rate=RATE).thresholds[0] >= curve.thresholds[0]
    fixed = EventDetector(threshold=0.99).fit(_support("word_yes"), labels="yes")
    assert fixed.detect(wave, sample_rate=RATE) == []
    everything = EventDetector(threshold=-1.0).fit(_support("word_yes"), labels="yes")
    (whole,) = everything.detect(wave, sample_rate=RATE)  # every window on: one long event
    assert whole.start < 0.5 and whole.end > 59.5


def test_a_file_is_streamed_and_gives_what_its_waveform_gives(scene, yes_detector, tmp_path):
    wave, _ = scene
    path = tmp_path / "scene.flac"
    sf.write(path, wave.numpy(), RATE)
    from_file = yes_detector.detect(path)
    from_wave = yes_detector.detect(load_audio(path), sample_rate=RATE)
    assert [(e.label, round(e.start, 2), round(e.end, 2)) for e in from_file] == [
        (e.label, round(e.start, 2), round(e.end, 2)) for e in from_wave
    ]
    assert all(e.file == str(path) for e in from_file)


def test_many_recordings_side_by_side_give_what_each_gives_alone(scene, yes_detector, tmp_path):
    wave, _ = scene
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    short = _noise(0.5, 4)  # shorter than a window: one window
    recordings = [wave[: RATE * 7], bad, short, wave[RATE * 7 : RATE * 50], wave[RATE * 50 :]]
    seen = []
    results = list(yes_detector.score_each(recordings, sample_rate=RATE, progress=seen.append))
    assert [r is rec for (r, _), rec in zip(results, recordings, strict=True)] == [True] * 5
    assert isinstance(results[1][1], AudioLoadError) and "broken.wav" in str(results[1][1])
    for recording, curve in (results[0], results[2], results[3], results[4]):
        alone = yes_detector.score(recording, sample_rate=RATE)
        np.testing.assert_allclose(curve.starts, alone.starts)
        np.testing.assert_allclose(curve.scores, alone.scores, atol=2e-5)
        np.testing.assert_allclose(curve.thresholds, alone.thresholds, atol=2e-5)
        assert curve.duration == pytest.approx(alone.duration)
    assert results[2][1].scores.shape == (1, 1)
    good_seconds = (wave.numel() + short.numel()) / RATE
    assert sum(seen) == pytest.approx(good_seconds, abs=0.01)  # the progress bar reaches every good second
    with pytest.raises(AudioLoadError, match="broken.wav"):  # alone, or with catch=(), the error is raised
        list(yes_detector.score_each([bad], catch=()))
    # A FLAC damaged half way (its header fine, its stream cut) ends itself, not the search.
    whole = tmp_path / "whole.flac"
    sf.write(whole, wave.numpy(), RATE)
    damaged = tmp_path / "damaged.flac"
    damaged.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    results = list(yes_detector.score_each([damaged, whole]))
    assert isinstance(results[0][1], AudioLoadError) and "damaged.flac" in str(results[0][1])
    assert results[1][1].duration == pytest.approx(wave.numel() / RATE)


def test_one_example_and_odd_inputs():
    detector = EventDetector().fit([load_audio(_support("snare")[0])], sample_rate=RATE)
    assert detector.labels_ == ["target"]
    assert detector.detect(torch.zeros(RATE // 4) + 1e-3 * torch.randn(RATE // 4), sample_rate=RATE) == []
    with pytest.raises(ParameterError, match="at least one example"):
        EventDetector().fit([])
    with pytest.raises(ParameterError, match="one per example"):
        EventDetector().fit(_support("snare"), labels=["a", "b"])
    with pytest.raises(ParameterError, match="not fitted"):
        EventDetector().detect(torch.randn(RATE), sample_rate=RATE)
    with pytest.raises(AudioLoadError, match="no such file"):
        detector.detect("missing.wav")
    with pytest.raises(ParameterError, match="threshold"):
        EventDetector(threshold=2.0)


def test_threshold_rule_by_hand():
    scores = np.r_[np.full(97, 0.3), np.full(3, 0.9)]  # the sound fills 3% of the recording
    assert typical_match(torch.eye(3)[:1], fallback=0.6) == 0.6  # one example: the fallback
    assert calibrated_threshold(scores, 0.9) == pytest.approx(0.6)  # the midpoint of median and typical
    assert calibrated_threshold(np.linspace(0, 1, 101), 0.5) == pytest.approx(0.97)  # above 97% of windows
    assert 0.8 < calibrated_threshold(scores, 0.9, negative_best=0.8) == pytest.approx(0.8)  # above every negative
    assert calibrated_threshold(scores, 0.9, negative_best=0.1) == pytest.approx(0.6)  # below the rule: no effect


def _curve(scores, thresholds, labels=("a",), duration=10.0):
    scores = np.asarray(scores, dtype=float).reshape(len(scores), -1)
    return ScoreCurve(
        "f", list(labels), np.arange(len(scores)) * 0.5, scores, np.asarray(thresholds), 1.0, 0.5, duration
    )


def test_runs_become_events_of_the_examples_length_or_of_the_run():
    #            windows start every 0.5 s and last 1 s; expected events last 0.4 s
    short = curve_events(_curve([0, 1, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 0], [0.5]), [0.4])
    # run 1-2: windows 0.5-2.0 -> centre 1.25; run 6..8 bridges one window: 3.0-5.0 -> centre 4.0;
    # run 12-16 spans 2 s of starts, more than a window + 0.4 s: windows 6.0-9.0 less 0.3 s at each end
    assert [(round(e.start, 2), round(e.end, 2)) for e in short] == [(1.05, 1.45), (3.8, 4.2), (6.3, 8.7)]
    long = curve_events(_curve([1] * 8 + [0] * 2, [0.5]), [3.0])
    assert [(e.start, e.end) for e in long] == [(0.75, 3.75)]  # one 3 s sound: centred on the run
    two = curve_events(_curve([[0.9, 0.8], [0.6, 0.9], [0.1, 0.1]], [0.5, 0.5], labels=("a", "b")), [0.5, 0.5])
    assert [e.label for e in two] == ["a", "b"]  # a window goes to the label it clears by most


def _located_curve(scores, thresholds, labels, hop, window, duration):
    scores = np.asarray(scores, dtype=float).reshape(len(scores), -1)
    return ScoreCurve(
        "f", list(labels), np.arange(len(scores)) * hop, scores, np.asarray(thresholds), window, hop, duration
    )


def _overlapping(events):
    return [
        (a, b)
        for i, a in enumerate(events)
        for b in events[i + 1 :]
        if a.label == b.label and max(a.start, b.start) < min(a.end, b.end)
    ]


def test_one_occurrence_is_one_event_when_its_windows_dip_or_another_label_takes_some():
    # windows start every 0.25 s and last 1 s; the label's sounds last 2 s (a rooster's crow). Its windows
    # dip below the threshold for two hops: two runs, whose 2 s events would overlap (0-1.75, 1.5-3.25)
    on = [1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    (event,) = curve_events(_located_curve(on, [0.5], "a", 0.25, 1.0, 5.0), [2.0])
    # one run of starts 0-2.25: one event of the label's length centred on it
    assert (event.start, event.end) == (0.625, 2.625)
    # another label takes two windows in the middle: still one event of "a", and b's own event beside it
    both = np.array([[0.9 * v, 0.1] for v in on])
    both[4:6] = [0.6, 0.9]
    events = curve_events(_located_curve(both, [0.5, 0.5], "ab", 0.25, 1.0, 5.0), [2.0, 0.5])
    assert [e.label for e in events if e.label == "a"] == ["a"] and not _overlapping(events)
    # runs far apart stay apart
    apart = curve_events(_located_curve([1, 0, 0, 0, 0, 0, 0, 0, 1, 0], [0.5], "a", 0.25, 1.0, 5.0), [2.0])
    assert len(apart) == 2 and not _overlapping(apart)


def test_no_two_events_of_one_label_overlap_on_random_curves():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n, labels = int(rng.integers(1, 80)), "abc"[: int(rng.integers(1, 4))]
        hop, window = float(rng.choice([0.08, 0.16, 0.25])), float(rng.uniform(0.5, 2.0))
        curve = _located_curve(
            rng.random((n, len(labels))), rng.uniform(0.3, 0.9, len(labels)), labels, hop, window, n * hop + window
        )
        if rng.random() < 0.5:  # with short windows placing the events
            curve.locate_starts = np.arange(0, n * hop + window - 0.2, 0.08)
            curve.locate_seconds = 0.2
            curve.locate_scores = rng.random((len(curve.locate_starts), len(labels)))
        events = curve_events(curve, rng.uniform(0.2, 4.0, len(labels)).tolist())
        assert not _overlapping(events), events
        assert events == sorted(events, key=lambda e: (e.start, e.label))


def test_short_windows_place_an_event_where_its_stretch_matches_best():
    curve = _curve([0, 1, 1, 0, 0, 0], [0.5], duration=3.0)  # one run: windows 0.5-2.0, centre 1.25
    curve.locate_starts = np.arange(0, 2.0, 0.1)  # 0.2 s windows every 0.1 s
    curve.locate_seconds = 0.2
    fine = np.full(20, 0.2)
    fine[13:16] = [0.6, 1.0, 0.6]  # best at the window starting at 1.4 s, its neighbours alike: centre 1.5 s
    curve.locate_scores = fine[:, None]
    (event,) = curve_events(curve, [0.4])
    assert (round(event.start, 3), round(event.end, 3)) == (1.3, 1.7)  # its length kept, centred on 1.5
    fine[3] = 1.0  # a match outside the stretch the windows cover does not count
    fine[13:16] = [1.0, 0.6, 0.6]  # weights 0.64, 0.16, 0.16 on centres 1.4, 1.5, 1.6 (median 0.2)
    (event,) = curve_events(curve, [0.4])
    assert (event.start + event.end) / 2 == pytest.approx((0.64 * 1.4 + 0.16 * 1.5 + 0.16 * 1.6) / 0.96)
    fine[13:16] = 0.2
    fine[18] = 1.0  # best at the stretch's very end: the event stays inside the stretch
    (event,) = curve_events(curve, [0.4])
    assert (round(event.start, 3), round(event.end, 3)) == (1.6, 2.0)
    curve.locate_scores = np.full((20, 1), 0.2)  # nothing stands out: the run's centre
    (event,) = curve_events(curve, [0.4])
    assert (round(event.start, 3), round(event.end, 3)) == (1.05, 1.45)
    with pytest.warns(DeprecationWarning, match="ScoreCurve.fine_window_seconds is now locate_seconds"):
        assert curve.fine_window_seconds == 0.2  # the old names, for one release
    with pytest.warns(DeprecationWarning, match="fine_scores is now locate_scores"):
        assert curve.fine_scores is curve.locate_scores


def test_events_found_are_placed_on_the_sounds(scene, yes_detector):
    wave, truth = scene
    truth = [e for e in truth if e.label == "yes"]
    unplaced = EventDetector(locate_seconds=None).fit(_support("word_yes"), labels="yes")
    for detector in (yes_detector, unplaced):
        found = detector.detect(wave, sample_rate=RATE)
        assert score_events(_as(found), truth, min_iou=0.5)["tp"] == 3
    assert yes_detector.score(wave, sample_rate=RATE).locate_seconds == pytest.approx(0.32)
    assert unplaced.score(wave, sample_rate=RATE).locate_scores is None
    with pytest.raises(ParameterError, match="locate_seconds"):
        EventDetector(locate_seconds=0)


def test_formats(tmp_path):
    events = [Event("rec.wav", "dog", 1.23456, 2.5, 0.81234), Event("rec.wav", "dog", 4.0, 4.5, 0.7)]
    assert list(event_rows(events)[0]) == ["file", "label", "start", "end", "score"]
    assert event_rows(events)[0]["start"] == 1.235 and event_rows(events)[0]["score"] == 0.8123
    out = io.StringIO()
    write_audacity(events, out)
    assert out.getvalue().splitlines()[0].split("\t") == ["1.234560", "2.500000", "dog"]
    out = io.StringIO()
    write_raven(events, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue()), delimiter="\t"))
    assert rows[1]["Selection"] == "2" and rows[1]["Begin Time (s)"] == "4.000000" and rows[1]["Annotation"] == "dog"
    assert track_names(["a/x.wav", "b/x.wav", "c/y.flac"], ".txt") == ["a__x.txt", "b__x.txt", "y.txt"]


@pytest.fixture(scope="module")
def recordings(scene, tmp_path_factory):
    folder = tmp_path_factory.mktemp("recordings")
    sf.write(folder / "scene.wav", scene[0].numpy(), RATE)
    sf.write(folder / "quiet.wav", (_noise(5, 3) * 0.1).numpy(), RATE)
    return folder


def test_cli_find_csv_json_and_a_bad_file(recordings, tmp_path, capsys):
    yes = [arg for p in _support("word_yes") for arg in ("--example", str(p))]
    assert main(["find", *yes, "--label", "yes", str(recordings / "scene.wav"), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 3 and {r["label"] for r in rows} == {"yes"}
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    code = main(["find", "--support", str(EXAMPLES / "support"), str(recordings), str(bad), "--format", "json"])
    captured = capsys.readouterr()
    assert code == 1 and "broken.wav" in captured.err
    found = json.loads(captured.out)
    assert all(set(e) == {"file", "label", "start", "end", "score"} for e in found)
    assert {e["label"] for e in found if e["file"].endswith("scene.wav")} >= {"word_yes", "snare"}


def test_cli_find_places_events_as_the_library_does(recordings, capsys):
    yes = [arg for p in _support("word_yes") for arg in ("--example", str(p))]
    scene = str(recordings / "scene.wav")
    for cli, locate in ((["--locate", "0"], None), ([], 0.32)):
        assert main(["find", *yes, "--label", "yes", scene, "--format", "json", *cli]) == 0
        found = [(e["start"], e["end"]) for e in json.loads(capsys.readouterr().out)]
        library = EventDetector(locate_seconds=locate).fit(_support("word_yes"), labels="yes").detect(scene)
        assert found == [(round(e.start, 3), round(e.end, 3)) for e in library] and len(found) == 3
    with pytest.raises(SystemExit):
        main(["find", *yes, scene, "--locate", "-1"])
    assert "--locate: -1: must be >= 0 seconds" in capsys.readouterr().err


def test_cli_find_background_quantile_is_the_librarys(recordings, capsys):
    snare = [arg for p in _support("snare") for arg in ("--example", str(p))]
    scene = str(recordings / "scene.wav")
    counts = []
    for share in (0.97, 0.9):  # at 0.9 the threshold sits lower (here 0.69 against 0.85): more is found
        assert main(["find", *snare, scene, "--format", "json", "--background-quantile", str(share)]) == 0
        found = [(e["start"], e["end"]) for e in json.loads(capsys.readouterr().out)]
        library = EventDetector(background_quantile=share).fit(_support("snare")).detect(scene)
        assert found == [(round(e.start, 3), round(e.end, 3)) for e in library]
        counts.append(len(found))
    assert counts[1] > counts[0] >= 3
    with pytest.raises(SystemExit):
        main(["find", *snare, scene, "--background-quantile", "1.5"])
    assert "must be between 0 and 1" in capsys.readouterr().err


def test_cli_find_writes_tracks_and_pictures(recordings, tmp_path, capsys):
    snare = ["--example", str(_support("snare")[0]), "--example", str(_support("snare")[1])]
    tables, pictures = tmp_path / "tables", tmp_path / "pictures"
    args = ["find", *snare, str(recordings), "--format", "raven", "--out", str(tables), "--plot", str(pictures)]
    assert main(args) == 0
    assert sorted(p.name for p in tables.iterdir()) == ["quiet.Table.1.selections.txt", "scene.Table.1.selections.txt"]
    assert (tables / "scene.Table.1.selections.txt").read_text().count("\n") >= 2  # header and events
    assert sorted(p.name for p in pictures.iterdir()) == ["quiet.png", "scene.png"]
    assert main(["find", *snare, str(recordings), "--format", "audacity"]) == 1  # two recordings, no --out
    assert "--out DIR" in capsys.readouterr().err


def test_cli_classify_segments_labels_each_stretch(tmp_path, capsys):
    def two_seconds(path):
        wave = load_audio(path)[: 2 * RATE]
        return torch.nn.functional.pad(wave, (0, 2 * RATE - wave.numel()))

    parts = [
        EXAMPLES / "query" / f"{name}.flac" for name in ("said_yes_837a0f64", "snare_sn_02", "bird_wesnoth_birds2")
    ]
    recording = torch.cat([two_seconds(p) for p in parts]) + _noise(6, 5) * 0.05
    path = tmp_path / "three.wav"
    sf.write(path, recording.numpy(), RATE)
    args = ["classify", "--support", str(EXAMPLES / "support"), str(path), "--segments", "--format", "csv"]
    assert main(args) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["start"], r["end"]) for r in rows] == [("0.0", "2.0"), ("2.0", "4.0"), ("4.0", "6.0")]
    assert [r["closest"] for r in rows] == ["word_yes", "snare", "bird"]
    with pytest.raises(SystemExit) as info:  # a value wrong by itself: a usage error
        main([*args, "--segment-hop", "0"])
    assert info.value.code == 2 and "argument --segment-hop" in capsys.readouterr().err
    # Several recordings, a broken one among them: it is reported, the others are labelled as alone.
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    assert main([*args[:3], str(bad), str(path), str(path), *args[4:]]) == 1
    captured = capsys.readouterr()
    assert "broken.wav" in captured.err
    again = list(csv.DictReader(io.StringIO(captured.out)))
    assert [(r["file"], r["start"], r["closest"]) for r in again] == [
        (r["file"], r["start"], r["closest"]) for r in rows + rows
    ]


def test_near_silence_a_one_sample_example_and_a_one_sample_recording(tmp_path, capsys):
    water = EventDetector().fit(_support("water"), labels="water")  # noise-like examples match any noise
    rng = np.random.default_rng(0)
    dither = (rng.integers(-1, 2, RATE * 30) / 32768).astype(np.float32)  # 1 LSB of 16 bits
    faint = (1e-4 * rng.standard_normal(RATE * 30)).astype(np.float32)
    for name, wave in (("dither", dither), ("faint", faint)):
        assert water.detect(torch.from_numpy(wave), sample_rate=RATE) == [], name
        curve = water.score(torch.from_numpy(wave), sample_rate=RATE)
        assert curve.audible is not None and not curve.audible.any()
    loud = (0.05 * rng.standard_normal(RATE * 30)).astype(np.float32)  # the same noise, audible: scored as before
    assert water.score(torch.from_numpy(loud), sample_rate=RATE).audible.all()

    click = np.zeros(1, np.float32)
    click[0] = 0.5
    sf.write(tmp_path / "one.wav", click, RATE)
    clicks = EventDetector().fit([tmp_path / "one.wav"], labels="click")
    assert clicks.event_seconds_ == [pytest.approx(0.05)]  # no event of no length
    recording = np.concatenate([loud[: RATE * 5], np.zeros(RATE, np.float32)])
    recording[RATE * 2 : RATE * 2 + 300] += 0.6
    assert all(e.end - e.start >= 0.05 - 1e-9 for e in clicks.detect(torch.from_numpy(recording), sample_rate=RATE))

    sf.write(tmp_path / "tiny.wav", click, RATE)
    with pytest.raises(AudioLoadError, match=r"tiny\.wav: holds 1 samples .* too short to search"):
        water.detect(tmp_path / "tiny.wav")
    with pytest.raises(ParameterError, match="recording: holds 1 samples"):
        water.detect(torch.from_numpy(click), sample_rate=RATE)
    code = main(["find", *[a for p in _support("water") for a in ("--example", str(p))], str(tmp_path / "tiny.wav")])
    assert code == 1 and "tiny.wav: holds 1 samples" in capsys.readouterr().err
