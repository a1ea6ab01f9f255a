"""The public API is what ``audiosiam`` and its packages export: a package's ``__all__`` names what users
import from it, and the files inside a package are its implementation (importable by the tests and the
benchmarks, documented nowhere, free to change). So no module inside a package declares an ``__all__``;
the two one-file areas (``functional``, ``plotting``) do, as a package would."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from test_docstrings import DEPRECATED_ALIASES

import audiosiam

ONE_FILE_AREAS = {"audiosiam.functional", "audiosiam.plotting"}


def all_modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(audiosiam.__path__, "audiosiam.")
        if "._" not in info.name  # private modules: no public names by their name
        and not info.name.startswith("audiosiam.commands")  # documented by their --help
        and info.name not in (*DEPRECATED_ALIASES, "audiosiam.cli", "audiosiam.__main__")
    )


def is_package(name: str) -> bool:
    return hasattr(importlib.import_module(name), "__path__")


def test_only_packages_and_one_file_areas_declare_public_names():
    declaring = {name for name in all_modules() if hasattr(importlib.import_module(name), "__all__")}
    stray = sorted(n for n in declaring if not is_package(n) and n not in ONE_FILE_AREAS)
    assert not stray, (
        f"{stray} declare __all__ inside a package: export the name from the package's __init__ instead, or "
        "leave it internal"
    )


@pytest.mark.parametrize("package", ["audiosiam", *sorted(n for n in all_modules() if is_package(n))])
def test_every_package_export_exists_and_is_listed_once(package):
    module = importlib.import_module(package)
    names = getattr(module, "__all__", [])
    assert len(names) == len(set(names)), f"{package}.__all__ lists a name twice"
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"{package}.__all__ names {missing}, which it does not define or import"


WITHDRAWN = [  # exported by a package before 0.1.0; still found there for one release, with a warning
    ("audiosiam.io", "resample", "audiosiam.io.resampling"),
    ("audiosiam.io", "fix_length", "audiosiam.io.framing"),
    ("audiosiam.io", "check_waveform", "audiosiam.io.checks"),
    ("audiosiam.ops", "METRICS", "audiosiam.ops.distance"),
    ("audiosiam.ops", "reference_ops", "audiosiam.ops._extension"),
    ("audiosiam.losses", "REDUCTIONS", "audiosiam.losses.functional"),
    ("audiosiam.models", "AttentiveStatsPooling", "audiosiam.models.encoder"),
    ("audiosiam.data", "combine_datasets", "audiosiam.data.datasets"),
    ("audiosiam.detection", "make_soundscape", "audiosiam.detection.soundscapes"),
    ("audiosiam.evaluation", "embed_dataset", "audiosiam.evaluation.embedding"),
    ("audiosiam.training", "DataSource", "audiosiam.data"),
    ("audiosiam.transforms", "synthetic_room_responses", "audiosiam.transforms.waveform"),
]


@pytest.mark.parametrize(("package", "name", "home"), WITHDRAWN, ids=[f"{p}.{n}" for p, n, _ in WITHDRAWN])
def test_a_withdrawn_export_still_resolves_with_a_warning_naming_its_home(package, name, home):
    module = importlib.import_module(package)
    assert name not in module.__all__
    with pytest.warns(DeprecationWarning, match=f"{package}.{name} is no longer exported.*import it from {home}"):
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(home), name)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        module.not_a_name
