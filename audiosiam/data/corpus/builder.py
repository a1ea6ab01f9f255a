"""Assemble the training corpus of the bundled models and its held-out validation suite, reproducibly.

    python scripts/fetch_training_data.py [--cache ~/.cache/audiosiam/training-data] [--shared-data ../shared/data]
                                          [--with-added [DATE]] [--strict-held-out] [--kinds]

One command, on a fresh machine with the package registries reachable:

1. **Fetch.** Downloads the Debian packages of the catalogue (``catalogue.toml``) with ``apt-get download``
   (no installation) and unpacks each with ``dpkg -x`` into its own folder (0 A.D.'s audio is inside a zip:
   only ``audio/`` is extracted). Each step leaves a marker, so a rerun redoes only what did not finish.
2. **Label.** Every package has a rule (``catalogue.toml``) that says which of its files are sounds (music
   tracks, synthesised waveforms and UI bleeps of some packages are left out) and how they are labelled:
   recordings of one event in several variants (``dog1.ogg``, ``dog2.ogg``; ``wolf-hit-1.ogg``...; the
   layers of one drum) form a **class**; everything else is **label-free** (each clip its own class, two
   crops and augmentations of it are the positive pair).
3. **Clean.** Every clip is decoded once, mixed to mono, resampled to 16 kHz, its leading and trailing
   silence (40 dB below its peak) cut, capped at 30 s, and written as FLAC under ``corpus/`` (training then
   reads small 16 kHz files, and no random crop is digital padding). Refused: unreadable or silent files,
   and clips with under 0.15 s of sound left. **Duplicates**: a clip whose cleaned samples are identical to
   an earlier clip's (byte-identical files shipped twice, the same sound under two names), or nearly so
   (lengths within 2% and a time-aligned 16-band x 48-step log-mel fingerprint with cosine >= 0.98:
   re-encodings, gain changes, the same take trimmed differently), is kept once;
   a near-duplicate of a held-out clip is removed from training, so no held-out sound leaks in.
4. **Hold out.** A fixed, documented part of every domain is never trained on (:func:`held_out`): whole
   sources and every class whose name hashes into the held-out fifth. They form the validation suite of
   ``benchmarks/generality.py``.
5. Writes ``manifests/*.csv`` (path, label, source, domain, group), ``recipe.json`` for ``audiosiam train``
   (with the recordings of ``../shared/data`` as before), ``speaker_recipe.json`` for the ``speaker``
   preset (its recipe plus one voice per language of KLettres, KTuberling and Asterisk), and
   ``survey.md``: what each package holds (files, kept, duplicates, minutes, classes).

Packages marked ``added`` joined the list after the bundled models were trained: they are fetched and used
only with ``--with-added`` (the corpus for the next models), so that without it the command rebuilds the
corpus the bundled models were trained on; ``--with-added DATE`` takes only those added on or before DATE
(the corpus a model of that time was trained on: the model card says which). ``--strict-held-out`` (also
for the next models) leaves out of training the held-out kinds of sound found under other names
(:data:`HELD_OUT_SYNONYMS`: 0 A.D.'s cattle, a creek, lightning...), which the bundled models trained on;
the validation suite is the same with or without it. ``--kinds`` (also for the next models) adds
``manifests/train_kinds.csv`` and its source ``sound_kinds`` to the recipe: kinds of sound that several
packages recorded (:data:`TRAIN_KINDS`: horse, footsteps, door, gun...), each a class across packages, so
that two packages' recordings of one kind are a positive pair (:func:`kinds_of`; the survey lists them).
Their clips also stay in their variant classes.

Licenses and attribution of every source: audiosiam/assets/DATA_SOURCES.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import zipfile
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path

from audiosiam.data.corpus.catalogue import (
    ADDED,
    FREE_WEIGHTS,
    HELD_OUT_CATEGORIES,
    HELD_OUT_KITS,
    HELD_OUT_SOURCES,
    HELD_OUT_SYNONYMS,
    HELD_OUT_WORDS,
    KIND_WEIGHT,
    PACKAGES,
    SOURCE_WEIGHTS,
    TRAIN_DIGITS,
    Package,
)
from audiosiam.data.corpus.cleaning import clean
from audiosiam.data.corpus.clips import Clip
from audiosiam.data.corpus.held_out import held_out, kinds_of, trained_on
from audiosiam.data.corpus.labelling import label_package
from audiosiam.data.locations import shared_data, source_checkout, training_data
from audiosiam.errors import AudiosiamError


# ---------------------------------------------------------------------------------------------- fetching
def fetch(cache: Path, packages: tuple[Package, ...] = PACKAGES) -> Path:
    """Download and unpack every package once (markers make reruns cheap); returns the unpacked root."""
    debs, root = cache / "debs", cache / "unpacked"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [
        p.name for p in packages if not list(debs.glob(f"{p.name}_*.deb")) and not (root / f".{p.name}.done").exists()
    ]
    if missing:
        print(f"downloading {len(missing)} packages: {' '.join(missing)}")
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)
    for package in packages:
        marker = root / f".{package.name}.done"
        if marker.exists():
            continue
        deb = sorted(debs.glob(f"{package.name}_*.deb"))[-1]
        target = root / package.name
        target.mkdir(parents=True, exist_ok=True)  # dpkg -x makes the target but not its parents
        subprocess.run(["dpkg", "-x", str(deb), str(target)], check=True)
        if package.archive:
            extract_archives(package, target)
        marker.touch()
    return root


def extract_archives(package: Package, target: Path) -> None:
    """Extract the members under ``package.members`` of every archive matching ``package.archive`` into
    ``target``, in sorted order (a later archive's file replaces an earlier one's), and delete the archives."""
    archives = sorted(target.glob(package.archive))
    if not archives:
        raise SystemExit(f"{package.name}: no archive matches {package.archive}; the package layout changed")
    for archive in archives:
        with zipfile.ZipFile(archive) as z:
            z.extractall(target, [n for n in z.namelist() if n.startswith(package.members)])
        archive.unlink()


# ---------------------------------------------------------------------------------------------- writing
def write_csv(path: Path, clips: list[Clip], *, qualify: bool = True) -> Path:
    """One row per clip; labels are ``source/label`` (``qualify``), so equal names in two packages stay two
    classes, or the bare label (the held-out kinds of sound, which span packages)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "source", "domain", "group", "seconds", "original"])
        for c in clips:
            writer.writerow(
                [
                    c.path,
                    (f"{c.source}/{c.label}" if qualify else c.label) if c.label else "",
                    c.source,
                    c.domain,
                    c.group,
                    f"{c.seconds:.3f}",
                    c.original,
                ]
            )
    tmp.replace(path)
    return path


def survey(
    cache: Path,
    found: dict[str, int],
    clips: list[Clip],
    drops: dict[str, dict[str, int]],
    packages=PACKAGES,
    kinds: list[Clip] = (),
) -> str:
    lines = [
        "| package | domain | recorded | files used | kept | dropped | minutes | classes (clips) | label-free "
        "| held out classes (clips) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_source = defaultdict(list)
    for c in clips:
        by_source[c.source].append(c)
    for p in packages:
        mine = by_source[p.name]
        train = trained_on(mine)
        held = [c for c in mine if c.held_out]
        classes = {c.label for c in train if c.label}
        held_classes = {c.label for c in held if c.label}
        lines.append(
            f"| {p.name} | {p.domain} | {p.recorded} | {found.get(p.name, 0)} | {len(mine)} | "
            f"{sum(drops.get(p.name, {}).values())} | {sum(c.seconds for c in mine) / 60:.1f} | "
            f"{len(classes)} ({sum(1 for c in train if c.label)}) | {sum(1 for c in train if not c.label)} | "
            f"{len(held_classes)} ({sum(1 for c in held if c.label)}) |"
        )
    if kinds:
        lines += ["", "| kind across packages (`--kinds`) | clips | packages |", "|---|---:|---|"]
        by_kind = defaultdict(list)
        for c in kinds:
            by_kind[c.label].append(c.source)
        for kind, sources in sorted(by_kind.items()):
            per = ", ".join(f"{p} {n}" for p, n in sorted(Counter(sources).items(), key=lambda x: -x[1]))
            lines.append(f"| {kind} | {len(sources)} | {per} |")
    text = "\n".join(lines)
    (cache / "survey.md").write_text(text + "\n")
    return text


def added_packages(with_added: bool | str) -> tuple[Package, ...]:
    """The catalogue's packages for a build: those of the bundled models, and the ones added later when
    ``with_added`` is True, or those added on or before it when it is a date (``YYYY-MM-DD``)."""
    if isinstance(with_added, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", with_added):
        raise AudiosiamError(f"--with-added {with_added!r}: expected a date, YYYY-MM-DD")
    return tuple(
        p
        for p in PACKAGES
        if not p.added or with_added is True or (isinstance(with_added, str) and p.added <= with_added)
    )


def build(
    cache: Path,
    shared: Path,
    workers: int,
    with_added: bool | str = False,
    strict_held_out: bool = False,
    kinds: bool = False,
) -> Path:
    packages = added_packages(with_added)
    root = fetch(cache, packages)
    clips, found = [], {}
    for package in packages:
        mine = label_package(package, root)
        found[package.name] = len(mine)
        clips += mine
    held_out(clips, strict=strict_held_out)
    drops = clean(clips, cache, workers)
    drops_total = defaultdict(dict)
    for (source, reason), n in drops.items():
        drops_total[source][reason] = n
    # a class whose duplicates were dropped (or whose other clips were left out) down to one clip becomes label-free
    counts = defaultdict(int)
    for c in clips:
        if c.label:
            counts[(c.source, c.label, c.held_out, c.near_held_out)] += 1
    for c in clips:
        if c.label and counts[(c.source, c.label, c.held_out, c.near_held_out)] < 2:
            c.label = ""
    for source, reasons in sorted(drops_total.items()):
        print(f"{source}: dropped " + ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items())))
    manifests = cache / "manifests"
    near = [c for c in clips if c.near_held_out]
    if near:
        kinds = ", ".join(f"{k} {sum(c.near_held_out == k for c in near)}" for k in HELD_OUT_SYNONYMS)
        print(f"left out of training as held-out kinds under other names: {len(near)} clips ({kinds})")
    train = trained_on(clips)
    held = [c for c in clips if c.held_out]
    labelled = {d: [c for c in train if c.label and c.domain == d] for d in ("environmental", "music", "speech")}
    free = {d: [c for c in train if not c.label and c.domain == d] for d in ("environmental", "music", "speech")}
    for d in labelled:
        write_csv(manifests / f"train_{d}.csv", labelled[d])
        write_csv(manifests / f"free_{d}.csv", free[d])
    across = kinds_of(clips) if kinds else []
    if across:
        write_csv(manifests / "train_kinds.csv", across, qualify=False)
    for c in held:
        if c.category:
            c.label, c.group = c.category, c.source  # the kind of sound; recorded by this package
    for suffix, mine in (
        ("", [c for c in held if c.source not in ADDED]),
        ("_added", [c for c in held if c.source in ADDED]),
    ):
        if suffix and not mine:  # without --with-added
            continue
        for d in ("environmental", "music"):
            rows = [c for c in mine if c.domain == d and c.label and not c.category]
            if rows or not suffix:
                write_csv(manifests / f"heldout_{d}{suffix}.csv", rows)
        write_csv(manifests / f"heldout_categories{suffix}.csv", [c for c in mine if c.category], qualify=False)
    # voices for the speaker preset: one recorded voice per language in each of these packages
    voices = []
    for c in train:
        parts = Path(c.original).parts
        if c.source.startswith("asterisk-core-sounds-"):
            language = c.source.split("-")[3]
        elif c.source == "klettres-data":
            language = parts[parts.index("klettres") + 1]
        elif c.source == "ktuberling-data":
            language = parts[parts.index("sounds") + 1]
        else:
            continue
        voices.append(
            Clip(c.source, c.domain, c.original, "", f"{c.source.split('-')[0]}/{language}", c.path, c.seconds)
        )
    write_csv(manifests / "voices.csv", voices)
    print(survey(cache, found, clips, drops_total, packages, across))
    words_kept = [w for w in ("down", "go", "left", "off", "on", "right", "stop", "up") if w not in HELD_OUT_WORDS]
    shared_sources = [
        {
            "name": "speech_commands",
            "path": str(shared / "speech_commands_dev/manifest.csv"),
            "label_columns": ["word"],
            "where": {"word": words_kept},
            "group_column": "speaker",
        },
        {
            "name": "hedgewars",
            "path": str(shared / "hedgewars_voices/manifest.csv"),
            "label_columns": ["phrase"],
            "group_column": "voice",
        },
        {
            "name": "fsdd",
            "path": str(shared / "fsdd/manifest.csv"),
            "label_columns": ["digit"],
            "where": {"digit": list(TRAIN_DIGITS)},
            "group_column": "speaker",
        },
    ]
    # the first packages' only: the soundscapes of earlier results are laid over these; held-out kinds under
    # other names stay in (noise, not a class: HELD_OUT_SYNONYMS), so the soundscapes do not change
    ambience = [
        c for c in clips if not c.held_out and re.search(r"/(ambient|ambience)/", c.original) and c.source not in ADDED
    ]
    write_csv(manifests / "background_ambience.csv", ambience)
    recipe = {
        "comment": "weight: a source's relative share of each batch's classes (labelled and label-free apart); "
        "environmental sounds are weighted up: they are what the earlier default lacked",
        "sources": shared_sources
        + [
            {
                "name": f"sounds_{d}",
                "path": str(manifests / f"train_{d}.csv"),
                "label_columns": ["label"],
                "group_column": "group",
                "weight": SOURCE_WEIGHTS.get(d, 1.0),
            }
            for d in ("environmental", "music")
            if labelled[d]
        ]
        + (
            [
                {
                    "name": "sound_kinds",
                    "path": str(manifests / "train_kinds.csv"),
                    "label_columns": ["label"],
                    "group_column": "group",
                    "weight": KIND_WEIGHT,
                }
            ]
            if across
            else []
        ),
        "unlabelled": [
            {
                "name": f"free_{d}",
                "path": str(manifests / f"free_{d}.csv"),
                "label_columns": ["path"],
                "weight": FREE_WEIGHTS.get(d, 1.0),
            }
            for d in ("environmental", "music", "speech")
            if free[d]
        ],
        "background": [str(shared / "speech_commands_dev/noise"), str(manifests / "background_ambience.csv")],
        "held_out": {
            "fsdd_digits": ["5", "6", "7", "8", "9"],
            "speech_commands_words": list(HELD_OUT_WORDS),
            "drum_kits": list(HELD_OUT_KITS),
            "sources": list(HELD_OUT_SOURCES),
            "categories": {k: rx for k, rx in HELD_OUT_CATEGORIES.items()},
            **({"category_synonyms": dict(HELD_OUT_SYNONYMS)} if strict_held_out else {}),
            "classes": sorted({f"{c.source}/{c.label}" for c in held if c.label and not c.category}),
        },
    }
    # the training parts of the multi-source sets (audiosiam.data.splits decides which clips only validate)
    from audiosiam.data.splits import training_sources

    multi_source = (shared / "arabic_speech_commands").is_dir() and (shared / "karoryfer_instruments").is_dir()
    if multi_source:
        recipe["sources"] += [asdict(s) for s in training_sources(shared)]
    path = cache / "recipe.json"
    path.write_text(json.dumps(recipe, indent=2))
    base = _recipes()
    speaker = json.loads((base / "speaker.json").read_text())
    for s in speaker.get("sources", []):
        s["path"] = str((base / s["path"]).resolve()) if not Path(s["path"]).is_absolute() else s["path"]
    speaker["background"] = [str((base / b).resolve()) for b in speaker.get("background", [])]
    speaker["sources"].append({"name": "voices", "path": str(manifests / "voices.csv"), "label_columns": ["group"]})
    if multi_source:
        speaker["sources"] += [asdict(s) for s in training_sources(shared, speaker=True)]
    (cache / "speaker_recipe.json").write_text(json.dumps(speaker, indent=2))
    print(f"recipe: {path}\nspeaker recipe: {cache / 'speaker_recipe.json'}")
    return path


def _recipes() -> Path:
    """The source checkout's ``benchmarks/recipes`` (the speaker preset's recipe the builder extends)."""
    checkout = source_checkout()
    if checkout is None:
        raise AudiosiamError(
            "building the training corpus needs audiosiam's source checkout (its benchmarks/recipes); "
            "run scripts/fetch_training_data.py from a clone of the repository"
        )
    return checkout / "benchmarks" / "recipes"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--cache",
        type=Path,
        default=training_data(),
        help="where packages, cleaned clips and manifests go (default: %(default)s)",
    )
    parser.add_argument(
        "--shared-data",
        type=Path,
        default=shared_data(),
        help="the project's shared recordings (default: %(default)s)",
    )
    parser.add_argument("--workers", type=int, default=2, help="decoding processes (default: %(default)s)")
    parser.add_argument(
        "--with-added",
        nargs="?",
        const=True,
        default=False,
        metavar="DATE",
        help="also the packages added after the bundled models were trained (the corpus for the next ones); "
        "with a date (YYYY-MM-DD), only those added on or before it",
    )
    parser.add_argument(
        "--strict-held-out",
        action="store_true",
        help="also leave out of training the held-out kinds of sound under other names (cattle, eagle, "
        "creek...: HELD_OUT_SYNONYMS), which the bundled models trained on",
    )
    parser.add_argument(
        "--kinds",
        action="store_true",
        help="also a source of kinds of sound recorded by several packages, as classes across packages "
        "(TRAIN_KINDS: horse, footsteps, door...; for the next models)",
    )
    args = parser.parse_args(argv)
    if not args.shared_data.is_dir():
        print(f"{args.shared_data}: not found; pass --shared-data", file=sys.stderr)
        return 1
    args.cache.mkdir(parents=True, exist_ok=True)
    build(
        args.cache,
        args.shared_data.resolve(),
        args.workers,
        with_added=args.with_added,
        strict_held_out=args.strict_held_out,
        kinds=args.kinds,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
