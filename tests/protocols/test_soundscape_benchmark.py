"""benchmarks/soundscape_detection.py end to end on the bundled example clips: both detectors scored, and
several seeds pooled exactly as the separate runs (the dev sets that choose detector rules rely on it)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from benchmarks import soundscape_detection

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _manifest(path: Path, rows: list[tuple[Path, str]]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        writer.writerows((str(p), label) for p, label in rows)  # absolute paths: kept as they are
    return path


def test_seeds_pool_as_separate_runs(tmp_path):
    events = _manifest(
        tmp_path / "events.csv",
        [
            (p, folder.name)
            for folder in sorted((EXAMPLES / "support").iterdir())
            for p in sorted(folder.glob("*.flac"))
        ],
    )
    background = _manifest(
        tmp_path / "ambience.csv", [(EXAMPLES / "query" / "water_supertuxkart_river_loop.flac", "bg")]
    )
    common = ["--events", str(events), "--background", str(background), "--shots", "2", "--targets", "1"]
    common += ["--distractors", "1", "--seconds", "12", "--max-classes", "2", "--background-quantile", "0.9"]
    common += ["--negatives", "1"]  # drawn per seed too
    bench = soundscape_detection
    results = {}
    for name, seeds in (("both", ["0", "1"]), ("zero", ["0"]), ("one", ["1"])):
        out = tmp_path / f"{name}.json"
        assert bench.main([*common, "--seed", *seeds, "--json", str(out)]) == 0
        results[name] = json.loads(out.read_text())
    both, zero, one = results["both"], results["zero"], results["one"]
    assert (both["soundscapes"], both["true_events"], zero["soundscapes"]) == (4, 4, 2)
    for detector in ("audiosiam", "baseline"):
        for count in ("tp", "fp", "fn"):
            assert both[detector][count] == zero[detector][count] + one[detector][count]
        assert 0.0 <= both[detector]["f_measure"] <= 1.0
    assert both["config"]["background_quantile"] == 0.9 and both["config"]["seed"] == [0, 1]


def test_negatives_are_stretches_of_the_background_drawn_aside():
    bench = soundscape_detection
    bg = bench.torch.arange(16000 * 12, dtype=bench.torch.float32)
    stretches = bench.background_stretches(bg, 3, bench.np.random.default_rng([0, 1]))
    assert [s.numel() for s in stretches] == [5 * 16000] * 3
    assert all(int(s[-1] - s[0]) == s.numel() - 1 for s in stretches)  # contiguous pieces of it
    again = bench.background_stretches(bg, 3, bench.np.random.default_rng([0, 1]))
    assert all(bench.torch.equal(a, b) for a, b in zip(stretches, again, strict=True))
    assert bench.background_stretches(bg[:8000], 1, bench.np.random.default_rng(0))[0].numel() == 8000  # short
    assert bench.background_stretches(bg, 0, bench.np.random.default_rng(0)) == []
