"""Rendering a report page: jinja2 templates with autoescaping, one script, written atomically.

Every value a template prints is escaped (file names and labels are text, never markup), and the page's
Content-Security-Policy lets only its own script run (by its hash) and fetch nothing from a network: a
name that slipped past escaping still could not run, and the page works offline.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
from functools import lru_cache
from pathlib import Path

from .._version import __version__


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("audiosiam.report", "templates"),
        autoescape=True,  # every template is HTML
        undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(cell=cell, sort_key=sort_key)  # macros see globals, not the page's values
    return env


def cell(value) -> str:
    """A value as the command's table prints it (floats to 3 decimals, ``None`` empty)."""
    from ..commands._common import _cell  # the table's own formatting: the page shows the same numbers

    return _cell(value)


def sort_key(value) -> str:
    """What a column sorts by: numbers as numbers (``data-sort``), text as text; empty last."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, (int, float)):
        return "" if value != value else repr(float(value))
    return str(value)


def render(template: str, **context) -> str:
    """The HTML of a page.

    Args:
        template (str): a file under ``audiosiam/report/templates``.
        **context (Any): the template's values (escaped when printed).

    Returns:
        str: the page.
    """
    env = _environment()
    script = env.get_template("report.js").render()
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return env.get_template(template).render(
        script=script,
        script_hash=f"sha256-{digest}",
        style=env.get_template("report.css").render(),
        version=__version__,
        created=datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        **context,
    )


def write_page(path: str | os.PathLike, html: str) -> Path:
    """Write the page atomically (:func:`audiosiam.files.write_output`).

    Args:
        path (str or os.PathLike): the file.
        html (str): the page.

    Returns:
        Path: ``path``.

    Raises:
        ParameterError: ``path`` is a folder or cannot be written.
    """
    from ..files import write_output

    return write_output(path, lambda tmp: Path(tmp).write_text(html, encoding="utf-8"))
