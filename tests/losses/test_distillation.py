"""Distillation: the relational loss against a hand computation, the teacher cache's keying and invalidation,
and a tiny training run with a teacher and an anchor."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch

from audiosiam.data import DataSource
from audiosiam.data.teacher_cache import TeacherCache, teacher_identity
from audiosiam.errors import ParameterError
from audiosiam.losses import relational_distillation_loss
from audiosiam.models import EmbeddingModel, EncoderConfig, ResNetEncoder
from audiosiam.training import TrainConfig, train
from audiosiam.transforms import LogMelSpectrogram

from audio_fixtures import write


def _by_hand(student: np.ndarray, teacher: np.ndarray, temperature: float) -> float:
    """The loss written out for small arrays: cosine rows without the diagonal, standardised, softmax, KL."""

    def rows(x):
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        sims = x @ x.T
        out = []
        for i in range(len(x)):
            r = np.array([sims[i, j] for j in range(len(x)) if j != i])
            out.append((r - r.mean()) / r.std())
        return np.array(out)

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    p, q = softmax(rows(teacher) / temperature), softmax(rows(student) / temperature)
    return float(np.mean(np.sum(p * np.log(p / q), axis=1)))


def test_relational_loss_equals_a_hand_computation():
    rng = np.random.default_rng(0)
    student, teacher = rng.standard_normal((4, 3)), rng.random((4, 5))  # different widths, teacher non-negative
    for temperature in (0.5, 2.0):
        got = relational_distillation_loss(torch.tensor(student), torch.tensor(teacher), temperature=temperature)
        assert float(got) == pytest.approx(_by_hand(student, teacher, temperature), rel=1e-5)


def test_relational_loss_is_zero_for_the_same_ranking_and_has_gradients():
    x = torch.randn(6, 8)
    assert float(relational_distillation_loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    student = torch.randn(6, 8, requires_grad=True)
    loss = relational_distillation_loss(student, torch.randn(6, 32))
    loss.backward()
    assert float(loss.detach()) > 0 and torch.isfinite(student.grad).all() and student.grad.abs().sum() > 0
    tiny = torch.randn(2, 8, requires_grad=True)
    zero = relational_distillation_loss(tiny, torch.randn(2, 4))  # a ranking needs 3 clips
    zero.backward()
    assert float(zero.detach()) == 0.0 and torch.count_nonzero(tiny.grad) == 0
    with pytest.raises(ParameterError, match="temperature"):
        relational_distillation_loss(x, x, temperature=0)
    with pytest.raises(ParameterError, match="expected"):
        relational_distillation_loss(x, x[:3])


def _tiny_model(seed: int) -> EmbeddingModel:
    torch.manual_seed(seed)
    config = EncoderConfig(n_mels=32, channels=(8, 8, 16, 16), blocks=(1, 1, 1), embedding_dim=16)
    return EmbeddingModel(LogMelSpectrogram(n_mels=32), ResNetEncoder(config)).eval()


def _tone(freq: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(9600) / 16000
    return (0.4 * np.sin(2 * math.pi * freq * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def test_teacher_cache_is_keyed_by_content_and_by_teacher(tmp_path):
    files = [write(tmp_path / "clips" / f"{i}.wav", _tone(300 + 100 * i, i)) for i in range(3)]
    teacher = _tiny_model(0)
    cache = TeacherCache(teacher, tmp_path / "cache")
    first = cache.embeddings([str(f) for f in files])
    assert cache.computed == 3 and first.shape == (3, 16)
    torch.testing.assert_close(first, teacher.embed([str(f) for f in files]))
    # read back, in any order and with repeats; a copy under another name is the same content
    shutil.copy(files[0], tmp_path / "copy.wav")
    again = cache.embeddings([str(files[2]), str(tmp_path / "copy.wav"), str(files[2])])
    assert cache.computed == 0
    torch.testing.assert_close(again, first[[2, 0, 2]])
    # a file changed in place is embedded again; a damaged entry too
    write(files[1], _tone(1234, 9))
    assert cache.embeddings([str(files[1])]).shape == (1, 16) and cache.computed == 1
    entry = next(cache.folder.rglob("*.npy"))
    entry.write_bytes(b"not an array")
    cache.embeddings([str(f) for f in files])
    assert cache.computed == 1
    # another teacher never reads these entries
    other = TeacherCache(_tiny_model(1), tmp_path / "cache")
    assert other.folder != cache.folder and teacher_identity(_tiny_model(0)) == teacher_identity(teacher)
    other.embeddings([str(files[0])])
    assert other.computed == 1
    cache.clear()
    assert not cache.folder.exists()


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("distil")
    for source, base in (("sounds", 200), ("words", 900)):
        for c in range(4):
            for n in range(4):
                write(root / source / f"{source}{c}" / f"{n}.wav", _tone(base * 1.4**c, 10 * c + n))
    teacher = _tiny_model(3)
    teacher.save(root / "teacher.pt")
    start = _tiny_model(4)
    start.save(root / "start.pt")
    return root


def _distilled_run(tmp_path, two_sources, **overrides):
    """The two sources and a tiny run's config that distils the ``sounds`` source from the fixture's teacher."""
    sources = [DataSource(str(two_sources / "sounds"), "sounds"), DataSource(str(two_sources / "words"), "words")]
    config = TrainConfig(
        out=str(tmp_path / "model.pt"),
        channels=[8, 8, 16, 16],
        embedding_dim=16,
        n_mels=32,
        classes_per_batch=4,
        clips_per_class=2,
        clip_seconds=0.5,
        epochs=1,
        steps_per_epoch=3,
        val_classes=0,
        warmup_steps=1,
        teacher=str(two_sources / "teacher.pt"),
        distill_sources=["sounds"],
        teacher_cache=str(tmp_path / "cache"),
        **overrides,
    )
    return sources, config


def test_training_with_a_teacher_and_an_anchor_caches_and_logs_the_term(tmp_path, two_sources):
    sources, config = _distilled_run(tmp_path, two_sources, anchor_weight=0.5, init=str(two_sources / "start.pt"))
    messages = []
    record = train(config, sources, progress=False, log=messages.append)
    assert record["distill_loss"] > 0 and math.isfinite(record["train_loss"])
    assert any("16 clips of 1 sources (16 embedded now" in m for m in messages)
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 16  # the sounds only: words are not distilled
    messages.clear()
    config.out = str(tmp_path / "again.pt")
    train(config, sources, progress=False, log=messages.append)
    assert any("(0 embedded now" in m for m in messages)
    for bad in (dict(distill_sources=["nope"]), dict(anchor_weight=1.0, init=None), dict(distill_weight=-1.0)):
        with pytest.raises(ParameterError):
            train(TrainConfig(**{**config.__dict__, **bad}), sources, progress=False, log=lambda *a: None)


def test_a_projector_is_trained_kept_in_the_state_and_resumed(tmp_path, two_sources):
    sources, config = _distilled_run(tmp_path, two_sources, distill_projector=True)
    train(config, sources, progress=False, log=lambda *a: None)
    state = torch.load(tmp_path / "model.run" / "state.pt", weights_only=True)
    weight = state["distillation"]["projector"]["weight"]
    assert weight.shape == (16, 16) and not torch.equal(weight, torch.eye(16))  # it learnt, from the identity
    config.epochs, config.resume = 2, True
    train(config, sources, progress=False, log=lambda *a: None)
    resumed = torch.load(tmp_path / "model.run" / "state.pt", weights_only=True)
    assert resumed["epoch"] == 1 and not torch.equal(resumed["distillation"]["projector"]["weight"], weight)
    # the shipped model carries no projector: it is a training device only
    assert not any("projector" in k for k in torch.load(tmp_path / "model.pt", weights_only=False)["state_dict"])
