"""Fault injection with real processes: the commands given a named pipe end with a message instead of
hanging; a training run killed with SIGKILL at the named points of an
epoch's commit resumes to exactly the weights of a run that was never killed, and every checkpoint a
person may pick up meanwhile (``best.pt``, ``last.pt``) loads.

The kill points are reached by a driver that wraps ``torch.save`` and ``os.replace`` in the child process
(the library has no test hooks): "before-replace" kills after a file's temporary copy is complete but
before it replaces the file; "mid-write" kills with half of the temporary copy written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from audiosiam.models import load_checkpoint

from audio_fixtures import write

ROOT = Path(__file__).resolve().parents[1]

DRIVER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path

    import torch

    from audiosiam.training import DataSource, TrainConfig, train

    out, data, target, nth, mode, resume = sys.argv[1:7]
    seen = {"n": 0}
    real_replace, real_save = os.replace, torch.save

    def reached(name):
        if name != target:
            return False
        seen["n"] += 1
        return seen["n"] == int(nth)

    def replace(src, dst):
        if mode == "before-replace" and reached(Path(dst).name):
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst)

    def save(obj, f, *args, **kwargs):
        name = Path(f).name if isinstance(f, (str, os.PathLike)) else ""  # .<target>.<pid>.<random>.tmp<suffix>
        if mode == "mid-write" and name.startswith(".") and reached(name[1:].split(".tmp")[0].rsplit(".", 2)[0]):
            real_save(obj, f, *args, **kwargs)
            with open(f, "r+b") as fh:
                fh.truncate(os.path.getsize(f) // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *args, **kwargs)

    os.replace, torch.save = replace, save
    torch.set_num_threads(1)
    config = TrainConfig(out=out, channels=[8, 8, 16, 16], blocks=[1, 1, 1], embedding_dim=16, n_mels=32, p=4, k=2,
                         clip_seconds=0.5, steps_per_epoch=3, val_episodes=20, warmup_steps=2, epochs=3,
                         val_classes=0, num_workers=0, resume=resume == "1")
    train(config, [DataSource(data, "tones")], progress=False, log=lambda *a: None)
    """
)


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    import numpy as np

    root = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    t = np.arange(9600) / 16000
    for c in range(6):
        for n in range(6):  # validation holds out classes with 6+ clips
            wave = 0.4 * np.sin(2 * np.pi * 200 * 1.6**c * (1 + 0.02 * rng.standard_normal()) * t)
            write(root / f"class{c}" / f"{n}.wav", (wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32))
    return root


def train_child(out: Path, data: Path, *, target="-", nth=0, mode="none", resume=False) -> int:
    args = [sys.executable, "-c", DRIVER, str(out), str(data), target, str(nth), mode, "1" if resume else "0"]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"training child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.returncode


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tones):
    out = tmp_path_factory.mktemp("straight") / "model.pt"
    assert train_child(out, tones) == 0
    return load_checkpoint(out.with_suffix(".run") / "last.pt").state_dict()


KILL_POINTS = [
    # (file, its n-th write, how): named after the commit order of an epoch: last.pt, best.pt, state.pt
    ("state.pt", 2, "before-replace"),  # epoch 2's last.pt (and best.pt) are written, its state is not
    ("state.pt", 2, "mid-write"),
    ("best.pt", 2, "mid-write"),  # best.pt of epoch 1 must survive a torn copy
    ("last.pt", 3, "before-replace"),
]


@pytest.mark.slow
@pytest.mark.parametrize("target,nth,mode", KILL_POINTS)
def test_a_run_killed_at_any_commit_point_resumes_to_the_same_weights(
    tmp_path, tones, uninterrupted, target, nth, mode
):
    out = tmp_path / "model.pt"
    run_dir = out.with_suffix(".run")
    code = train_child(out, tones, target=target, nth=nth, mode=mode)
    if target == "best.pt" and code == 0:
        pytest.skip("the training loss did not improve in epoch 2 of this tiny run: best.pt was written once")
    assert code == -signal.SIGKILL, "the kill point was never reached"
    for name in ("best.pt", "last.pt"):  # what a person may pick up from a killed run loads
        if (run_dir / name).exists():
            load_checkpoint(run_dir / name)
    assert train_child(out, tones, resume=True) == 0
    resumed = load_checkpoint(run_dir / "last.pt").state_dict()
    for key, value in uninterrupted.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0, msg=key)
    leftovers = sorted(p.name for p in run_dir.iterdir() if ".tmp" in p.name)
    assert not leftovers, f"temporary files of the killed run were left behind: {leftovers}"


EXAMPLES = ROOT / "examples"
CLIP = EXAMPLES / "query" / "snare_sn_02.flac"
PIPE_COMMANDS = {
    "classify": ["classify", "--support", EXAMPLES / "support", "{pipe}", CLIP],
    "embed": ["embed", "{pipe}", CLIP, "--out", "{tmp}/e.npy"],
    "verify": ["verify", "{pipe}", CLIP],
    "find": ["find", "--example", CLIP, "{pipe}"],
}


@pytest.mark.parametrize("through_link", [False, True], ids=["fifo", "link_to_fifo"])
@pytest.mark.parametrize("command", sorted(PIPE_COMMANDS))
def test_a_named_pipe_is_refused_by_name_instead_of_hanging(tmp_path, command, through_link):
    os.mkfifo(tmp_path / "pipe")
    pipe = tmp_path / "pipe.wav"
    if through_link:
        pipe.symlink_to(tmp_path / "pipe")
    else:
        (tmp_path / "pipe").rename(pipe)
    args = [str(a).format(pipe=pipe, tmp=tmp_path) for a in PIPE_COMMANDS[command]]
    try:  # nothing ever writes to the pipe: a reader that opens it waits forever
        done = subprocess.run(
            [sys.executable, "-m", "audiosiam", *args], cwd=ROOT, capture_output=True, text=True, timeout=180
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"audiosiam {command} given a named pipe still ran after 180 s (a hang)")
    assert done.returncode == 1, done.stderr
    assert f"{pipe}: is a named pipe (FIFO), not a regular file" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
