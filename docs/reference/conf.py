"""Sphinx configuration of audiosiam's reference: ``bash scripts/docs.sh`` builds it into ``build/docs``."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE / "_ext")]  # this checkout's package, then audiosiam_docs

import audiosiam  # noqa: E402

project = "audiosiam"
copyright = "the audiosiam authors, Apache-2.0"
release = version = audiosiam.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_parser", "audiosiam_docs"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
html_theme = "alabaster"
html_title = f"audiosiam {release}"
# wide enough for --help at 100 columns (audiosiam_docs.HELP_WIDTH) and for signatures
html_theme_options = {
    "page_width": "1280px",
    "sidebar_width": "250px",
    "code_font_size": "0.8em",
    "body_max_width": "none",
}

# Every reference must resolve: a broken :func:, :class: or :mod: fails the build (scripts/docs.sh runs -W).
nitpicky = True
# Names of other libraries (no network at build time, so no intersphinx) are shown as text: see
# audiosiam_docs.resolve_reference, which also resolves re-exported names.

autoclass_content = "both"  # the class docstring and __init__'s (tests/packaging/test_docstrings.py reads both)
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = False  # Attributes: become attributes that :attr: can name
