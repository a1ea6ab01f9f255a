"""Datasets from folders and manifests, skip policy, cache, and the PK / pair / episodic samplers."""

from __future__ import annotations

import csv
import os
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from audiosiam.data import AudioClipDataset, EpisodicSampler, PairSampler, PKSampler, make_loader
from audiosiam.data.cache import WaveformCache
from audiosiam.data.datasets import combine_datasets
from audiosiam.errors import AudioLoadError, NoAudioFilesError, ParameterError

from audio_fixtures import noise, sine, write


@pytest.fixture
def tree(tmp_path):
    """root/<class>/<speaker>/<n>.wav: 3 classes x 2 speakers x 2 clips."""
    root = tmp_path / "root"
    for c, freq in enumerate([300, 900, 2700]):
        for s in ("ann", "bob"):
            for n in range(2):
                write(root / f"class{c}" / s / f"{n}.wav", sine(freq * (1 + 0.01 * n), 0.3 + 0.2 * n))
    return root


def test_folder_dataset_labels_groups_and_fixed_length(tree):
    ds = AudioClipDataset.from_folder(tree, clip_seconds=0.4, crop="center")
    assert ds.classes == ["class0", "class1", "class2"]
    assert Counter(ds.labels) == {0: 4, 1: 4, 2: 4}
    assert set(ds.groups) == {"ann", "bob"}
    wave, label = ds[0]
    assert wave.shape == (6400,) and label == 0
    assert "12 clips in 3 classes" in ds.summary(durations=True)


def test_manifest_dataset_with_filter_and_joined_labels(tree, tmp_path):
    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "sound", "speaker"])
        for p in sorted(tree.rglob("*.wav")):
            w.writerow([os.path.relpath(p, tmp_path), p.parts[-3], p.parts[-2]])
    ds = AudioClipDataset.from_manifest(
        manifest, label_column=["sound", "speaker"], where={"speaker": ["ann"]}, group_column="speaker"
    )
    assert ds.classes == ["class0|ann", "class1|ann", "class2|ann"]
    assert len(ds) == 6 and set(ds.groups) == {"ann"}
    with pytest.raises(ParameterError, match=r"column\(s\) \['digit'\] not found"):
        AudioClipDataset.from_manifest(manifest, label_column="digit")
    rest = AudioClipDataset.from_manifest(
        manifest,
        label_column="sound",
        where={"sound": ["class0", "class1"]},
        exclude={"speaker": ["ann"]},
        group_column="speaker",
    )
    assert rest.classes == ["class0", "class1"] and len(rest) == 4 and set(rest.groups) == {"bob"}
    with pytest.raises(NoAudioFilesError, match="exclude"):
        AudioClipDataset.from_manifest(manifest, label_column="sound", exclude={"speaker": ["ann", "bob"]})


def test_skip_policy_warns_once_and_reports(tree):
    (tree / "class1" / "ann" / "0.wav").write_text("broken")
    strict = AudioClipDataset.from_folder(tree)
    with pytest.raises(AudioLoadError, match="0.wav"):
        strict.validate()
    lenient = AudioClipDataset.from_folder(tree, on_error="skip")
    with pytest.warns(UserWarning) as record:
        lenient.validate()
    messages = [str(w.message) for w in record]
    assert sum("skipping unreadable clip" in m for m in messages) == 1
    assert any("1 of 12 clips were unreadable" in m for m in messages)
    assert len(lenient) == 11 and len(lenient.skipped) == 1
    assert "1 unreadable clips skipped" in lenient.summary()


def test_empty_inputs_are_explained(tmp_path):
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(NoAudioFilesError, match="no audio files"), pytest.warns(UserWarning, match="cls: class folder"):
        AudioClipDataset.from_folder(tmp_path / "empty")  # the empty class is named, then the empty dataset refused


def test_crops_are_reproducible_per_epoch(tree):
    ds = AudioClipDataset.from_folder(tree, clip_seconds=0.2, crop="random", seed=3)
    idx = 3  # a 0.5 s clip, so the 0.2 s crop can move
    a, b = ds[idx][0], ds[idx][0]
    assert torch.equal(a, b)
    changed = False
    for epoch in range(1, 6):
        ds.set_epoch(epoch)
        changed |= not torch.equal(ds[idx][0], a)
    assert changed


def test_disk_cache_hits_and_invalidates(tmp_path):
    path = write(tmp_path / "a.wav", sine(440, 0.5))
    cache = WaveformCache(tmp_path / "cache")
    assert cache.get(str(path), 16000) is None
    cache.put(str(path), 16000, torch.ones(5))
    assert torch.equal(cache.get(str(path), 16000), torch.ones(5))
    assert cache.get(str(path), 8000) is None  # other setting
    time.sleep(0.01)
    write(path, noise(0.5))  # the file changed
    assert cache.get(str(path), 16000) is None


def test_pk_batches(tree):
    labels = AudioClipDataset.from_folder(tree).labels
    sampler = PKSampler(labels, classes_per_batch=2, clips_per_class=3, batches=5, seed=1)
    batches = list(sampler)
    assert len(batches) == 5
    for batch in batches:
        counts = Counter(labels[i] for i in batch)
        assert len(counts) == 2 and set(counts.values()) == {3}
    assert batches == list(PKSampler(labels, 2, 3, batches=5, seed=1))
    with pytest.warns(DeprecationWarning, match=r"PKSampler\(p=\.\.\., k=\.\.\.\) is now"):
        assert batches == list(PKSampler(labels, p=2, k=3, batches=5, seed=1))  # the old names, one release
    sampler.set_epoch(1)
    assert list(sampler) != batches
    with pytest.raises(ParameterError, match="two classes"):
        PKSampler([0, 1, 2], 2, 2)
    with pytest.raises(ParameterError, match="clips_per_class=1: need at least 1 class and 2 clips"):
        PKSampler(labels, 2, 1)


def test_pair_batches_are_balanced():
    labels = [i % 4 for i in range(40)]
    flat = next(iter(PairSampler(labels, batch_size=10, seed=0)))
    same = [labels[a] == labels[b] for a, b in zip(flat[::2], flat[1::2])]
    assert sum(same) == 5 and len(same) == 10


def test_episodes_respect_ways_shots_and_groups():
    labels = [c for c in range(6) for _ in range(10)]
    groups = [f"s{i % 5}" for i in range(60)]
    sampler = EpisodicSampler(labels, n_way=5, k_shot=2, n_query=3, episodes=20, groups=groups, seed=0)
    for support, query in sampler:
        assert len(support) == 10 and len(query) == 15
        for way in range(5):
            s_cls = {labels[i] for i in support[2 * way : 2 * way + 2]}
            q = query[3 * way : 3 * way + 3]
            assert len(s_cls) == 1 and {labels[i] for i in q} == s_cls
            assert not {groups[i] for i in q} & {groups[i] for i in support[2 * way : 2 * way + 2]}
    with pytest.raises(ParameterError, match="only 6 classes"):
        EpisodicSampler(labels, n_way=7, k_shot=1, n_query=1, episodes=1)


def test_query_groups_hold_one_group_for_queries():
    labels = [c for c in range(6) for _ in range(12)]
    groups = [f"s{i % 4}" for i in range(72)]
    support_groups = set()
    for cross in (False, True):
        sampler = EpisodicSampler(
            labels,
            n_way=5,
            k_shot=1,
            n_query=2,
            episodes=50,
            groups=groups,
            cross_group=cross,
            query_groups=["s3"],
            seed=0,
        )
        seen = set()
        for support, query in sampler:
            assert {groups[i] for i in query} == {"s3"} and not set(support) & set(query)
            seen |= {groups[i] for i in support}
        support_groups.add(frozenset(seen))
    # support comes from any group, the held-out one too, unless queries must be cross-group
    assert support_groups == {frozenset({"s0", "s1", "s2", "s3"}), frozenset({"s0", "s1", "s2"})}
    # 5-shot cross-group: the support is drawn outside the query group, not by luck (here 0.3 per try)
    for support, query in EpisodicSampler(labels, 5, 5, 2, 100, groups=groups, query_groups=["s3"], seed=1):
        assert "s3" not in {groups[i] for i in support} and {groups[i] for i in query} == {"s3"}
    with pytest.raises(ParameterError, match=r"\['s9'\] not among"):
        EpisodicSampler(labels, 5, 1, 1, 1, groups=groups, query_groups=["s9"])
    with pytest.raises(ParameterError, match="needs groups"):
        EpisodicSampler(labels, 5, 1, 1, 1, query_groups=["s3"])
    with pytest.raises(ParameterError, match="inside query_groups"):  # 3 s3 clips per class, 4 queries wanted
        next(iter(EpisodicSampler(labels, 5, 1, 4, 1, groups=groups, cross_group=False, query_groups=["s3"])))


def test_combined_sources_keep_equal_names_apart_and_load_in_batches(tree):
    a = AudioClipDataset.from_folder(tree, clip_seconds=0.25)
    combined = combine_datasets({"x": a, "y": AudioClipDataset.from_folder(tree)})
    assert len(combined.classes) == 6 and combined.classes[0] == "x/class0"
    loader = make_loader(combined, PKSampler(combined.labels, 3, 2, batches=2))
    waves, labels = next(iter(loader))
    assert waves.shape == (6, 4000) and labels.shape == (6,)


@pytest.mark.needs_shared_data
def test_real_manifest(shared_data):
    ds = AudioClipDataset.from_manifest(
        shared_data / "fsdd" / "manifest.csv",
        label_column="digit",
        where={"digit": ["7"]},
        group_column="speaker",
        clip_seconds=1.0,
    )
    assert ds.classes == ["7"] and len(ds) == 300 and len(set(ds.groups)) == 6
    wave, _ = ds[0]
    assert wave.shape == (16000,) and torch.isfinite(wave).all()


def test_one_folder_reader_for_training_and_support(tmp_path):
    # hidden folders skipped, stray top-level files warned about, second level recorded as the group;
    # the --support reader of classify/enroll is this same function with two classes required
    from audiosiam.commands._common import read_support_folder
    from audiosiam.data.items import folder_items

    from audio_fixtures import sine, write

    for path in ("dog/a.wav", "dog/rec2/b.wav", "bell/c.wav", ".trash/d.wav", "stray.wav"):
        write(tmp_path / path, sine())
    with pytest.warns(UserWarning, match="directly in the folder are ignored"):
        items = folder_items(tmp_path)
    assert sorted((Path(i.path).name, i.label, i.group) for i in items) == [
        ("a.wav", "dog", ""),
        ("b.wav", "dog", "rec2"),
        ("c.wav", "bell", ""),
    ]
    with pytest.warns(UserWarning, match="directly in the folder"):
        paths, labels = read_support_folder(tmp_path)
    assert sorted(zip([p.name for p in paths], labels)) == [("a.wav", "dog"), ("b.wav", "dog"), ("c.wav", "bell")]


def test_a_symlink_loop_in_a_class_folder_is_not_a_class(tmp_path):
    from audiosiam.data.items import folder_items

    from audio_fixtures import sine, write

    for path in ("dog/a.wav", "bell/b.wav"):
        write(tmp_path / path, sine())
    (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "dog_again").symlink_to(tmp_path / "dog", target_is_directory=True)
    with pytest.warns(UserWarning, match="a folder already read"):
        items = folder_items(tmp_path)
    assert sorted(i.label for i in items) == ["bell", "dog"]


def test_an_episode_too_big_for_the_classes_names_the_settings_that_fit():
    from audiosiam.data.samplers import EpisodicSampler
    from audiosiam.errors import ParameterError

    labels = [c for c in range(6) for _ in range(6)]  # ESC-50-like: few clips per class
    with pytest.raises(ParameterError, match=r"6\+ clips: lower the queries \(--n-query / n_query 1\)"):
        EpisodicSampler(labels, 5, 5, 5, 10)
    assert len(EpisodicSampler(labels, 5, 5, 1, 10)) == 10  # the suggested setting works


def test_the_old_dataset_functions_still_work_and_say_their_new_names(tmp_path):
    from audiosiam.data import AudioFolderDataset, ManifestDataset

    for c in ("a", "b"):
        write(tmp_path / c / "1.wav", sine(440 if c == "a" else 880, 0.3))
    with pytest.warns(DeprecationWarning, match="AudioClipDataset.from_folder"):
        assert len(AudioFolderDataset(tmp_path)) == 2
    (tmp_path / "m.csv").write_text("path,label\na/1.wav,a\nb/1.wav,b\n")
    with pytest.warns(DeprecationWarning, match="AudioClipDataset.from_manifest"):
        assert ManifestDataset(tmp_path / "m.csv").classes == AudioClipDataset.from_manifest(tmp_path / "m.csv").classes
