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
import time
from pathlib import Path

import pytest
import torch

from audiosiam.models import load_checkpoint

from audio_fixtures import write

pytestmark = pytest.mark.slow  # subprocesses, training runs and exports: the full suite only

ROOT = Path(__file__).resolve().parents[2]

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
    config = TrainConfig(out=out, channels=[8, 8, 16, 16], blocks=[1, 1, 1], embedding_dim=16, n_mels=32,
                         classes_per_batch=4, clips_per_class=2, clip_seconds=0.5, steps_per_epoch=3,
                         val_episodes=20, warmup_steps=2, epochs=3,
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
    # (file, its n-th write, how): named after the commit order: state.pt of the start (its first write), then
    # per epoch last.pt, best.pt, state.pt
    ("last.pt", 1, "before-replace"),  # in epoch 1: only the start is committed (issue 34 item 14)
    ("state.pt", 3, "before-replace"),  # epoch 2's last.pt (and best.pt) are written, its state is not
    ("state.pt", 3, "mid-write"),
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


# ---------------------------------------------------------------- embed's .npy and .csv change together
QUERIES = sorted((EXAMPLES / "support").glob("*/*.flac"))


def embed_child(out: Path, inputs, checkpoint: str, *, kill_after_renames: int = 0) -> subprocess.CompletedProcess:
    """``audiosiam embed`` in a real process; with ``kill_after_renames``, SIGKILLed right after that many
    ``os.replace`` calls onto the pair (the first rename of a two-file commit)."""
    driver = textwrap.dedent(
        """
        import os, signal, sys
        from audiosiam.cli import main
        n, real = int(sys.argv[1]), os.replace
        def replace(src, dst):
            real(src, dst)
            if n and os.path.basename(dst).startswith("e.") and not os.path.basename(dst).endswith(".commit"):
                replace.count = getattr(replace, "count", 0) + 1
                if replace.count == n:
                    os.kill(os.getpid(), signal.SIGKILL)
        os.replace = replace
        sys.exit(main(sys.argv[2:]))
        """
    )
    args = [sys.executable, "-c", driver, str(kill_after_renames), "embed", *map(str, inputs), "--out", str(out)]
    return subprocess.run([*args, "--model", checkpoint], cwd=ROOT, capture_output=True, text=True, timeout=300)


def assert_pair(out: Path, sources) -> None:
    from audiosiam.io import read_embeddings

    embeddings, listed = read_embeddings(out)
    assert listed == [str(s) for s in sources] and embeddings.shape[0] == len(sources)


def test_a_full_disk_while_writing_the_index_changes_neither_file(checkpoint, tmp_path, monkeypatch):
    import csv
    import errno

    from cli_runner import cli

    out = tmp_path / "e.npy"
    assert cli("embed", *QUERIES[:2], "--out", out, "--model", checkpoint)[0] == 0
    before = out.read_bytes(), out.with_suffix(".csv").read_bytes()
    real_writer = csv.writer

    class FullDisk:  # the index's rows stop fitting halfway, as on a full disk
        def __init__(self, handle):
            self.rows, self.writer = 0, real_writer(handle)

        def writerow(self, row):
            self.rows += 1
            if self.rows > 10:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.writer.writerow(row)

        def writerows(self, rows):
            for row in rows:
                self.writerow(row)

    monkeypatch.setattr(csv, "writer", FullDisk)
    code, _, err = cli("embed", *QUERIES[:20], "--out", out, "--model", checkpoint)
    assert (out.read_bytes(), out.with_suffix(".csv").read_bytes()) == before
    assert code == 1 and "No space left on device" in err and "nothing was changed" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".e.npy.lock", "e.csv", "e.npy"]  # no temporaries left
    assert_pair(out, QUERIES[:2])


@pytest.mark.slow
def test_a_real_full_disk_leaves_the_old_pair(checkpoint, tmp_path):
    if os.geteuid() != 0 or sys.platform != "linux":
        pytest.skip("mounting a small tmpfs needs root on Linux")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        long_names = tmp_path / "q"
        long_names.mkdir()
        queries = []
        for i, clip in enumerate(QUERIES[:20]):  # 20 rows of ~250 characters: an index of two 4 KiB pages
            queries.append(long_names / f"{i:02d}{'x' * 200}.flac")
            queries[-1].symlink_to(clip)
        out = disk / "e.npy"
        assert embed_child(out, queries[:2], checkpoint).returncode == 0
        before = out.read_bytes(), out.with_suffix(".csv").read_bytes()
        free = os.statvfs(disk)
        (disk / "filler").write_bytes(bytes((free.f_bavail - 1) * free.f_frsize))  # one page left
        done = embed_child(out, queries, checkpoint)
        assert done.returncode == 1 and "No space left on device" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        assert (out.read_bytes(), out.with_suffix(".csv").read_bytes()) == before
        (disk / "filler").unlink()
        assert_pair(out, queries[:2])
        assert embed_child(out, queries, checkpoint).returncode == 0  # room again: the new pair lands whole
        assert_pair(out, queries)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.slow
def test_an_embed_killed_between_its_two_renames_is_completed_by_the_next_reader(checkpoint, tmp_path):
    out = tmp_path / "e.npy"
    assert embed_child(out, QUERIES[:2], checkpoint).returncode == 0
    done = embed_child(out, QUERIES[:5], checkpoint, kill_after_renames=1)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert (tmp_path / ".e.npy.commit").exists()  # the .npy is new, the .csv still the old one
    assert_pair(out, QUERIES[:5])  # read_embeddings completed the commit
    assert not (tmp_path / ".e.npy.commit").exists()
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]


# ---------------------------------------------------------------- Ctrl-C at any moment of start-up
# `python -m audiosiam ARGS`, announcing first that the interpreter's own start-up (site, sitecustomize) is
# over: a SIGINT before that is Python's, not audiosiam's, to answer.
AS_MAIN = (
    "import runpy, sys; print('ready', flush=True); sys.argv = ['audiosiam', *sys.argv[1:]]; "
    "runpy.run_module('audiosiam', run_name='__main__', alter_sys=True)"
)
MOMENTS = 30


def interrupted_at(args: list[str], moment: float | None) -> tuple[int, str, float]:
    """Run the command, SIGINT it ``moment`` seconds after start-up ends (``None``: never); returns the exit
    code, stderr and the seconds it ran after start-up."""
    child = subprocess.Popen(
        [sys.executable, "-c", AS_MAIN, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout.readline() == "ready\n"
    began = time.monotonic()
    if moment is not None:
        time.sleep(moment)
        child.send_signal(signal.SIGINT)
    try:
        _, err = child.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        child.kill()
        pytest.fail(f"audiosiam {args[0]} still ran 60 s after Ctrl-C at {moment} s (a hang)")
    return child.returncode, err, time.monotonic() - began


@pytest.mark.slow
@pytest.mark.parametrize("command", ["verify", "train"])
def test_ctrl_c_at_any_moment_of_start_up_exits_130_without_a_traceback(command, checkpoint, tones, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    args = {
        "verify": ["verify", CLIP, CLIP, "--model", checkpoint],
        "train": [
            "train",
            tones,
            "--out",
            tmp_path / "t.pt",
            "--epochs",
            "1",
            "--steps-per-epoch",
            "2",
            "--channels",
            "8,8,16,16",
            "--blocks",
            "1,1,1",
            "--embedding-dim",
            "16",
            "--n-mels",
            "32",
            "--classes-per-batch",
            "4",
            "--clips-per-class",
            "2",
            "--clip-seconds",
            "0.5",
            "--val-classes",
            "0",
            "--num-workers",
            "0",
            "--no-progress",
        ],
    }[command]
    args = [str(a) for a in args]
    runs = [interrupted_at(args, None) for _ in range(2)]  # the first also warms the file cache
    assert all(code == 0 for code, _, _ in runs), runs[0][1]
    whole = min(seconds for _, _, seconds in runs)
    # 30 moments from 0.1 s to near the end of the command (imports of torch, numpy, scipy, sklearn;
    # reading; the model), two commands at a time
    moments = [0.1 + (0.8 * whole - 0.1) * i / (MOMENTS - 1) for i in range(MOMENTS)]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda m: interrupted_at(args, m), moments))
    for moment, (code, err, _) in zip(moments, results):
        assert "Traceback" not in err and "Exception ignored" not in err, (moment, err)
        assert code in (130, 0), (moment, code, err)  # 0: the command ended before the signal came
    stopped = sum(code == 130 for code, _, _ in results)
    assert stopped >= MOMENTS // 2, f"only {stopped} of {MOMENTS} moments interrupted the command"


LIBRARY_CALLBACK = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, sys.argv[2])
    from audiosiam import _interrupt
    _interrupt.install(process=sys.argv[1] == "process")
    import library  # not audiosiam's code: as a library's Python code run from its C++ code
    library.call()
    print("went on")
    """
)


@pytest.mark.parametrize("process", [True, False])
def test_ctrl_c_outside_our_code_ends_the_command_line_at_once_and_is_raised_for_an_in_process_caller(
    process, tmp_path
):
    # Raising there can reach a C++ frame that may not throw: the process aborts with -6 (CI met it in
    # `verify`). The command line ends at once instead; an in-process caller keeps Python's behaviour.
    (tmp_path / "library.py").write_text(
        "import os, signal\n\ndef call():\n    os.kill(os.getpid(), signal.SIGINT)\n    return sum(range(10))\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", LIBRARY_CALLBACK, "process" if process else "caller", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "went on" not in child.stdout
    if process:
        assert child.returncode == 130, child.stderr
        assert "Traceback" not in child.stderr and "interrupted" in child.stderr
    else:
        assert "KeyboardInterrupt" in child.stderr, child.stderr


def test_a_ctrl_c_in_audiosiam_code_is_raised_to_unwind_it():
    from audiosiam import _interrupt
    from audiosiam.files import atomic_write

    assert _interrupt._in_our_code(_frame_of(atomic_write))
    assert not _interrupt._in_our_code(sys._getframe())


def _frame_of(function):
    """The frame of ``function`` while it runs (it is called with a writer that captures it)."""
    import tempfile

    frames = []

    def capture(tmp):
        frames.append(sys._getframe(1))
        tmp.write_bytes(b"")

    with tempfile.TemporaryDirectory() as folder:
        function(Path(folder) / "x", capture)
    return frames[0]
