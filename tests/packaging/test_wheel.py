"""The wheel (scripts/build_wheel.sh) where no compiler is: a fresh virtual environment that sees this
environment's packages (torch and the other dependencies) but not its audiosiam, with only its own bin/ on
PATH, installs the wheel, loads the compiled core from it, and classifies the example clips the wheel
carries with the answers of the source build.

Slow: building the wheel compiles the whole core again (CPU kernels only: AUDIOSIAM_CUDA=0), several
minutes on 2 cores. It runs where CI=true (scripts/test.sh in CI) or AUDIOSIAM_TEST_WHEEL=1, and
AUDIOSIAM_TEST_WHEEL=path/to/audiosiam-*.whl tests a wheel already built; elsewhere it is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from cli_runner import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SETTING = os.environ.get("AUDIOSIAM_TEST_WHEEL", "")
COMPILERS = ("cc", "c++", "gcc", "g++", "clang", "clang++", "nvcc")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (SETTING or os.environ.get("CI") == "true"),
        reason="builds the whole core again (minutes): set AUDIOSIAM_TEST_WHEEL=1 (CI=true does)",
    ),
]


def built_wheel(tmp_path: Path) -> Path:
    if SETTING.endswith(".whl"):
        return Path(SETTING).resolve()
    env = {**os.environ, "AUDIOSIAM_PY": sys.executable, "AUDIOSIAM_CUDA": "0", "WHEELHOUSE": str(tmp_path)}
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build_wheel.sh")], capture_output=True, text=True, env=env, timeout=3600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "manylinux" in result.stdout, result.stdout[-3000:]  # auditwheel show: the tag it is consistent with
    (wheel,) = tmp_path.glob("audiosiam-*.whl")
    return wheel


def test_the_wheel_installs_and_classifies_without_a_compiler(tmp_path):
    wheel = built_wheel(tmp_path / "wheelhouse")
    assert "-manylinux_" in wheel.name and wheel.name.endswith("_x86_64.whl"), wheel.name

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=600)
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # This environment's packages, torch first of all, without its audiosiam: links to everything else in
    # its site-packages, in a folder named by a .pth file (site reads no .pth files there: this
    # environment's editable audiosiam, a .pth hook, stays out too, and pip sees no audiosiam to replace).
    others = tmp_path / "this_environment"
    others.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.lower().startswith(("audiosiam", "__editable__")):
            (others / entry.name).symlink_to(entry)
    (site / "this_environment.pth").write_text(f"{others}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CC", "CXX", "CUDA_HOME", "CPATH")}
    env["PATH"] = str(venv / "bin")
    assert not [c for c in COMPILERS if shutil.which(c, path=env["PATH"])]

    def run(*args):
        result = subprocess.run(
            [str(venv / "bin" / a) if i == 0 else a for i, a in enumerate(args)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,  # not the repository, whose audiosiam/ would be imported from the current folder
            timeout=900,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    # --no-index: every dependency (torch==2.11.*, ...) must already be there, and satisfy the wheel's pins.
    run("python", "-m", "pip", "install", "--no-index", "--disable-pip-version-check", str(wheel))
    loaded = json.loads(
        run(
            "python",
            "-c",
            "import json, shutil, torch, audiosiam, audiosiam._C\n"
            "from audiosiam.ops import build_info\n"
            "x = torch.randn(5, 16)\n"
            "d = torch.ops.audiosiam.pairwise_distance(x, x, 'euclidean')\n"
            "assert torch.all(d.diagonal() == 0)\n"
            f"print(json.dumps({{'package': audiosiam.__file__, 'core': audiosiam._C.__file__, 'build': build_info(),"
            f" 'compilers': [c for c in {COMPILERS!r} if shutil.which(c)]}}))",
        )
    )
    assert loaded["package"].startswith(str(site)) and loaded["core"].startswith(str(site)), loaded
    assert loaded["build"]["loaded"] and loaded["build"]["cpu_capabilities"][0] == "default", loaded
    assert loaded["compilers"] == []

    examples = json.loads(run("audiosiam", "info", "--format", "json"))["examples"]
    assert examples == str(site / "audiosiam" / "examples")
    from_wheel = json.loads(
        run("audiosiam", "classify", "--support", f"{examples}/support", f"{examples}/query", "--format", "json")
    )
    code, out, err = cli("classify", "--support", EXAMPLES / "support", EXAMPLES / "query", "--format", "json")
    assert code == 0, err
    from_source = json.loads(out)
    assert len(from_wheel) == len(from_source) == len(list((EXAMPLES / "query").iterdir()))
    for ours, theirs in zip(from_wheel, from_source):
        assert Path(ours.pop("file")).name == Path(theirs.pop("file")).name
        assert ours.keys() == theirs.keys()
        for key, value in ours.items():
            if isinstance(value, float):
                assert value == pytest.approx(theirs[key], abs=1e-6), key
            else:
                assert value == theirs[key], key
