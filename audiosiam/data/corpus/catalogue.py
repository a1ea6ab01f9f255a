"""The corpus catalogue (``catalogue.toml``) as typed Python: the packages, the held-out kinds and sources,
the kinds trained across packages and the recipe's weights. The data lives in the TOML file, so adding a
package or a held-out name is an edit to data that the builder's tests then check."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Package:
    """A Debian package and how its files become clips.

    ``roots``: folders (relative to the unpacked package) whose audio files are taken, recursively.
    ``rule``: ``"variants"`` (files whose names differ only by a trailing number are one class),
    ``"free"`` (label-free), or a custom rule's name.
    ``skip``: regular expressions on the path below the root; matching files are left out.
    ``archive``: a glob (below the unpacked package) of zip archives holding the sounds (game data files:
    ``.zip``, ``.pk3``, ``.wz``); only their members under ``members`` are extracted, in sorted order (a later
    archive's file replaces an earlier one's, as the games load them), and the archives are deleted.
    ``added``: the date a package joined the corpus, for those after the bundled models were trained: used
    only with ``--with-added``, and then their held-out clips go to manifests of their own
    (:func:`audiosiam.data.corpus.builder.build`), so the validation suite of earlier results stays as it was.
    """

    name: str
    domain: str  # environmental | music | speech
    roots: tuple[str, ...]
    rule: str = "variants"
    skip: tuple[str, ...] = ()
    recorded: str = "recorded"
    archive: str = ""
    members: str = ""
    added: str = ""

    @classmethod
    def from_table(cls, table: dict) -> Package:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in table.items()})


def _read() -> dict:
    return tomllib.loads(resources.files(__package__).joinpath("catalogue.toml").read_text(encoding="utf-8"))


_DATA = _read()

PACKAGES: tuple[Package, ...] = tuple(Package.from_table(t) for t in _DATA["package"])
ADDED = frozenset(p.name for p in PACKAGES if p.added)

SOURCE_WEIGHTS: dict[str, float] = _DATA["weights"]["labelled"]  # shares of the labelled draws
FREE_WEIGHTS: dict[str, float] = _DATA["weights"]["label_free"]  # shares of the label-free draws
KIND_WEIGHT: float = _DATA["weights"]["kinds"]

TRAIN_DIGITS: tuple[str, ...] = tuple(_DATA["shared"]["train_digits"])
HELD_OUT_WORDS: tuple[str, ...] = tuple(_DATA["shared"]["held_out_words"])

HELD_OUT_FRACTION: float = _DATA["held_out"]["fraction"]
HELD_OUT_SOURCES: tuple[str, ...] = tuple(_DATA["held_out"]["sources"])
HELD_OUT_KITS: tuple[str, ...] = tuple(_DATA["held_out"]["drum_kits"])
HELD_OUT_CATEGORIES: dict[str, str] = _DATA["held_out"]["kinds"]
HELD_OUT_SYNONYMS: dict[str, str] = _DATA["held_out"]["synonyms"]

TRAIN_KINDS: dict[str, str] = _DATA["train_kinds"]["patterns"]
KIND_MIN_PACKAGES: int = _DATA["train_kinds"]["min_packages"]
KIND_MIN_CLIPS: int = _DATA["train_kinds"]["min_clips"]
SPOKEN_ACKNOWLEDGEMENT: str = _DATA["train_kinds"]["spoken_acknowledgement"]
