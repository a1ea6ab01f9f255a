#!/usr/bin/env python3
"""Assemble the training data of the bundled default model, reproducibly.

    python scripts/fetch_training_data.py [--cache ~/.cache/audiosiam/training-data] [--shared-data ../shared/data]

1. Downloads three Debian packages of real recordings with ``apt-get download`` (no installation) and
   unpacks them with ``dpkg -x``: klettres-data (letters and syllables spoken in ~20 languages),
   ktuberling-data (object names spoken in ~26 languages), hydrogen-drumkits (14 sampled drum kits).
2. Writes one CSV manifest per source into the cache folder, and ``recipe.json`` for ``audiosiam train``:
   labelled sources (speech_commands_dev words, hedgewars phrases, FSDD digits 0-4, drum instruments),
   unlabelled sources (every clip its own class: spoken letters, syllables and object names, and drum
   instruments with a single sample), and background noise.
3. Holds out, so that the evaluation and the examples stay honest: FSDD digits 5-9 (the published few-shot
   bar), the speech_commands words "yes" and "no", and the whole BJA_Pacific drum kit (the last two are
   the example classes in examples/).

Licenses and attribution of every source: audiosiam/assets/DATA_SOURCES.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

PACKAGES = ("klettres-data", "ktuberling-data", "hydrogen-drumkits")
HELD_OUT_KIT = "BJA_Pacific"
HELD_OUT_WORDS = ("yes", "no")
TRAIN_DIGITS = ("0", "1", "2", "3", "4")
AUDIO = {".ogg", ".wav", ".flac", ".aiff", ".aif", ".opus"}


def fetch(cache: Path) -> Path:
    """Download and unpack the packages once; returns the unpacked root."""
    debs, root = cache / "debs", cache / "unpacked"
    debs.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        marker = root / f".{package}.done"
        if marker.exists():
            continue
        if not list(debs.glob(f"{package}_*.deb")):
            subprocess.run(["apt-get", "download", package], cwd=debs, check=True)
        deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        marker.touch()
    return root


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    print(f"{path.name}: {len(rows)} clips")
    return path


def spoken_rows(root: Path) -> tuple[list[list], list[list]]:
    """klettres: share/klettres/<lang>/<alpha|syllab>/<sound>.ogg; ktuberling: share/ktuberling/sounds/<lang>/<word>.ogg."""
    letters = [[str(p), p.parts[-3], p.parts[-2], p.stem] for p in sorted((root / "usr/share/klettres").glob("*/*/*"))
               if p.suffix.lower() in AUDIO]
    words = [[str(p), p.parts[-2], p.stem] for p in sorted((root / "usr/share/ktuberling/sounds").glob("*/*"))
             if p.suffix.lower() in AUDIO]
    return letters, words


def drum_rows(root: Path) -> tuple[list[list], list[list], list[list]]:
    """Instruments of each kit from its drumkit.xml: (multi-sample rows, single-sample rows, held-out kit rows)."""
    multi, single, held = [], [], []
    for xml in sorted((root / "usr/share/hydrogen/data/drumkits").glob("*/drumkit.xml")):
        kit = xml.parent.name
        tree = ET.parse(xml).getroot()
        ns = tree.tag.split("}")[0] + "}" if tree.tag.startswith("{") else ""
        for instrument in tree.iter(ns + "instrument"):
            name = (instrument.findtext(ns + "name") or "").strip()
            files = [xml.parent / f.text for f in instrument.iter(ns + "filename") if f.text]
            files = [f for f in files if f.is_file() and f.suffix.lower() in AUDIO]
            if not name or not files:
                continue
            rows = [[str(f), kit, name, i] for i, f in enumerate(files)]
            if kit == HELD_OUT_KIT:
                held += rows
            elif len(files) >= 2:
                multi += rows
            else:
                single += rows
    return multi, single, held


def build(cache: Path, shared: Path) -> Path:
    root = fetch(cache)
    letters, words = spoken_rows(root)
    multi, single, held = drum_rows(root)
    write_csv(cache / "klettres.csv", ["path", "language", "kind", "sound"], letters)
    write_csv(cache / "ktuberling.csv", ["path", "language", "word"], words)
    write_csv(cache / "drums.csv", ["path", "kit", "instrument", "layer"], multi)
    write_csv(cache / "drums_single.csv", ["path", "kit", "instrument", "layer"], single)
    write_csv(cache / "drums_heldout.csv", ["path", "kit", "instrument", "layer"], held)
    words_kept = [w for w in ("down", "go", "left", "off", "on", "right", "stop", "up") if w not in HELD_OUT_WORDS]
    recipe = {
        "sources": [
            {"name": "speech_commands", "path": str(shared / "speech_commands_dev/manifest.csv"),
             "label_columns": ["word"], "where": {"word": words_kept}, "group_column": "speaker"},
            {"name": "hedgewars", "path": str(shared / "hedgewars_voices/manifest.csv"),
             "label_columns": ["phrase"], "group_column": "voice"},
            {"name": "fsdd", "path": str(shared / "fsdd/manifest.csv"), "label_columns": ["digit"],
             "where": {"digit": list(TRAIN_DIGITS)}, "group_column": "speaker"},
            {"name": "drums", "path": str(cache / "drums.csv"), "label_columns": ["kit", "instrument"]},
        ],
        "unlabelled": [
            {"name": "klettres", "path": str(cache / "klettres.csv"), "label_columns": ["path"]},
            {"name": "ktuberling", "path": str(cache / "ktuberling.csv"), "label_columns": ["path"]},
            {"name": "drums_single", "path": str(cache / "drums_single.csv"), "label_columns": ["path"]},
        ],
        "background": [str(shared / "speech_commands_dev/noise")],
        "held_out": {"fsdd_digits": ["5", "6", "7", "8", "9"], "speech_commands_words": list(HELD_OUT_WORDS),
                     "drum_kit": HELD_OUT_KIT},
    }
    path = cache / "recipe.json"
    path.write_text(json.dumps(recipe, indent=2))
    print(f"recipe: {path}")
    return path


def main(argv=None) -> int:
    repo = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/audiosiam/training-data")
    parser.add_argument("--shared-data", type=Path, default=repo.parent / "shared" / "data")
    args = parser.parse_args(argv)
    if not args.shared_data.is_dir():
        print(f"{args.shared_data}: not found; pass --shared-data", file=sys.stderr)
        return 1
    args.cache.mkdir(parents=True, exist_ok=True)
    build(args.cache, args.shared_data.resolve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
