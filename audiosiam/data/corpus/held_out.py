"""What is never trained on (the validation suite, fixed by name), and the kinds of sound trained across
packages (builder.py, step 4 and ``--kinds``)."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from audiosiam.data.corpus.catalogue import (
    HELD_OUT_CATEGORIES,
    HELD_OUT_FRACTION,
    HELD_OUT_KITS,
    HELD_OUT_SOURCES,
    HELD_OUT_SYNONYMS,
    KIND_MIN_CLIPS,
    KIND_MIN_PACKAGES,
    SPOKEN_ACKNOWLEDGEMENT,
    TRAIN_KINDS,
)
from audiosiam.data.corpus.clips import Clip

_SPOKEN_ACK = re.compile(SPOKEN_ACKNOWLEDGEMENT)


def _hashed_out(name: str) -> bool:
    return int(hashlib.sha1(f"audiosiam-heldout:{name}".encode()).hexdigest()[:8], 16) < HELD_OUT_FRACTION * 2**32


def _matched_name(clip: Clip) -> str:
    """What the kinds of sound are matched on: the clip's folder and file name, lower case."""
    return "/".join(Path(clip.original).parts[-2:]).lower()


def held_out(clips: list[Clip], *, strict: bool = False) -> None:
    """Mark the validation suite: every environmental clip of a kind in :data:`HELD_OUT_CATEGORIES`,
    whole sources of :data:`HELD_OUT_SOURCES`, the drum kits of
    :data:`HELD_OUT_KITS`, and every labelled class with 4+ clips whose ``source/label`` hashes into the
    held-out fifth. Fixed by name, not by chance: the same classes stay out of every run, for good.
    ``strict`` also marks ``near_held_out`` the other environmental clips of those kinds
    (:data:`HELD_OUT_SYNONYMS`), which are then trained on by no one and tested on by no one."""
    counts = defaultdict(int)
    for c in clips:
        if c.label:
            counts[(c.source, c.label)] += 1
    for c in clips:
        if c.domain == "environmental":
            name = _matched_name(c)
            c.category = next((k for k, rx in HELD_OUT_CATEGORIES.items() if re.search(rx, name)), "")
            if strict and not c.category:
                c.near_held_out = next((k for k, rx in HELD_OUT_SYNONYMS.items() if re.search(rx, name)), "")
        if c.category:
            c.held_out = True
        elif c.source in HELD_OUT_SOURCES:
            c.held_out = True
        elif c.source == "hydrogen-drumkits":
            c.held_out = c.group in HELD_OUT_KITS
        elif c.label and counts[(c.source, c.label)] >= 4 and _hashed_out(f"{c.source}/{c.label}"):
            c.held_out = True


def trained_on(clips: list[Clip]) -> list[Clip]:
    """The clips a model may train on: neither held out nor a held-out kind under another name."""
    return [c for c in clips if not c.held_out and not c.near_held_out]


def kinds_of(clips: list[Clip]) -> list[Clip]:
    """The kinds of :data:`TRAIN_KINDS` as classes across packages: a copy of every environmental clip that
    may be trained on (:func:`trained_on`) and whose folder and file name match a kind, labelled by the kind
    and grouped by its package; kinds with clips of fewer than :data:`KIND_MIN_PACKAGES` packages or fewer
    than :data:`KIND_MIN_CLIPS` clips are left out."""
    found = defaultdict(list)
    for c in trained_on(clips):  # held-out kinds under their own names are held out already
        if c.domain != "environmental":
            continue
        name = _matched_name(c)
        if _SPOKEN_ACK.search(name) or any(re.search(rx, name) for rx in HELD_OUT_SYNONYMS.values()):
            continue  # a voice, not the sound; or a held-out kind under a name the strict rule was not asked for
        kind = next((k for k, rx in TRAIN_KINDS.items() if re.search(rx, name)), "")
        if kind:
            found[kind].append(replace(c, label=kind, group=c.source))
    return [
        c
        for kind, mine in found.items()
        if len(mine) >= KIND_MIN_CLIPS and len({c.source for c in mine}) >= KIND_MIN_PACKAGES
        for c in mine
    ]
