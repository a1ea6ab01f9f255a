"""Reports a person looks at and listens to: one self-contained HTML page per run of ``classify`` or
``find`` (``--report out.html``), with every answer beside a player of its sound.

The pages need no server and no network: styles, the script and the pictures are inside, and so is the
audio of short clips and stretches; long files are linked by relative path (the size rule:
``audiosiam.report.audio``). Every file name and label is escaped (jinja2 autoescaping), and the
page's Content-Security-Policy runs no script but its own.

Example:
    >>> from audiosiam.report import write_classification
    >>> write_classification("answers.html", rows, classifier, embeddings)
"""

from __future__ import annotations

from .classification import write_classification
from .detection import write_detection

__all__ = ["write_classification", "write_detection"]
