"""The build: setup.py and CMake compile the same sources, and the extension reports how it was built."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def setup_module_sources(with_cuda: bool) -> tuple[list[str], list[str]]:
    """setup.py's sources compiled once each, and those compiled once per CPU level."""
    spec = importlib.util.spec_from_file_location("audiosiam_setup", ROOT / "setup.py")
    text = (ROOT / "setup.py").read_text()
    # Evaluate only the source-list helpers: running setup.py itself would start a build.
    namespace = {"__file__": str(ROOT / "setup.py")}
    exec(compile(text.split("def _pip_cuda_include_dirs")[0], "setup.py", "exec"), namespace)
    assert spec is not None
    return namespace["extension_sources"](with_cuda), namespace["cpu_level_sources"]()


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
def test_setup_py_and_cmake_compile_the_same_sources():
    result = subprocess.run(
        ["cmake", f"-DAUDIOSIAM_ROOT={ROOT}", "-P", str(ROOT / "cmake" / "print_sources.cmake")],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines()]
    cmake_once = [line.removeprefix("-- ") for line in lines if line.startswith("-- csrc/")]
    cmake_per_level = [line.removeprefix("-- per level: ") for line in lines if line.startswith("-- per level: csrc/")]
    assert (cmake_once, cmake_per_level) == setup_module_sources(with_cuda=True)
    assert any(s.endswith(".cu") for s in cmake_once) and "csrc/audiosiam.cpp" in cmake_once
    assert "csrc/ops/cpu/knn_kernel.cpp" in cmake_per_level and "csrc/ops/cpu_dispatch.cpp" in cmake_once


@pytest.mark.needs_extension
def test_build_info_reports_the_build():
    import torch

    from audiosiam.ops import build_info

    info = build_info()
    assert info["loaded"] is True
    assert {"cuda", "openmp", "openmp_max_threads", "cpu_capability", "torch_version", "torch_threads"} <= set(info)
    assert info["torch_version"] == torch.__version__.split("+")[0]
    assert info["cpu_capability"] in info["cpu_capabilities"]
    assert info["cpu_capabilities"][0] == "default" and set(info["cpu_capabilities"]) <= {"default", "avx2", "avx512"}


@pytest.mark.slow
def test_a_second_bootstrap_of_an_unchanged_tree_compiles_nothing():
    """``source scripts/bootstrap.sh`` after a build of this clone, sources unchanged, finishes in seconds."""
    import os
    import sys
    import time

    venv = Path(sys.prefix)
    if not list(venv.glob(".build-*")) or not (venv / ".audiosiam-complete").is_file():
        pytest.skip("this interpreter's environment was not built by scripts/bootstrap.sh")
    env = {**os.environ, "AUDIOSIAM_VENV": str(venv)}
    start = time.monotonic()
    result = subprocess.run(
        ["bash", "-c", f"source {ROOT / 'scripts' / 'bootstrap.sh'}"], capture_output=True, text=True, env=env
    )
    seconds = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert "nothing to compile" in result.stdout, result.stdout + result.stderr
    assert seconds < 30, f"{seconds:.0f} s"
