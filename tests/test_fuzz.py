"""Fuzzing the readers: a few hundred mutated audio files, galleries and checkpoints (truncations,
flipped bytes, crafted header fields) go through ``load_audio``, ``FewShotClassifier.load`` and
``load_model``. Each must either work (and give finite values) or raise an ``AudiosiamError`` that names
the file; any other exception, a hang or a NaN fails the test.

Mutations are seeded: a failure names the case, and the same case is made again by the same seed.
"""

from __future__ import annotations

import os
import random
import signal
import struct
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiosiam.errors import AudioLoadError, AudiosiamError, CheckpointError, GalleryError, NotRegularFileError
from audiosiam.fewshot import FewShotClassifier
from audiosiam.io import audio_duration, load_audio, read_blocks
from audiosiam.models import EmbeddingModel, EncoderConfig, ResNetEncoder, load_model, save_checkpoint
from audiosiam.transforms import LogMelSpectrogram

RATE = 16000
CASES_PER_FORMAT = 60  # x 5 audio formats + galleries + checkpoints: a few hundred files
SECONDS_PER_CASE = 20  # a reader that takes longer than this on a tiny file is hanging


@contextmanager
def deadline(seconds: int, what: str):
    def expired(signum, frame):
        raise TimeoutError(f"{what}: still running after {seconds} s (a hang)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def speech_like(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE * seconds)) / RATE
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3 * t))
    return (0.3 * envelope * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def mutations(data: bytes, seed: int, header: int) -> list[tuple[str, bytes]]:
    """Truncations (inside the header, and later), flipped bytes (header and body), a zeroed and a
    maximal 32-bit field in the header, and random garbage appended."""
    rng = random.Random(seed)
    n = len(data)
    out = [(f"truncated at {cut}", data[:cut]) for cut in (rng.randrange(1, max(2, header)), rng.randrange(header, n))]
    for where, lo, hi in (("header", 0, header), ("body", header, n)):
        raw = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            raw[rng.randrange(lo, max(lo + 1, hi))] ^= 1 << rng.randrange(8)
        out.append((f"flipped bytes in the {where}", bytes(raw)))
    field = rng.randrange(0, max(1, header - 4))
    for name, value in (("zeroed", 0), ("maximal", 0xFFFFFFFF)):
        raw = bytearray(data)
        raw[field : field + 4] = struct.pack("<I", value)
        out.append((f"{name} 32-bit header field at {field}", bytes(raw)))
    out.append(("garbage appended", data + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4000)))))
    return out


AUDIO_FORMATS = {
    "wav16": ("wav", {"format": "WAV", "subtype": "PCM_16"}, 44),
    "wavfloat": ("wav", {"format": "WAV", "subtype": "FLOAT"}, 58),
    "flac": ("flac", {"format": "FLAC", "subtype": "PCM_16"}, 42),
    "ogg": ("ogg", {"format": "OGG", "subtype": "VORBIS"}, 200),
    "mp3": ("mp3", {"format": "MP3", "subtype": "MPEG_LAYER_III"}, 100),
    # libsndfile reads GSM 6.10 in WAV as a non-seekable stream whose length it still announces
    "gsm": ("wav", {"format": "WAV", "subtype": "GSM610"}, 60),
}


def assert_named(exc: AudiosiamError, path: Path) -> None:
    assert path.name in str(exc), f"the error does not name the file: {exc}"


@pytest.mark.parametrize("kind", sorted(AUDIO_FORMATS))
def test_mutated_audio_files_load_or_are_refused_by_name(kind, tmp_path):
    suffix, options, header = AUDIO_FORMATS[kind]
    clean = tmp_path / f"clean.{suffix}"
    sf.write(clean, speech_like(), RATE, **options)
    data = clean.read_bytes()
    outcomes = {"loaded": 0, "refused": 0}
    case = 0
    seed = 0
    while case < CASES_PER_FORMAT:
        for name, content in mutations(data, seed, header):
            path = tmp_path / f"case{case}.{suffix}"
            path.write_bytes(content)
            with deadline(SECONDS_PER_CASE, f"{kind} case {case} (seed {seed}, {name})"):
                try:
                    wave = load_audio(path, sample_rate=RATE)
                except AudiosiamError as exc:
                    assert_named(exc, path)
                    outcomes["refused"] += 1
                else:
                    assert wave.ndim == 1 and wave.numel() > 0, f"{kind} case {case} ({name}): empty waveform"
                    assert torch.isfinite(wave).all(), f"{kind} case {case} ({name}): non-finite samples"
                    outcomes["loaded"] += 1
            path.unlink()
            case += 1
        seed += 1
    assert outcomes["refused"] > 0  # the mutations do damage; a fuzzer that breaks nothing tests nothing


def test_a_non_seekable_stream_loads_whole_as_the_block_reader_reads_it(tmp_path):
    path = tmp_path / "gsm.wav"
    sf.write(path, speech_like(), RATE, subtype="GSM610")
    assert not sf.SoundFile(path).seekable()
    wave = load_audio(path, sample_rate=RATE)
    blocks = torch.cat(list(read_blocks(path, RATE, block_seconds=0.3)))
    assert wave.shape == (RATE,)
    torch.testing.assert_close(wave, blocks)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a half copy says so
    with pytest.raises(AudioLoadError, match="truncated"):
        load_audio(path, sample_rate=RATE)


def special_path(tmp_path: Path, kind: str) -> Path:
    """A path that names no regular file, made for real: FIFOs, devices, folders and links to them, loops."""
    path = tmp_path / f"{kind}.wav"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "link_to_fifo":
        os.mkfifo(tmp_path / "pipe")
        path.symlink_to(tmp_path / "pipe")
    elif kind == "link_to_dev_zero":
        path.symlink_to("/dev/zero")
    elif kind == "link_loop":
        path.symlink_to(tmp_path / "loop_b.wav")
        (tmp_path / "loop_b.wav").symlink_to(path)
    elif kind == "dangling_link":
        path.symlink_to(tmp_path / "gone.wav")
    elif kind == "folder":
        path.mkdir()
    return path


SPECIAL_PATHS = {  # kind -> (error class, words the message must hold)
    "fifo": (NotRegularFileError, "named pipe (FIFO), not a regular file"),
    "link_to_fifo": (NotRegularFileError, "named pipe (FIFO), not a regular file (through the symbolic link"),
    "link_to_dev_zero": (NotRegularFileError, "character device, not a regular file (through the symbolic link"),
    "link_loop": (AudioLoadError, "symbolic link loop"),
    "dangling_link": (AudioLoadError, "symbolic link to a missing file"),
    "folder": (AudioLoadError, "is a folder"),
}
READERS = {
    "load_audio": lambda p: load_audio(p, sample_rate=RATE),
    "read_blocks": lambda p: list(read_blocks(p, RATE)),
    "audio_duration": audio_duration,
}


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("kind", sorted(SPECIAL_PATHS))
def test_paths_naming_no_regular_file_are_refused_by_name_without_blocking(tmp_path, kind, reader):
    path = special_path(tmp_path, kind)
    error, words = SPECIAL_PATHS[kind]
    with deadline(SECONDS_PER_CASE, f"{reader} of a {kind}"), pytest.raises(error) as caught:
        READERS[reader](path)
    assert str(caught.value).startswith(f"{path}: ") and words in str(caught.value), caught.value
    if error is AudioLoadError:
        assert not isinstance(caught.value, NotRegularFileError)


@pytest.mark.parametrize("kind", sorted(SPECIAL_PATHS))
def test_checkpoint_and_gallery_paths_naming_no_regular_file_are_refused_by_name(tmp_path, kind):
    path = special_path(tmp_path, kind)
    words = SPECIAL_PATHS[kind][1].replace("is a folder", "is a folder, not a")
    with deadline(SECONDS_PER_CASE, f"load_model of a {kind}"), pytest.raises(CheckpointError) as caught:
        load_model(path)
    assert f"{path}: " in str(caught.value) and words in str(caught.value), caught.value
    with deadline(SECONDS_PER_CASE, f"gallery of a {kind}"), pytest.raises(GalleryError) as caught:
        FewShotClassifier.load(path, model=tiny_model())
    assert f"{path}: " in str(caught.value) and words in str(caught.value), caught.value


def test_a_model_name_that_is_a_folder_here_is_called_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tr").mkdir()  # `--model tr`: no preset of that name, and a folder is no checkpoint
    with pytest.raises(CheckpointError, match=r"^tr: is a folder, not a checkpoint file, and there is no bundled"):
        load_model("tr")
    with pytest.raises(CheckpointError, match=r"^there is no bundled model named 'nosuch'"):
        load_model("nosuch")
    with pytest.raises(CheckpointError, match=r"tr: is a folder, not a checkpoint file"):
        load_model(tmp_path / "tr")  # an absolute path


def tiny_model() -> EmbeddingModel:
    torch.manual_seed(0)
    frontend = LogMelSpectrogram(RATE, n_mels=16)
    return EmbeddingModel(frontend, ResNetEncoder(EncoderConfig(n_mels=16, channels=(4, 4, 4, 4), embedding_dim=8)))


def test_mutated_galleries_load_or_are_refused_by_name(tmp_path):
    model = tiny_model().eval()
    clips = [torch.from_numpy(speech_like(0.5, seed=i)) * (0.5 + 0.1 * i) for i in range(6)]
    with pytest.warns(UserWarning, match="no calibration map"):  # a tiny model without one: said once
        clf = FewShotClassifier(model).fit(clips, ["a", "a", "b", "b", "c", "c"], sample_rate=RATE)
    data = clf.save(tmp_path / "clean.asg").read_bytes()
    refused = 0
    for seed in range(CASES_PER_FORMAT // 6):
        for case, (name, content) in enumerate(mutations(data, seed, header=min(400, len(data) // 4))):
            path = tmp_path / f"g{seed}_{case}.asg"
            path.write_bytes(content)
            with deadline(SECONDS_PER_CASE, f"gallery seed {seed} ({name})"):
                try:
                    loaded = FewShotClassifier.load(path, model=model)
                except AudiosiamError as exc:
                    assert_named(exc, path)
                    refused += 1
                else:
                    scores = loaded.decision_function(clips[:2], sample_rate=RATE)
                    assert np.isfinite(np.asarray(scores)).all(), f"gallery seed {seed} ({name}): non-finite scores"
    assert refused > 0


def test_mutated_checkpoints_load_or_are_refused_by_name(tmp_path):
    clean = tmp_path / "clean.pt"
    save_checkpoint(tiny_model(), clean)
    data = clean.read_bytes()
    refused = 0
    for seed in range(CASES_PER_FORMAT // 6):
        for case, (name, content) in enumerate(mutations(data, seed, header=512)):
            path = tmp_path / f"m{seed}_{case}.pt"
            path.write_bytes(content)
            with deadline(SECONDS_PER_CASE, f"checkpoint seed {seed} ({name})"):
                try:
                    model = load_model(path)
                except AudiosiamError as exc:
                    assert_named(exc, path)
                    refused += 1
                else:
                    emb = model.embed([torch.from_numpy(speech_like(0.5))], sample_rate=RATE)
                    assert torch.isfinite(emb).all(), f"checkpoint seed {seed} ({name}): non-finite embedding"
    assert refused > 0


@pytest.mark.parametrize(
    ("weight", "value", "said"),
    [
        ("encoder.stem.1.running_var", -1.0, "negative BatchNorm variances in encoder.stem.1.running_var"),
        ("encoder.stem.0.weight", 1.7e37, "encoder.stem.0.weight over 1e+08 in magnitude"),
    ],
)
def test_checkpoints_with_weights_no_training_writes_are_refused(tmp_path, weight, value, said):
    # what one flipped sign or exponent bit on disk makes: finite weights whose forward pass is NaN
    model = tiny_model().eval()
    with torch.no_grad():
        model.state_dict()[weight].view(-1)[0] = value
    path = Path(save_checkpoint(model, tmp_path / "flipped.pt"))
    with pytest.raises(CheckpointError, match="the file is corrupt") as info:
        load_model(path)
    assert said in str(info.value)
    assert_named(info.value, path)


# ---------------------------------------------------------------- crafted galleries: bombs and fields
def clean_gallery(tmp_path: Path) -> tuple[FewShotClassifier, Path, list[torch.Tensor]]:
    model = tiny_model().eval()
    clips = [torch.from_numpy(speech_like(0.5, seed=i)) * (0.5 + 0.1 * i) for i in range(6)]
    with pytest.warns(UserWarning, match="no calibration map"):
        clf = FewShotClassifier(model).fit(clips, ["a", "a", "b", "b", "c", "c"], sample_rate=RATE)
    return clf, clf.save(tmp_path / "clean.asg"), clips


def zip_bomb(path: Path, clean: Path, rows: int) -> Path:
    """The clean gallery with ``rows`` rows of zeros declared and deflated (a file ~1/1000 of what it declares),
    its labels, sources and metadata made to match, as a careful attacker would."""
    import json
    import zipfile

    with np.load(clean) as data:
        meta = json.loads(str(data["meta"]))
    dim = meta["dim"]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, dtype, shape in (
            ("embeddings", "<f4", (rows, dim)),
            ("labels", "<U1", (rows,)),
            ("sources", "<U1", (rows,)),
        ):
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                header = {"descr": dtype, "fortran_order": False, "shape": shape}
                np.lib.format.write_array_header_1_0(member, header)
                left, chunk = math_prod(shape) * np.dtype(dtype).itemsize, bytes(1 << 22)
                while left > 0:
                    member.write(chunk[: min(left, len(chunk))])
                    left -= len(chunk)
        archive.writestr("meta.npy", _npy(np.asarray(json.dumps(meta))))
    return path


def math_prod(shape) -> int:
    out = 1
    for size in shape:
        out *= size
    return out


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_a_gallery_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    import tracemalloc

    clf, clean, _ = clean_gallery(tmp_path)
    bomb = zip_bomb(tmp_path / "bomb.asg", clean, rows=200_000)  # 200,000 x 8 float32 + labels: 8 MB declared
    assert bomb.stat().st_size < 60_000
    tracemalloc.start()
    try:
        with pytest.raises(
            GalleryError, match=r"bomb\.asg: damaged gallery \(its arrays declare [\d,]+ bytes in a file of .*zip bomb"
        ):
            FewShotClassifier.load(bomb, model=clf.model_)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, f"{peak:,} bytes allocated to refuse a {bomb.stat().st_size:,}-byte file"


def crafted_gallery(clean: Path, path: Path, **changes) -> Path:
    """``clean`` with arrays replaced (``embeddings=...``) or metadata fields set (``meta__dim``,
    ``extra__k``, ``calibration__threshold``), written as our own writer would."""
    import json

    with np.load(clean) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(str(arrays["meta"]))
    for key, value in changes.items():
        where, _, field = key.rpartition("__")
        if not where:
            arrays[field] = value
            continue
        target = {"meta": meta, "extra": meta["extra"], "calibration": meta["extra"]["calibration"]}[where]
        target[field] = value
    arrays["meta"] = np.asarray(json.dumps(meta))
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def test_galleries_with_crafted_fields_are_refused_by_name(tmp_path):
    clf, clean, clips = clean_gallery(tmp_path)
    with np.load(clean) as data:
        emb, labels, sources = data["embeddings"], data["labels"], data["sources"]
    cases = {  # name -> (changes, words of the refusal)
        "scaled": ({"embeddings": emb * 1e30}, "has length 1e+30"),
        "int64": ({"embeddings": (emb * 100).astype(np.int64)}, "holds int64 values"),
        "complex": ({"embeddings": emb.astype(np.complex64)}, "holds complex64 values"),
        "zero_rows": ({"embeddings": np.zeros_like(emb)}, "has length 0"),
        "no_rows": ({"embeddings": emb[:0], "labels": labels[:0], "sources": sources[:0]}, "holds no enrolled clips"),
        "int_labels": ({"labels": np.arange(len(labels))}, "'labels' holds int64"),
        "unknown_label": ({"labels": np.asarray(["unknown"] * len(labels))}, "named 'unknown'"),
        "k_2.5": ({"extra__k": 2.5}, "n_neighbors=2.5"),
        "k_str": ({"extra__k": "5"}, "n_neighbors='5'"),
        "k_true": ({"extra__k": True}, "n_neighbors=True"),
        "k_nan": ({"extra__k": float("nan")}, "n_neighbors=nan"),
        "adapt_no": ({"extra__adapt": "no"}, "adapt='no'"),
        "version_true": ({"meta__format_version": True}, "version True"),
        "dim_str": ({"meta__dim": "8"}, "dim='8'"),
        "fingerprint_int": ({"meta__fingerprint": 123}, "fingerprint=123"),
        "extra_list": ({"meta__extra": [1, 2]}, "extra=list"),
        "model_int": ({"extra__model": 123}, "model=123"),
        "model_list": ({"extra__model": ["a"]}, "model=['a']"),
        "threshold_str": ({"calibration__threshold": "x"}, "threshold='x'"),
        "threshold_nan": ({"calibration__threshold": float("nan")}, "threshold=nan"),
        "threshold_5": ({"calibration__threshold": 5.0}, "threshold=5.0"),
        "temperature": ({"calibration__temperature": -1.0}, "temperature=-1.0"),
        "calibration_list": ({"extra__calibration": [1]}, "damaged calibration"),
    }
    for name, (changes, words) in cases.items():
        path = crafted_gallery(clean, tmp_path / f"{name}.asg", **changes)
        for model in (clf.model_, None):  # None: the model the gallery names is loaded (or refused) first
            if model is None and "model" not in name:
                continue
            with pytest.raises(GalleryError) as caught:
                FewShotClassifier.load(path, model=model)
            assert str(caught.value).startswith(f"{path}: ") and words in str(caught.value), (name, caught.value)
    assert np.isfinite(FewShotClassifier.load(clean, model=clf.model_).predict_proba(clips[:2], sample_rate=RATE)).all()


@pytest.mark.parametrize("value", ["x", float("nan"), 5.0, True, [0.5]], ids=repr)
def test_a_checkpoint_with_a_damaged_verification_threshold_is_refused_by_name(tmp_path, value):
    model = tiny_model()
    model.info["verification_threshold"] = value
    path = tmp_path / "thr.pt"
    save_checkpoint(model, path)
    with pytest.raises(CheckpointError, match=rf"^{path}: the model's verification threshold .* is not a similarity"):
        load_model(path)
    model.info = {"metrics": {"verification_threshold": value}}  # where older checkpoints kept it
    save_checkpoint(model, path)
    with pytest.raises(CheckpointError, match=rf"^{path}: the model's verification threshold"):
        load_model(path)


def test_the_api_refuses_arguments_of_the_wrong_kind_by_name(tmp_path):
    from audiosiam.detection import EventDetector
    from audiosiam.errors import ParameterError

    model = tiny_model().eval()
    clips = [torch.from_numpy(speech_like(0.5, seed=i)) for i in range(4)]
    with pytest.warns(UserWarning, match="no calibration map"):
        clf = FewShotClassifier(model).fit(iter(clips), iter("aabb"), sample_rate=RATE)  # generators are sequences
    assert list(clf.classes_) == ["a", "b"]
    gallery = clf.save(tmp_path / "g.asg")
    detector = EventDetector(model).fit(clips[:2], labels="a", sample_rate=RATE)
    calls = {  # name -> (call, words of the ParameterError)
        "embed(5)": (lambda: model.embed(5), "got int"),
        "embed(None)": (lambda: model.embed(None), "got None"),
        "embed(bytes array)": (lambda: model.embed(np.array([b"a", b"b"])), "array of |S1"),
        "embed([None])": (lambda: model.embed([None]), "inputs[0]: expected a path or a 1-D waveform of numbers"),
        "embed(object array)": (lambda: model.embed(np.array([None, 3], dtype=object)), "inputs[0]: expected a path"),
        "embed(complex)": (lambda: model.embed(torch.ones(8000, dtype=torch.complex64), sample_rate=RATE), "complex64"),
        "fit(X=5)": (lambda: FewShotClassifier(model).fit(5, [1]), "X: expected a sequence of clips, got int"),
        "fit(y=None)": (lambda: FewShotClassifier(model).fit(clips, None), "y: expected one label per clip"),
        "fit(1 and '1')": (lambda: FewShotClassifier(model).fit(clips, [1, 1, "1", "1"]), "both be the class '1'"),
        "fit(None label)": (lambda: FewShotClassifier(model).fit(clips, [None, None, "a", "a"]), "label None"),
        "FewShotClassifier(n_neighbors=nan)": (
            lambda: FewShotClassifier(model, n_neighbors=float("nan")).fit(clips, list("aabb")),
            "n_neighbors=nan",
        ),
        "kneighbors(n_neighbors=nan)": (
            lambda: clf.kneighbors(clips[:1], n_neighbors=float("nan"), sample_rate=RATE),
            "n_neighbors=nan",
        ),
        "predict(None)": (lambda: clf.predict(None), "X: expected a clip"),
        "load(model=3)": (lambda: FewShotClassifier.load(gallery, model=3), "model=3: expected an EmbeddingModel"),
        "load_model(3)": (lambda: load_model(3), "name_or_path=3: expected a file path"),
        "load_model(['a'])": (lambda: load_model(["a"]), "got list"),
        "load_audio(3)": (lambda: load_audio(3), "path=3: expected a file path"),
        "load_audio(None)": (lambda: load_audio(None), "path=None"),
        "detect(b'abc')": (lambda: detector.detect(b"abc"), "recording: expected a path or a 1-D waveform"),
        "detect(None)": (lambda: detector.detect(None), "got None"),
        "detect([paths])": (lambda: detector.detect(["a.wav", "b.wav"]), "got a list of str"),
        "EventDetector.fit(None)": (lambda: EventDetector(model).fit(None), "examples: expected a clip"),
    }
    for name, (call, words) in calls.items():
        with pytest.raises(ParameterError) as caught:
            call()
        assert words in str(caught.value), (name, caught.value)
    with pytest.raises(GalleryError, match="made by a different model"):  # a name is loaded, then compared
        FewShotClassifier.load(gallery, model="default")


@pytest.mark.parametrize("kind", ["ogg", "flac", "opus"])
def test_an_ogg_or_flac_file_cut_anywhere_is_called_truncated(kind, tmp_path):
    suffix, options = {
        "ogg": ("ogg", {"format": "OGG", "subtype": "VORBIS"}),
        "flac": ("flac", {"format": "FLAC", "subtype": "PCM_16"}),
        "opus": ("opus", {"format": "OGG", "subtype": "OPUS"}),
    }[kind]
    clean = tmp_path / f"clean.{suffix}"
    sf.write(clean, np.concatenate([speech_like(1.0, seed=i) for i in range(4)]), RATE, **options)
    assert load_audio(clean, sample_rate=RATE).numel() > 3 * RATE
    data = clean.read_bytes()
    for share in (0.3, 0.5, 0.7, 0.89, 0.93, 0.97, 0.99):  # an Ogg stream cut at half decoded as a shorter clip
        cut = tmp_path / f"cut{share}.{suffix}"
        cut.write_bytes(data[: int(len(data) * share)])
        for read in (lambda p: load_audio(p, sample_rate=RATE), lambda p: list(read_blocks(p, RATE))):
            with pytest.raises(AudioLoadError, match=rf"^{cut}: truncated"):
                read(cut)
    if kind == "flac":  # damage inside, whole length: damaged, not truncated
        raw = bytearray(data)
        raw[len(raw) // 2] ^= 0xFF
        damaged = tmp_path / "damaged.flac"
        damaged.write_bytes(bytes(raw))
        with pytest.raises(AudioLoadError) as caught:
            load_audio(damaged, sample_rate=RATE)
        assert "truncated:" not in str(caught.value), caught.value
