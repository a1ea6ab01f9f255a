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
import hashlib
import json
import os
import re
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from audiosiam.data.corpus.catalogue import (
    ADDED,
    FREE_WEIGHTS,
    HELD_OUT_CATEGORIES,
    HELD_OUT_FRACTION,
    HELD_OUT_KITS,
    HELD_OUT_SOURCES,
    HELD_OUT_SYNONYMS,
    HELD_OUT_WORDS,
    KIND_MIN_CLIPS,
    KIND_MIN_PACKAGES,
    KIND_WEIGHT,
    PACKAGES,
    SOURCE_WEIGHTS,
    SPOKEN_ACKNOWLEDGEMENT,
    TRAIN_DIGITS,
    TRAIN_KINDS,
    Package,
)
from audiosiam.data.locations import shared_data, source_checkout, training_data
from audiosiam.errors import AudiosiamError

AUDIO = {".ogg", ".oga", ".wav", ".flac", ".aiff", ".aif", ".opus", ".mp3"}
RATE = 16000
MAX_SECONDS = 30.0
MIN_SOUND_SECONDS = 0.15
TRIM_DB = 40.0
NEAR_DUPLICATE_COSINE = 0.98
_SPOKEN_ACK = re.compile(SPOKEN_ACKNOWLEDGEMENT)


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


# ---------------------------------------------------------------------------------------------- labelling
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


# ---------------------------------------------------------------------------------------------- cleaning
def _clean_one(job: tuple[str, str]) -> tuple[str, float, str, list[float] | None]:
    """Decode, mono, 16 kHz, trim, cap, write FLAC. Returns (out, seconds, content hash, fingerprint) or a reason."""
    import numpy as np
    import soundfile as sf
    import torch

    from audiosiam.functional import log_mel_spectrogram
    from audiosiam.io import load_audio

    src, out = job
    try:
        wave = load_audio(src, RATE, trim_silence=True, trim_db=TRIM_DB)
    except AudiosiamError as exc:
        return out, 0.0, f"refused: {exc}", None
    wave = wave[: int(MAX_SECONDS * RATE)]
    seconds = wave.numel() / RATE
    if seconds < MIN_SOUND_SECONDS:
        return out, seconds, "refused: under 0.15 s of sound", None
    peak = float(wave.abs().max())
    digest = hashlib.sha1(np.round(wave.numpy() / peak * 2**15).astype(np.int16).tobytes()).hexdigest()
    # time-aligned fingerprint: 16 mel bands x 48 time steps of the whole clip, dB, mean removed
    mel = log_mel_spectrogram(wave, RATE, n_mels=16, normalize=None)
    mel = torch.nn.functional.interpolate(mel[None], size=48, mode="linear", align_corners=False)[0]
    fingerprint = (mel - mel.mean()).flatten().tolist()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    # a name no other process uses: a second writer of the same output must not rename our file away
    tmp = f"{out}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp.flac"
    sf.write(tmp, np.clip(wave.numpy(), -1.0, 1.0), RATE, subtype="PCM_16")
    Path(tmp).replace(out)
    return out, seconds, digest, fingerprint


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # one decoding process per core; more threads each would fight for them


class _InProcess:
    """The executor interface, run here (one worker: no processes to start)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, items, chunksize=1):
        return map(fn, items)


def clean(clips: list[Clip], cache: Path, workers: int = 2) -> dict[tuple[str, str], int]:
    """Clean every clip (cached by output path), drop refused ones and duplicates; returns the drops counted
    by (source, reason)."""
    import numpy as np

    corpus = cache / "corpus"
    jobs = []
    for c in clips:
        digest = hashlib.sha1(c.original.encode()).hexdigest()[:10]
        c.path = str(corpus / c.source / f"{Path(c.original).stem[:60]}_{digest}.flac")
        jobs.append((c.original, c.path))
    index_path = cache / "clean_index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    # one job per output: a catalogue can list one file twice (a drum kit naming a sample in two layers)
    unique = dict((out, (src, out)) for src, out in jobs)
    todo = [
        j
        for out, j in unique.items()
        if out not in index or (not index[out][1].startswith("refused") and not Path(out).exists())
    ]
    if todo:
        from tqdm import tqdm

        with ProcessPoolExecutor(workers, initializer=_one_thread) if workers > 1 else _InProcess() as pool:
            for out, seconds, digest, fingerprint in tqdm(
                pool.map(_clean_one, todo, chunksize=16), total=len(todo), desc="cleaning clips", unit="clip"
            ):
                index[out] = [seconds, digest, fingerprint]
        tmp = index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(index))
        tmp.replace(index_path)
    drops = defaultdict(int)
    kept: list[Clip] = []
    seen: dict[str, Clip] = {}
    # held-out clips first, so that a duplicate pair spanning the split is removed from training; packages
    # added later after the first ones, so that their duplicates leave the earlier manifests as they were
    order = sorted(clips, key=lambda c: (not c.held_out, c.source in ADDED, c.source, c.original))
    for c in order:
        seconds, digest, fingerprint = index[c.path]
        if digest.startswith("refused"):
            drops[(c.source, "refused")] += 1
            continue
        if digest in seen:
            drops[(c.source, "exact duplicate")] += 1
            continue
        seen[digest] = c
        c.seconds = seconds
        kept.append(c)
    # near-duplicates: cosine of the time-aligned log-mel fingerprints, lengths within 2%
    prints = np.array([index[c.path][2] for c in kept], dtype=np.float32)
    prints /= np.linalg.norm(prints, axis=1, keepdims=True).clip(1e-9)
    lengths = np.array([c.seconds for c in kept])
    drop = np.zeros(len(kept), dtype=bool)
    for start in range(0, len(kept), 2048):
        sims = prints[start : start + 2048] @ prints.T
        for r, i in enumerate(range(start, min(start + 2048, len(kept)))):
            if drop[i]:
                continue
            earlier = np.nonzero(
                (sims[r, :i] >= NEAR_DUPLICATE_COSINE)
                & ~drop[:i]
                & (np.abs(lengths[:i] - lengths[i]) <= 0.02 * lengths[i])
            )[0]
            if len(earlier):
                drop[i] = True
    for c, d in zip(kept, drop):
        if d:
            drops[(c.source, "near duplicate")] += 1
    clips[:] = [c for c, d in zip(kept, drop) if not d]
    return dict(drops)


# ---------------------------------------------------------------------------------------------- held out
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
