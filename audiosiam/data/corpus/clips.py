"""A clip of the corpus as the builder carries it from unpacking to the manifests, and the files it takes."""

from __future__ import annotations

from dataclasses import dataclass

#: The file suffixes taken as audio.
AUDIO = {".ogg", ".oga", ".wav", ".flac", ".aiff", ".aif", ".opus", ".mp3"}


@dataclass
class Clip:
    source: str  # package
    domain: str
    original: str  # the file as unpacked
    label: str  # class within the source; "" for label-free
    group: str = ""  # who or what recorded it, where known (speaker, drum kit)
    path: str = ""  # the cleaned FLAC
    seconds: float = 0.0
    held_out: bool = False
    category: str = ""  # a held-out kind of sound (HELD_OUT_CATEGORIES), if it is one
    near_held_out: str = ""  # a held-out kind under another name (HELD_OUT_SYNONYMS), with --strict-held-out
