"""Pictures inside a report: the project's plots (:mod:`audiosiam.plotting`) as ``data:`` URIs."""

from __future__ import annotations

import base64
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable


def png_uri(data: bytes) -> str:
    """PNG bytes as a ``data:`` URI for an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def plotted(draw: Callable[[Path], object], what: str) -> str | None:
    """A plotting function's picture as a ``data:`` URI.

    Args:
        draw (Callable[[Path], object]): writes a PNG to the path it is given (e.g. a ``plotting`` function
            with its other arguments bound).
        what (str): names the picture in the warning printed if drawing fails.

    Returns:
        str or None: the URI; ``None`` (after a warning on stderr) where the picture could not be drawn, so
        that a report still shows its tables.
    """
    with tempfile.TemporaryDirectory(prefix="audiosiam-report-") as folder:
        path = Path(folder) / "picture.png"
        try:
            draw(path)
            return png_uri(path.read_bytes())
        except Exception as exc:  # noqa: BLE001 - a picture is an extra; the table and players still matter
            print(f"audiosiam report: {what} not drawn ({type(exc).__name__}: {exc})", file=sys.stderr)
            return None


def spectrogram_uri(
    path: str | os.PathLike,
    start: float | None = None,
    end: float | None = None,
    *,
    columns: int = 160,
    n_mels: int = 40,
) -> str | None:
    """A small log-mel spectrogram of a file, or of ``start`` to ``end`` seconds of it
    (``audiosiam.plotting.overview_spectrogram``), as a PNG ``data:`` URI, a pixel per column and band.

    Args:
        path (str or os.PathLike): the audio file.
        start (float or None, optional): the stretch's start in seconds; ``None``: the whole file.
            Default: ``None``.
        end (float or None, optional): its end; used with ``start``. Default: ``None``.
        columns (int, optional): at most this many time columns. Default: ``160``.
        n_mels (int, optional): mel bands (the picture's height in pixels). Default: ``40``.

    Returns:
        str or None: the URI; ``None`` where the file cannot be read.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import image

    from ..plotting import overview_spectrogram

    try:
        if start is None:
            db, _ = overview_spectrogram(path, columns=columns, n_mels=n_mels)
        else:
            import soundfile as sf

            rate = sf.info(os.fspath(path)).samplerate
            wave, _ = sf.read(os.fspath(path), start=int(start * rate), stop=int(end * rate), always_2d=True)
            db, _ = overview_spectrogram(wave.mean(1), rate, columns=columns, n_mels=n_mels)
    except Exception:  # noqa: BLE001 - a file gone since the command read it
        return None
    buffer = io.BytesIO()
    image.imsave(buffer, db, cmap="magma", origin="lower", format="png")
    return png_uri(buffer.getvalue())
