"""The API reference (``docs/reference``, ``bash scripts/docs.sh``) builds with every warning an error, and
the checks that make that mean something do fail: a broken cross-reference, a reference to a private name,
a public constant or member that the reference would show without a word of its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from repo_files import ROOT, load_repo_module
from test_docstrings import public_modules as documented_modules

from audiosiam.cli import SUBCOMMANDS

SPHINX = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html"]  # as scripts/docs.sh

try:
    import myst_parser  # noqa: F401
    import sphinx  # noqa: F401
except ImportError as exc:  # a failure, not a skip: CI must build the reference
    raise ImportError(f"{exc.name} is missing: the reference needs sphinx and myst-parser (requirements.txt)") from exc


@pytest.fixture(scope="module")
def docs_ext():
    return load_repo_module("docs/reference/_ext/audiosiam_docs.py")


def sphinx_build(source: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SPHINX, str(source), str(out / "html"), "-d", str(out / "doctrees")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )


@pytest.mark.slow
def test_the_reference_builds_without_a_warning(tmp_path, docs_ext):
    result = sphinx_build(ROOT / "docs" / "reference", tmp_path)
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stdout}\n{result.stderr}"
    html = tmp_path / "html"
    for module in docs_ext.public_modules():
        assert (html / "api" / f"{module}.html").is_file(), f"no page for {module}"
    cli = (html / "cli.html").read_text()
    for command in SUBCOMMANDS:
        assert f"usage: audiosiam {command}" in cli, f"the CLI page lacks `audiosiam {command} --help`"
    assert "Where each concept lives" in (html / "architecture.html").read_text()  # ARCHITECTURE.md, included
    assert "The quickstart prints one row per query clip" in (html / "quickstart.html").read_text()  # README


def test_the_pages_are_the_modules_whose_all_is_checked(docs_ext):
    checked = {m.__name__ for m in documented_modules() if hasattr(m, "__all__")}
    assert set(docs_ext.public_modules()) == checked


@pytest.mark.slow
def test_broken_and_private_references_and_undocumented_constants_fail(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "conf.py").write_text(
        textwrap.dedent(f"""\
        import sys
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "docs" / "reference" / "_ext")!r}, {str(tmp_path)!r}]
        extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "audiosiam_docs"]
        nitpicky = True
        audiosiam_module_pages = False
        """)
    )
    (tmp_path / "constants.py").write_text('#: Documented.\nDOCUMENTED = "a"\nUNDOCUMENTED = "b"\n')
    (tmp_path / "src" / "index.rst").write_text(
        textwrap.dedent("""\
        Test
        ====

        .. py:class:: audiosiam.detection.detector.EventDetector

        .. py:module:: audiosiam.detection

        Resolved where it is defined: :class:`EventDetector`, :class:`audiosiam.EventDetector`. Another
        library's, shown as text: :class:`numpy.ndarray`, :class:`torch.Tensor`.
        Broken: :func:`audiosiam.io.no_such_function`. Private: :func:`audiosiam.io.stream._decoded`.

        .. autodata:: constants.DOCUMENTED
        .. autodata:: constants.UNDOCUMENTED
        """)
    )
    result = sphinx_build(tmp_path / "src", tmp_path)
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert result.returncode != 0
    assert any("audiosiam.io.no_such_function" in w for w in warnings), result.stderr
    assert any("audiosiam.io.stream._decoded" in w for w in warnings), result.stderr
    assert any("constants.UNDOCUMENTED" in w and "'#:'" in w for w in warnings), result.stderr
    for fine in ("EventDetector", "numpy", "torch", "constants.DOCUMENTED"):
        assert not any(fine in w for w in warnings), f"{fine}: {result.stderr}"
    assert len(warnings) == 3, result.stderr


def test_undocumented_public_members_are_found(docs_ext):
    import torch

    class Example(torch.nn.Module):
        """Documented."""

        def documented(self):
            """Yes."""

        def undocumented(self):
            pass

        @property
        def bare(self):
            return 1

        def extra_repr(self):  # torch's method, documented there
            return ""

        def _private(self):
            pass

    Example.__module__ = "audiosiam.example"
    found = docs_ext.undocumented_members(Example)
    assert [name.rpartition(".")[2] for name in found] == ["undocumented", "bare"]
