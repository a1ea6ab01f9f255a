"""The corpus builder's rules (audiosiam/data/corpus/builder.py) on a small fake package tree: labels from
variant names, held-out kinds of sound, silence trimming and duplicate removal."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiosiam.data.corpus import builder, cleaning, labelling
from audiosiam.errors import AudiosiamError

from audio_fixtures import sweep, write


def test_variant_key_strips_trailing_numbers_only():
    assert labelling.variant_key(Path("sounds/wolf-hit-2.ogg")) == "sounds/wolf-hit"
    assert labelling.variant_key(Path("bird1_00.ogg")) == "bird1"
    assert labelling.variant_key(Path("archer_attack12.wav")) == "archer_attack"
    assert labelling.variant_key(Path("bow-miss.ogg")) == "bow-miss"
    assert labelling.variant_key(Path("7.ogg")) == "7"  # a name that is only a number stays itself


def tone(freq, seconds=0.6, pad=0.0, gain=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    x = gain * (0.4 * np.sin(2 * np.pi * freq * t) * np.hanning(len(t)) + 0.01 * rng.standard_normal(len(t)))
    silence = np.zeros(int(16000 * pad))
    return np.concatenate([silence, x, silence]).astype(np.float32)


def test_labels_held_out_kinds_trimming_and_duplicates(tmp_path):
    package = builder.Package("fakegame-data", "environmental", ("sounds",))
    root = tmp_path / "unpacked"
    sounds = root / "fakegame-data" / "sounds"
    write(sounds / "saw-1.wav", tone(300, pad=1.0, seed=1))  # padded with a second of silence each side
    write(sounds / "saw-2.wav", tone(420, seed=2))
    write(sounds / "saw-3.wav", tone(300, pad=1.0, seed=1))  # byte-identical to saw-1
    write(sounds / "saw-4.wav", tone(300, pad=1.0, gain=0.5, seed=1))  # saw-1 at -6 dB: a near duplicate
    write(sounds / "bird_1.wav", sweep(0.8))
    write(sounds / "bird_2.wav", sweep(0.5))
    write(sounds / "lonely.wav", tone(900, seed=5))
    write(sounds / "quiet.wav", np.zeros(16000, dtype=np.float32))  # digital silence: refused
    clips = builder.label_package(package, root)
    labels = {Path(c.original).name: c.label for c in clips}
    assert labels["saw-1.wav"] == labels["saw-2.wav"] == "saw" and labels["bird_1.wav"] == "bird"
    assert labels["lonely.wav"] == ""  # a class of one clip is label-free
    builder.held_out(clips)
    held = {Path(c.original).name for c in clips if c.held_out}
    assert held == {"bird_1.wav", "bird_2.wav"} and {c.category for c in clips if c.held_out} == {"bird"}
    drops = builder.clean(clips, tmp_path / "cache", workers=1)
    kept = {Path(c.original).name: c for c in clips}
    assert set(kept) == {"saw-1.wav", "saw-2.wav", "bird_1.wav", "bird_2.wav", "lonely.wav"}
    assert drops == {
        ("fakegame-data", "exact duplicate"): 1,
        ("fakegame-data", "near duplicate"): 1,
        ("fakegame-data", "refused"): 1,
    }
    trimmed, rate = sf.read(kept["saw-1.wav"].path)
    assert rate == 16000 and len(trimmed) < 0.8 * 16000  # the silence padding is gone
    assert kept["saw-1.wav"].seconds == pytest.approx(len(trimmed) / 16000, abs=1e-3)
    # a second run reuses the cleaned files and gives the same answer
    again = builder.label_package(package, root)
    builder.held_out(again)
    assert builder.clean(again, tmp_path / "cache", workers=1) == drops


def test_a_file_listed_twice_is_cleaned_once_by_parallel_workers(tmp_path):
    # a drum kit's drumkit.xml can name one sample in two layers: two clips, one output file
    write(tmp_path / "kit" / "ride_04.flac", tone(500, seed=3))
    write(tmp_path / "kit" / "snare.flac", tone(700, seed=4))
    clips = [
        builder.Clip("hydrogen-drumkits", "music", str(tmp_path / "kit" / name), f"Kit/{label}", "Kit")
        for name, label in (("ride_04.flac", "ride"), ("ride_04.flac", "ride"), ("snare.flac", "snare"))
        for _ in range(8)  # enough copies that, one job per clip, both workers would write them at once
    ]
    builder.held_out(clips)
    drops = builder.clean(clips, tmp_path / "cache", workers=2)
    assert sorted(Path(c.original).name for c in clips) == ["ride_04.flac", "snare.flac"]
    assert drops == {("hydrogen-drumkits", "exact duplicate"): 22}
    assert not list((tmp_path / "cache").rglob("*.tmp*"))


def test_sounds_inside_game_archives_are_extracted_later_archives_winning(tmp_path):
    import zipfile

    package = builder.Package("arena-data", "environmental", ("sound",), archive="games/*/*.pk3", members="sound/")
    target = tmp_path / "arena-data"
    for folder, name, payload in (("base", "pak0.pk3", b"old"), ("base", "pak1.pk3", b"new")):
        (target / "games" / folder).mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target / "games" / folder / name, "w") as z:
            z.writestr("sound/weapons/shot1.wav", payload)
            z.writestr("maps/level.bsp", b"not a sound")
    builder.extract_archives(package, target)
    assert (target / "sound/weapons/shot1.wav").read_bytes() == b"new"  # pak1 loads after pak0
    assert not (target / "maps").exists() and not list(target.rglob("*.pk3"))
    with pytest.raises(SystemExit, match="no archive matches"):
        builder.extract_archives(package, tmp_path / "empty")


def test_a_package_added_later_never_takes_a_clip_from_the_earlier_manifests(tmp_path, monkeypatch):
    root = tmp_path / "unpacked"
    for name in ("zeta-data", "alpha-data"):  # alpha sorts first, but was added later
        write(root / name / "sounds" / "saw-1.wav", tone(300, seed=1))  # the same sound in both packages
        write(root / name / "sounds" / "saw-2.wav", tone(420, seed=2))
    for module in (builder, cleaning):  # the manifests and the order duplicates are kept in
        monkeypatch.setattr(module, "ADDED", {"alpha-data"})
    clips = [
        c
        for name in ("zeta-data", "alpha-data")
        for c in builder.label_package(builder.Package(name, "environmental", ("sounds",)), root)
    ]
    builder.held_out(clips)
    drops = builder.clean(clips, tmp_path / "cache", workers=1)
    assert drops == {("alpha-data", "exact duplicate"): 2}
    assert {c.source for c in clips} == {"zeta-data"}


def test_strict_held_out_leaves_the_held_out_kinds_under_other_names_out_of_training_and_of_the_suite():
    # names as the packages ship them: the kinds the bundled models were found to have trained on
    near = {
        "0ad-data/audio/actor/fauna/animal/cattle_01.ogg": "cow",
        "tuxpaint/stamps/animals/mammals/bovines/bison.ogg": "cow",
        "megaglest/units/thunderbird/sounds/eagle_ack1.wav": "bird",
        "0ad-data/audio/actor/fauna/animal/peacock_call_01.ogg": "bird",
        "redeclipse/data/sounds/ambience/creek.ogg": "water",
        "0ad-data/audio/ambient/weather/rain_11.ogg": "water",
        "redeclipse/data/sounds/ambience/morph/stormrain.ogg": "water",
        "supertux2/sounds/lightning.wav": "thunder",
        "supertuxkart/data/sfx/fireworks_show.ogg": "explosion",
        "redeclipse/data/sounds/weapons/grenade/primary.ogg": "explosion",
    }
    unrelated = [
        "supertuxkart/data/sfx/terrain_grass.ogg",  # "rain" inside a word
        "megaglest/sounds/train_whistle.wav",
        "tuxpaint/stamps/aquatic/sea_lion.ogg",
        "0ad-data/audio/actor/fauna/animal/camel_10.ogg",
        "wesnoth/sounds/oxygen-tank.ogg",
    ]
    held = ["0ad-data/audio/actor/fauna/animal/cow_01.ogg", "wesnoth/sounds/water-splash.ogg"]

    def clips():
        return [
            builder.Clip("somegame-data", "environmental", f"/unpacked/{name}", "x")
            for name in [*near, *unrelated, *held]
        ]

    strict = clips()
    builder.held_out(strict, strict=True)
    by_name = {c.original.removeprefix("/unpacked/"): c for c in strict}
    assert {n: by_name[n].near_held_out for n in near} == near
    assert not any(by_name[n].held_out or by_name[n].category for n in near)  # not in the suite either
    assert all(not by_name[n].near_held_out and not by_name[n].held_out for n in unrelated)
    assert all(by_name[n].held_out and by_name[n].category and not by_name[n].near_held_out for n in held)
    assert {c.original.removeprefix("/unpacked/") for c in builder.trained_on(strict)} == set(unrelated)
    # without the flag the rule is the one the bundled models were trained under
    plain = clips()
    builder.held_out(plain)
    assert not any(c.near_held_out for c in plain)
    assert len(builder.trained_on(plain)) == len(near) + len(unrelated)
    assert [(c.held_out, c.category) for c in plain] == [(c.held_out, c.category) for c in strict]


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs Debian's dpkg-deb")
def test_fetch_unpacks_into_a_fresh_cache_and_a_rerun_does_nothing(tmp_path):
    # a real (tiny) package, already downloaded: fetch must unpack it into a cache with no unpacked/ yet
    tree = tmp_path / "build" / "alpha-data"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        "Package: alpha-data\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: test\n"
    )
    write(tree / "usr/share/alpha/sounds/dog1.wav", sweep(0.3))
    cache = tmp_path / "cache"
    (cache / "debs").mkdir(parents=True)
    deb = cache / "debs" / "alpha-data_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--build", str(tree), str(deb)], check=True, capture_output=True)
    package = builder.Package("alpha-data", "environmental", ("usr/share/alpha/sounds",))
    root = builder.fetch(cache, (package,))
    assert (root / "alpha-data/usr/share/alpha/sounds/dog1.wav").is_file()
    assert (root / ".alpha-data.done").exists()
    deb.unlink()  # a rerun trusts the marker: nothing to download or unpack
    assert builder.fetch(cache, (package,)) == root


def test_kinds_across_packages_take_only_trainable_clips_of_kinds_that_several_packages_recorded():
    def clip(original, label="", **kw):
        source = original.split("/")[0]
        return builder.Clip(source, "environmental", original, label, path=f"/c/{original}", **kw)

    clips = [
        clip("0ad-data/audio/actor/fauna/animal/horse_attack1.ogg", "horse_attack"),
        clip("0ad-data/audio/actor/fauna/animal/horse_attack2.ogg", "horse_attack"),
        clip("wesnoth/sounds/horse-canter.wav"),
        clip("tuxpaint/stamps/animals/equines/donkey.ogg"),
        clip("0ad-data/audio/attack/weapon/bow_attack_1.ogg"),  # "bow" before an underscore
        clip("wesnoth/sounds/crossbow-fire.ogg"),  # a bow's shot, not fire
        clip("openarena/sound/weapons/bfg/bfg_fire.wav"),  # a gun's shot, not fire
        clip("megaglest/sounds/archer_ack1.wav"),  # a unit's spoken "yes?", not a bow
        clip("wesnoth/sounds/bow.ogg"),
        clip("wesnoth/sounds/bow-miss.ogg"),
        clip("tuxpaint/stamps/aquatic/sea_lion.ogg"),  # not a big cat
        clip("0ad-data/audio/actor/fauna/animal/lion_attack1.ogg"),  # big cats: one package, too few clips
        clip("megaglest/units/thunderbird/sounds/eagle_attack1.wav"),  # a held-out kind (bird), even unasked
        clip("wesnoth/sounds/horse-hit.ogg", held_out=True),  # the validation suite's
        clip("redeclipse/data/sounds/ambience/wind.ogg"),  # wind: one package only
    ]
    kinds = builder.kinds_of(clips)
    got = {c.original.split("/")[-1]: c for c in kinds}
    assert {c.label for c in kinds} == {"horse", "bow_arrow"}
    assert set(got) == {
        "horse_attack1.ogg", "horse_attack2.ogg", "horse-canter.wav", "donkey.ogg",
        "bow_attack_1.ogg", "crossbow-fire.ogg", "bow.ogg", "bow-miss.ogg",
    }  # fmt: skip
    assert (
        got["donkey.ogg"].group == "tuxpaint"
        and got["donkey.ogg"].path == "/c/tuxpaint/stamps/animals/equines/donkey.ogg"
    )
    assert clips[0].label == "horse_attack"  # the corpus's own clips keep their classes


def test_build_with_kinds_writes_their_manifest_and_recipe_source(tmp_path, monkeypatch):
    # two tiny packages, already unpacked (their markers written), one kind recorded by both
    cache = tmp_path / "cache"
    packages = (
        builder.Package("alpha-data", "environmental", ("sounds",)),
        builder.Package("zeta-data", "environmental", ("sounds",)),
    )
    names = {
        "alpha-data": ("horse_neigh.wav", "horse-canter.wav", "clock.wav"),
        "zeta-data": ("donkey.wav", "horse.wav"),
    }
    for n, (package, files) in enumerate(names.items()):
        for m, name in enumerate(files):
            write(cache / "unpacked" / package / "sounds" / name, tone(150 + 90 * (3 * n + m), seed=3 * n + m))
        (cache / "unpacked" / f".{package}.done").touch()
    monkeypatch.setattr(builder, "PACKAGES", packages)
    for module in (builder, cleaning):
        monkeypatch.setattr(module, "ADDED", set())
    recipe = json.loads(builder.build(cache, tmp_path / "shared", workers=1, kinds=True).read_text())
    kinds = next(s for s in recipe["sources"] if s["name"] == "sound_kinds")
    assert kinds["weight"] == builder.KIND_WEIGHT and kinds["group_column"] == "group"
    with open(kinds["path"]) as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["label"], r["group"]) for r in rows} == {("horse", "alpha-data"), ("horse", "zeta-data")}
    assert len(rows) == 4 and "kind across packages" in (cache / "survey.md").read_text()
    # without --kinds: no such source, the corpus the bundled models were trained on
    recipe = json.loads(builder.build(cache, tmp_path / "shared", workers=1).read_text())
    assert "sound_kinds" not in {s["name"] for s in recipe["sources"]}


def test_with_added_takes_the_packages_added_up_to_a_date(monkeypatch):
    packages = (
        builder.Package("base-data", "environmental", ("s",)),
        builder.Package("early-data", "environmental", ("s",), added="2026-12-01"),
        builder.Package("late-data", "environmental", ("s",), added="2026-12-07"),
    )
    monkeypatch.setattr(builder, "PACKAGES", packages)

    def names(with_added):
        return [p.name for p in builder.added_packages(with_added)]

    assert names(False) == ["base-data"]
    assert names(True) == ["base-data", "early-data", "late-data"]
    assert names("2026-12-01") == ["base-data", "early-data"]  # the corpus of a model trained then
    assert names("2026-11-30") == ["base-data"]
    with pytest.raises(AudiosiamError, match="expected a date"):
        builder.added_packages("December")


def test_the_catalogue_is_well_formed():
    """catalogue.toml read as the builder sees it: every pattern compiles, every package names a known rule
    and domain, no package twice, and the held-out kinds never overlap the kinds trained across packages."""
    import re

    from audiosiam.data.corpus import catalogue

    names = [p.name for p in catalogue.PACKAGES]
    assert len(names) == len(set(names)) and "0ad-data" in names and "berusky2-data" in catalogue.ADDED
    for p in catalogue.PACKAGES:
        assert p.domain in {"environmental", "music", "speech"} and p.roots, p.name
        assert p.rule in labelling.RULES, p.name
        for rx in p.skip:
            re.compile(rx)
        assert not p.added or re.fullmatch(r"\d{4}-\d{2}-\d{2}", p.added), p.name
    for table in (catalogue.HELD_OUT_CATEGORIES, catalogue.HELD_OUT_SYNONYMS, catalogue.TRAIN_KINDS):
        for rx in table.values():
            re.compile(rx)
    assert set(catalogue.HELD_OUT_SYNONYMS) <= set(catalogue.HELD_OUT_CATEGORIES)
    assert not set(catalogue.HELD_OUT_CATEGORIES) & set(catalogue.TRAIN_KINDS)
    assert 0 < catalogue.HELD_OUT_FRACTION < 1 and catalogue.HELD_OUT_SOURCES == ("widelands-data",)
    # Berusky 2's Czech names of held-out kinds stay out of training under --strict-held-out
    for name, kind in (("sound/ptak6.wav", "bird"), ("sound/hrom2.wav", "thunder"), ("sound/voda1.wav", "water")):
        assert re.search(catalogue.HELD_OUT_SYNONYMS[kind], name), name
