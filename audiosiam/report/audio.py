"""What a report's audio players play: short sounds inside the page, long ones beside it.

The size rule: a clip or stretch of at most :data:`EMBED_SECONDS` (30 s) is embedded in the page as
Ogg Vorbis (mono, the file's own rate up to 48 kHz; about 10 kB per second), as long as the audio
embedded so far stays under :data:`EMBED_BUDGET_BYTES` (48 MB). Anything longer, or past the budget, is
linked by its path relative to the report's folder (keep the report beside the audio when moving it), a
stretch of it with a ``#t=start,end`` media fragment. An event of ``find`` is a stretch of a long
recording: cut with :data:`CONTEXT_SECONDS` of sound on each side, it is embedded by the same rule.
Embedding keeps the page one file that plays anywhere; linking keeps an hour of audio out of it.
(A linked stretch must seek in the file: Chromium cannot seek in some FLAC files, e.g. without a seek
table, and such a player then fails; embedded stretches have no such limit.)
"""

from __future__ import annotations

import base64
import io
import os
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

#: The longest clip or stretch, in seconds, whose audio is put inside the page.
EMBED_SECONDS = 30.0
#: The most audio, in bytes, that one page holds; sounds past it are linked.
EMBED_BUDGET_BYTES = 48 * 2**20
#: Seconds of the recording played on each side of a found event.
CONTEXT_SECONDS = 0.5
_MAX_RATE = 48000  # Vorbis at higher rates only makes the page larger


@dataclass(frozen=True)
class Sound:
    """One audio player's source.

    Attributes:
        src (str): a ``data:`` URI or a relative URL (escaped for a URL; the template escapes it for HTML).
        start (float): where the player's audio begins in the file, in seconds.
        end (float): where it ends.
        embedded (bool): ``src`` holds the audio itself.
    """

    src: str
    start: float
    end: float
    embedded: bool


class AudioSources:
    """Makes :class:`Sound`\\ s for one report by the module's size rule, counting what it embeds.

    Args:
        report (str or os.PathLike): the report file; links are relative to its folder.
        embed_seconds (float, optional): the longest sound embedded. Default: :data:`EMBED_SECONDS`.
        budget_bytes (int, optional): embedded audio in all, after which sounds are linked.
            Default: :data:`EMBED_BUDGET_BYTES`.
    """

    def __init__(
        self,
        report: str | os.PathLike,
        *,
        embed_seconds: float = EMBED_SECONDS,
        budget_bytes: int = EMBED_BUDGET_BYTES,
    ):
        self.folder = Path(report).resolve().parent
        self.embed_seconds = embed_seconds
        self.budget_bytes = budget_bytes
        self.embedded_bytes = 0

    def clip(self, path: str | os.PathLike) -> Sound | None:
        """The whole of a file.

        Args:
            path (str or os.PathLike): the audio file.

        Returns:
            Sound or None: the player's source; ``None`` where the file cannot be read (the page then shows
            its name only).
        """
        try:
            duration = _duration(path)
        except Exception:  # noqa: BLE001 - a file gone since the command read it: no player, no failure
            return None
        return self.stretch(path, 0.0, duration, context=0.0, duration=duration)

    def stretch(
        self,
        path: str | os.PathLike,
        start: float,
        end: float,
        *,
        context: float = CONTEXT_SECONDS,
        duration: float | None = None,
    ) -> Sound | None:
        """``start`` to ``end`` seconds of a file and ``context`` seconds either side (within the file).

        Args:
            path (str or os.PathLike): the audio file.
            start (float): the stretch's start in seconds.
            end (float): its end.
            context (float, optional): seconds added on each side. Default: :data:`CONTEXT_SECONDS`.
            duration (float or None, optional): the file's length, when known. Default: ``None``.

        Returns:
            Sound or None: the player's source; ``None`` where the file cannot be read.
        """
        try:
            duration = _duration(path) if duration is None else duration
        except Exception:  # noqa: BLE001
            return None
        begin, finish = max(0.0, start - context), min(duration, end + context)
        if finish - begin <= self.embed_seconds and self.embedded_bytes < self.budget_bytes:
            try:
                data = encode_vorbis(path, begin, finish)
            except Exception as exc:  # noqa: BLE001 - the link below still plays it
                print(f"audiosiam report: {path}: not embedded ({exc}); linked instead", file=sys.stderr)
            else:
                self.embedded_bytes += len(data)
                return Sound("data:audio/ogg;base64," + base64.b64encode(data).decode("ascii"), begin, finish, True)
        src = self.link(path)
        if begin > 0 or finish < duration:
            src += f"#t={begin:.3f},{finish:.3f}"
        return Sound(src, begin, finish, False)

    def link(self, path: str | os.PathLike) -> str:
        """A file as a URL relative to the report's folder, every character that means something in a URL
        or in HTML percent-encoded (an absolute ``file:`` URL where no relative path exists).

        Args:
            path (str or os.PathLike): the file.

        Returns:
            str: the URL.
        """
        target = Path(path).resolve()
        try:
            relative = os.path.relpath(target, self.folder)
        except ValueError:  # another drive (Windows)
            return target.as_uri()
        return urllib.request.pathname2url(relative) if os.sep != "/" else urllib.parse.quote(relative)


def _duration(path: str | os.PathLike) -> float:
    import soundfile as sf

    info = sf.info(os.fspath(path))
    return info.frames / info.samplerate


def encode_vorbis(path: str | os.PathLike, start: float, end: float) -> bytes:
    """Seconds ``start`` to ``end`` of a file as a mono Ogg Vorbis file's bytes.

    Args:
        path (str or os.PathLike): any file soundfile reads.
        start (float): seconds from the file's start.
        end (float): the end, in seconds.

    Returns:
        bytes: the encoded file.
    """
    import soundfile as sf

    with sf.SoundFile(os.fspath(path)) as f:
        rate = f.samplerate
        first = int(round(start * rate))
        f.seek(first)
        samples = f.read(max(1, int(round(end * rate)) - first), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if rate > _MAX_RATE:
        import torch

        from ..io.resampling import resample

        mono, rate = resample(torch.from_numpy(mono), rate, _MAX_RATE).numpy(), _MAX_RATE
    buffer = io.BytesIO()
    sf.write(buffer, mono, rate, format="OGG", subtype="VORBIS")
    return buffer.getvalue()
