"""Which files of a package are sounds and how they are labelled: the rules of ``catalogue.toml`` (``variants``,
``free`` and the packages' own layouts)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from audiosiam.data.corpus.catalogue import Package
from audiosiam.data.corpus.clips import AUDIO, Clip

_NUMBER = re.compile(r"[-_ .]*\d+[a-z]?$")


def variant_key(relative: Path) -> str:
    """``sounds/wolf-hit-2.ogg`` -> ``sounds/wolf-hit``: the folder and the name without its trailing number."""
    stem = _NUMBER.sub("", relative.stem.lower()) or relative.stem.lower()
    parent = relative.parent.as_posix()
    return stem if parent == "." else f"{parent}/{stem}"


def audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO and p.is_file())


def label_package(package: Package, root: Path) -> list[Clip]:
    base = root / package.name
    clips: list[Clip] = []
    for sub in package.roots:
        folder = base / sub
        if not folder.is_dir():
            raise SystemExit(f"{package.name}: expected folder {sub} is missing; the package layout changed")
        for path in audio_files(folder):
            relative = path.relative_to(folder)
            if any(re.search(pattern, relative.as_posix()) for pattern in package.skip):
                continue
            label, group = _label(package, relative, path)
            if label is None:
                continue
            clips.append(Clip(package.name, package.domain, str(path), label, group))
    if package.rule == "hydrogen":
        clips = _hydrogen(package, base / package.roots[0])
    # A "class" of one clip is label-free.
    counts = defaultdict(int)
    for c in clips:
        counts[c.label] += 1
    for c in clips:
        if c.label and counts[c.label] < 2:
            c.label = ""
    return clips


#: The labelling rules a catalogue entry may name (``rule = ...``): how :func:`_label` names its files' classes.
RULES = frozenset({"variants", "free", "tuxpaint", "megaglest", "bucklespring", "sonicpi", "asterisk", "hydrogen"})


def _label(package: Package, relative: Path, path: Path) -> tuple[str | None, str]:
    rule, name = package.rule, relative.stem
    if rule == "free":
        return "", ""
    if rule == "variants":
        return variant_key(relative), ""
    if rule == "tuxpaint":
        # <stamp>.ogg is the stamp's sound effect; <stamp>_<lang>.ogg and <stamp>_desc[_<lang>].ogg are its
        # spoken name and description (speech, label-free, but a separate domain from the effects).
        images = {p.stem for p in path.parent.iterdir() if p.suffix.lower() in (".png", ".svg")}
        if name in images:
            return variant_key(relative), ""
        return None, ""  # spoken names/descriptions: covered by the speech sources; not used here
    if rule == "megaglest":
        # unit voices ("ack", "select") are speech in one actor's voice: label-free; sound events are classes
        key = variant_key(relative)
        if re.search(r"(ack|select|voice)$", key):
            return "", ""
        return re.sub(r"^.*/units/([^/]+)/sounds", r"\1", key), ""
    if rule == "bucklespring":
        # <scancode>-<0|1>.wav: 0 the key going down, 1 coming up: two classes of many keys
        return ("key_press" if name.endswith("-0") else "key_release"), name.split("-")[0]
    if rule == "sonicpi":
        family = name.split("_")[0]
        return (family if family in ("bd", "sn", "tabla", "drum", "elec", "perc", "guit", "bass") else ""), ""
    if rule == "asterisk":
        return "", ""
    if rule == "hydrogen":
        return None, ""  # labelled from the kits' drumkit.xml instead
    raise ValueError(f"unknown rule {rule}")


def _hydrogen(package: Package, folder: Path) -> list[Clip]:
    """Instruments of each kit from its drumkit.xml: the velocity layers of one drum are one class."""
    clips = []
    for xml in sorted(folder.glob("*/drumkit.xml")):
        kit = xml.parent.name
        tree = ET.parse(xml).getroot()
        ns = tree.tag.split("}")[0] + "}" if tree.tag.startswith("{") else ""
        for instrument in tree.iter(ns + "instrument"):
            name = (instrument.findtext(ns + "name") or "").strip()
            files = [xml.parent / f.text for f in instrument.iter(ns + "filename") if f.text]
            for f in files:
                if name and f.is_file() and f.suffix.lower() in AUDIO:
                    clips.append(Clip(package.name, package.domain, str(f), f"{kit}/{name}", kit))
    return clips
