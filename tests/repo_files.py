"""Load a script or benchmark of the repository (not part of the package) as a module, for its tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_repo_module(relative: str, name: str | None = None):
    """The module of ``ROOT / relative`` (e.g. ``"benchmarks/calibration_transfer.py"``), registered in
    ``sys.modules`` under ``name`` (default: the file's stem), as dataclasses look their module up by name."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
