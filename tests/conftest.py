"""Shared fixtures and markers for the audiosiam test suite.

Markers (declared in pyproject.toml, enforced with --strict-markers):
    needs_cuda          skipped where torch sees no CUDA GPU
    needs_extension     skipped where the compiled audiosiam._C is not loaded
    needs_shared_data   skipped where the shared recordings (audiosiam.data.locations.shared_data()) are absent
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from audiosiam.data.locations import shared_data as _shared_data

from op_tester import ACTIVE_CPU_LEVEL, CPU_LEVELS, at_cpu_level

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = _shared_data()


def _extension_loaded() -> bool:
    from audiosiam.ops import _extension

    return _extension._load()[0] is not None


def pytest_collection_modifyitems(config, items):
    skips = {
        "needs_cuda": (not torch.cuda.is_available(), "no CUDA GPU here"),
        "needs_shared_data": (not SHARED_DATA.is_dir(), f"{SHARED_DATA} is absent"),
    }
    extension_missing = None
    for item in items:
        for marker, (missing, reason) in skips.items():
            if missing and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))
        if "needs_extension" in item.keywords:
            if extension_missing is None:
                extension_missing = not _extension_loaded()
            if extension_missing:
                item.add_marker(pytest.mark.skip(reason="audiosiam._C is not loaded"))


@pytest.fixture(params=CPU_LEVELS or ["-"], ids=lambda level: f"cpu-{level}")
def cpu_level(request):
    """Runs the test once per CPU level this build and CPU have (the kernels of each level are separate
    machine code: csrc/ops/cpu/kernels.h); on CUDA, and without the compiled core, once."""
    level = request.param
    params = request.node.callspec.params if hasattr(request.node, "callspec") else {}
    if level == ACTIVE_CPU_LEVEL or level == "-":
        yield level
    elif params.get("device", "cpu") != "cpu" or params.get("compiled") is False:
        pytest.skip("CPU levels: the compiled CPU kernels only")
    else:
        with at_cpu_level(level):
            yield level


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state, so a failure reproduces."""
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real recorded audio (fsdd/, speech_commands_dev/, hedgewars_voices/)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A tiny untrained model's checkpoint (24-d embeddings; no calibration map, verification threshold 0.5)."""
    from audiosiam.models import EmbeddingModel, EncoderConfig, ResNetEncoder
    from audiosiam.transforms import LogMelSpectrogram

    torch.manual_seed(0)
    model = EmbeddingModel(LogMelSpectrogram(), ResNetEncoder(EncoderConfig(channels=(8, 8, 16, 16), embedding_dim=24)))
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    model.eval().save(path, verification_threshold=0.5)
    return str(path)


@pytest.fixture
def make_read_only():
    """``make_read_only(folder)``: nothing can be written into ``folder`` any more, for real (its files stay
    readable): write permission removed, or, for root (whom permissions do not stop), the folder bind-mounted
    read-only onto itself; skipped where neither can be done. Undone at the end of the test."""
    import os
    import subprocess

    undo = []

    def make(folder):
        if os.geteuid() != 0:
            folder.chmod(0o555)
            undo.append(lambda: folder.chmod(0o755))
            return folder
        bind = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
        if bind.returncode != 0:
            pytest.skip("running as root and cannot bind-mount a folder read-only")
        undo.append(lambda: subprocess.run(["umount", "-l", str(folder)], check=False))
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("running as root and cannot remount a folder read-only")
        return folder

    yield make
    for step in reversed(undo):
        step()
