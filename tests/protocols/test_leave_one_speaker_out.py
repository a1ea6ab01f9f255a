"""benchmarks/fsdd_leave_one_speaker_out.py end to end on generated "digits" (the real sweep takes an hour).

The script drives the command line (train --exclude, evaluate --query-group), so this catches any of
those options, the JSON they write, or the run folder layout changing under it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from audio_fixtures import write

ROOT = Path(__file__).resolve().parents[2]
TINY_TRAINING = [
    "--epochs",
    "1",
    "--steps-per-epoch",
    "2",
    "--classes-per-batch",
    "4",
    "--clips-per-class",
    "2",
    "--channels",
    "8,8,16,16",
    "--embedding-dim",
    "16",
    "--n-mels",
    "32",
    "--val-classes",
    "0",
    "--warmup-steps",
    "1",
]


def _digit(digit: int, speaker: int, take: int) -> np.ndarray:
    """A 'spoken digit': a tone whose pitch says the digit, a speaker's own timbre, a little noise."""
    rng = np.random.default_rng(100 * digit + 10 * speaker + take)
    t = np.arange(4800) / 16000
    f = 300 * 1.25**digit * (1 + 0.03 * speaker)
    x = np.sin(2 * np.pi * f * t) + 0.3 * (speaker + 1) / 3 * np.sin(4 * np.pi * f * t)
    return (0.3 * x + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.slow
def test_sweep_trains_without_the_speaker_evaluates_on_them_and_resumes(tmp_path):
    rows = []
    for digit in range(10):
        for speaker in range(3):
            for take in range(6):
                path = write(tmp_path / "clips" / f"{digit}_{speaker}_{take}.wav", _digit(digit, speaker, take))
                rows.append(f"{path.relative_to(tmp_path)},{digit},s{speaker}")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,digit,speaker\n" + "\n".join(rows) + "\n")
    recipe = tmp_path / "recipe.json"
    recipe.write_text(
        json.dumps(
            {
                "sources": [
                    {
                        "path": "manifest.csv",
                        "label_columns": ["digit"],
                        "where": {"digit": ["0", "1", "2", "3", "4"]},
                        "group_column": "speaker",
                    }
                ]
            }
        )
    )
    out = tmp_path / "loso"
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "fsdd_leave_one_speaker_out.py"),
        "--out-dir",
        str(out),
        "--recipe",
        str(recipe),
        "--manifest",
        str(manifest),
        "--speakers",
        "s2",
        "--episodes",
        "20",
        "--",
        *TINY_TRAINING,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    first = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "--exclude speaker=s2" in first.stdout and "--query-group s2" in first.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert [r["speaker"] for r in summary] == ["s2"]
    assert all(0.0 <= summary[0][k] <= 1.0 for k in ("any 1-shot", "any 5-shot", "cross 1-shot", "cross 5-shot"))
    checkpoint = out / "without_s2.pt"
    trained = json.loads((out / "without_s2.run" / "metrics.json").read_text())
    assert checkpoint.is_file() and trained[-1]["step"] == 2
    info = torch.load(checkpoint, map_location="cpu", weights_only=False)["info"]
    assert info["sources"][0]["exclude"] == {"speaker": ["s2"]}  # the held-out speaker never trained it
    stamp = checkpoint.stat().st_mtime_ns
    again = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert again.returncode == 0 and "audiosiam train" not in again.stdout  # reused, not retrained
    assert checkpoint.stat().st_mtime_ns == stamp and "| s2 |" in again.stdout
