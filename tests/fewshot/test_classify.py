"""FewShotClassifier and AudioEmbedder: decisions, calibration, saving and loading through galleries.

The encoder here is a small, fixed spectral model (mean log-mel spectrum) so that the classifier's own
logic is tested on clips whose right answer is known: pure tones of different pitches. The bundled model
is tested end to end in tests/models/test_bundled_model.py. The spectral model carries no calibration map, so
these tests cover the earlier rule, the fallback for such models (its warning is expected here); the map
is tested in tests/fewshot/test_calibration.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchaudio

from audiosiam.errors import GalleryError, ParameterError
from audiosiam.fewshot import UNKNOWN, FewShotClassifier
from audiosiam.fewshot.gallery import Gallery
from audiosiam.fewshot.leave_one_out import legacy_scores
from audiosiam.fewshot.rules import equal_error_threshold as _equal_error_threshold
from audiosiam.models import EmbeddingModel, EncoderConfig, ResNetEncoder
from audiosiam.models.estimator import AudioEmbedder
from audiosiam.transforms import LogMelSpectrogram

RATE = 16000
pytestmark = pytest.mark.filterwarnings("ignore:audiosiam. this model carries no calibration map")


class SpectralModel(EmbeddingModel):
    """Embeds a clip as its centred mean log-mel spectrum: tones of one pitch land together. Everything
    else (decoding files, checking waveforms, reporting failures) is the real EmbeddingModel path."""

    embedding_dim = 40
    source = None

    def __init__(self, seed: int = 0):
        with torch.random.fork_rng():
            torch.manual_seed(0)  # equal seeds, equal weights, equal fingerprints
            super().__init__(
                LogMelSpectrogram(RATE, n_mels=16),
                ResNetEncoder(EncoderConfig(n_mels=16, channels=(4, 4, 4, 4), embedding_dim=8)),
            )
        self.mel = torchaudio.transforms.MelSpectrogram(RATE, n_fft=512, hop_length=160, n_mels=40)
        self.register_buffer("seed", torch.tensor(float(seed)))

    def _embed_waveforms(self, waves, batch_size, progress):
        rows = []
        for wave in waves:
            spec = self.mel(torch.as_tensor(wave, dtype=torch.float32)).clamp_min(1e-8).log().mean(-1)
            rows.append(spec - spec.mean())
        if not rows:
            return torch.empty(0, self.embedding_dim)
        return torch.nn.functional.normalize(torch.stack(rows), dim=1)


def tone(freq: float, seconds: float = 0.5, *, seed: int = 0, noise: float = 0.02) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(RATE * seconds)) / RATE
    phase = float(torch.rand(1, generator=g)) * 2 * math.pi
    amp = 0.3 + 0.4 * float(torch.rand(1, generator=g))
    return amp * torch.sin(2 * math.pi * freq * t + phase) + noise * torch.randn(t.shape, generator=g)


CLASSES = {"low": 300.0, "mid": 1200.0, "high": 4000.0}


@pytest.fixture(scope="module")
def model():
    return SpectralModel()


@pytest.fixture(scope="module")
def support():
    clips, labels = [], []
    for c, (name, freq) in enumerate(CLASSES.items()):
        for take in range(3):
            clips.append(tone(freq * (1 + 0.01 * take), seed=10 * c + take))
            labels.append(name)
    return clips, labels


@pytest.mark.parametrize("rule", ["prototype", "knn"])
def test_tones_are_labelled_and_strangers_are_unknown(model, support, rule):
    clf = FewShotClassifier(model, rule=rule, n_neighbors=3).fit(*support, sample_rate=RATE)
    queries = [tone(f * 1.005, seed=100 + i) for i, f in enumerate(CLASSES.values())]
    queries += [tone(650, seed=7), tone(7000, seed=8)]  # pitches nobody enrolled
    predicted = clf.predict(queries, sample_rate=RATE)
    assert list(predicted[:3]) == list(CLASSES)
    assert list(predicted[3:]) == [UNKNOWN, UNKNOWN]
    assert clf.threshold_ is not None
    # The threshold sits between the leave-one-out scores of known clips and of strangers.
    assert clf.loo_genuine_.min() > clf.threshold_ > clf.loo_impostor_.max()


def test_predict_proba_is_a_distribution_matching_predict(model, support):
    clf = FewShotClassifier(model, reject=None).fit(*support, sample_rate=RATE)
    queries = [tone(f, seed=200 + i) for i, f in enumerate(CLASSES.values())]
    proba = clf.predict_proba(queries, sample_rate=RATE)
    assert proba.shape == (3, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert list(clf.classes_[proba.argmax(axis=1)]) == list(clf.predict(queries, sample_rate=RATE))
    # Well-separated tones: the fitted temperature makes the right class confident.
    assert proba.max(axis=1).min() > 0.9


def test_temperature_is_fitted_not_fixed(model, support):
    clf = FewShotClassifier(model).fit(*support, sample_rate=RATE)
    # Two "classes" whose pitches interleave: leave-one-out often gets them wrong.
    near = FewShotClassifier(model).fit(
        [tone(500 + 10 * i, seed=i) for i in range(6)], ["a", "b"] * 3, sample_rate=RATE
    )
    # Classes that overlap must get a softer (higher) temperature than clearly different ones.
    assert near.temperature_ > clf.temperature_


def test_leave_one_out_prototype_scores_match_brute_force(model, support):
    clf = FewShotClassifier(model).fit(*support, sample_rate=RATE)
    genuine, _, scores, targets = legacy_scores(clf.gallery_, clf.rule, clf.n_neighbors)
    emb, labels = clf.gallery_.embeddings, np.asarray(clf.gallery_.labels)
    expected = []
    for i in range(len(labels)):
        rest = np.arange(len(labels)) != i
        row = []
        for name in clf.classes_:
            members = emb[torch.from_numpy(rest & (labels == name))]
            proto = torch.nn.functional.normalize(members.mean(0), dim=0)
            row.append(float(emb[i] @ proto))
        expected.append(row)
    np.testing.assert_allclose(scores, np.asarray(expected), atol=1e-5)
    np.testing.assert_allclose(genuine, np.asarray(expected)[np.arange(len(labels)), targets], atol=1e-5)


def test_equal_error_threshold_separates_clean_sets():
    t = _equal_error_threshold(np.array([0.8, 0.9, 0.95]), np.array([0.1, 0.2, 0.3]))
    assert 0.3 < t < 0.8
    # Overlapping sets: the point where both error rates are equal (one error each side here).
    t = _equal_error_threshold(np.array([0.4, 0.8, 0.9]), np.array([0.1, 0.2, 0.5]))
    assert 0.4 < t <= 0.5


def test_one_clip_per_class_turns_rejection_off_with_a_warning(model):
    clips = [tone(f, seed=1) for f in CLASSES.values()]
    with pytest.warns(UserWarning, match="unknown rejection is off"):
        clf = FewShotClassifier(model).fit(clips, list(CLASSES), sample_rate=RATE)
    assert clf.threshold_ is None
    assert list(clf.predict([tone(1200, seed=9)], sample_rate=RATE)) == ["mid"]


def test_incremental_add_equals_fit_on_everything(model, support):
    clips, labels = support
    whole = FewShotClassifier(model).fit(clips, labels, sample_rate=RATE)
    parts = FewShotClassifier(model).fit(clips[:6], labels[:6], sample_rate=RATE)
    parts.add(clips[6:], labels[6:], sample_rate=RATE)
    torch.testing.assert_close(parts.gallery_.embeddings, whole.gallery_.embeddings)
    assert parts.threshold_ == pytest.approx(whole.threshold_)
    assert parts.temperature_ == pytest.approx(whole.temperature_)


def test_save_load_round_trip_without_embedding_again(model, support, tmp_path):
    clf = FewShotClassifier(model, rule="knn", n_neighbors=2).fit(*support, sample_rate=RATE)
    path = clf.save(tmp_path / "tones")
    assert path.name == "tones.asg"
    loaded = FewShotClassifier.load(path, model=model)
    assert (loaded.rule, loaded.n_neighbors) == ("knn", 2)
    queries = [tone(f, seed=300 + i) for i, f in enumerate(CLASSES.values())]
    assert list(loaded.predict(queries, sample_rate=RATE)) == list(clf.predict(queries, sample_rate=RATE))
    assert loaded.threshold_ == pytest.approx(clf.threshold_)


def test_gallery_of_another_model_is_refused(model, support, tmp_path):
    path = FewShotClassifier(model).fit(*support, sample_rate=RATE).save(tmp_path / "g.asg")
    with pytest.raises(GalleryError, match="different model"):
        FewShotClassifier.load(path, model=SpectralModel(seed=1))


def test_failed_save_keeps_the_previous_gallery(model, support, tmp_path, monkeypatch):
    clf = FewShotClassifier(model).fit(*support, sample_rate=RATE)
    path = clf.save(tmp_path / "g.asg")
    before = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(GalleryError, match="cannot be written \\(disk full\\)"):
        clf.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["g.asg"]  # no temporary file left behind


def test_damaged_galleries_are_refused_by_name(model, support, tmp_path):
    clf = FewShotClassifier(model).fit(*support, sample_rate=RATE)
    good = clf.save(tmp_path / "g.asg").read_bytes()
    cases = {"truncated.asg": good[: len(good) // 2], "empty.asg": b"", "text.asg": b"not a gallery"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(GalleryError, match=f"{name}: not a readable audiosiam gallery.*enrol the clips again"):
            FewShotClassifier.load(tmp_path / name, model=model)
    g = Gallery.load(tmp_path / "g.asg")
    g.embeddings[0, 0] = float("nan")
    g.save(tmp_path / "nan.asg")
    with pytest.raises(GalleryError, match="NaN or infinite embeddings"):
        FewShotClassifier.load(tmp_path / "nan.asg", model=model)


def test_a_loaded_gallery_keeps_its_calibration_and_settings(model, support, tmp_path, monkeypatch):
    clf = FewShotClassifier(model, rule="knn", n_neighbors=3).fit(*support, sample_rate=RATE)
    path = clf.save(tmp_path / "g.asg")
    calls = []
    monkeypatch.setattr(FewShotClassifier, "_calibrate", lambda self: calls.append(1))
    back = FewShotClassifier.load(path, model=model)
    assert not calls  # restored, not recomputed
    assert (back.rule, back.n_neighbors, back.threshold_, back.temperature_) == (
        "knn",
        3,
        clf.threshold_,
        clf.temperature_,
    )
    back.set_params(n_neighbors=3)
    back.predict_proba(support[0][:1], sample_rate=RATE)
    assert not calls  # nothing changed
    back.set_params(n_neighbors=2)
    assert not calls  # set_params only sets (scikit-learn's contract)
    back.predict_proba(support[0][:1], sample_rate=RATE)
    assert calls  # the changed setting re-calibrates at the next use


def test_set_params_takes_effect_at_the_next_use_and_fit_keeps_the_constructor_model(model, support):
    clf = FewShotClassifier(model).fit(*support, sample_rate=RATE)
    query = support[0][:2]
    assert list(clf.predict_proba(query, sample_rate=RATE).shape) == [2, len(clf.classes_) + 1]
    clf.set_params(reject=None)  # no unknown column from now on, without enrolling again
    assert list(clf.predict_proba(query, sample_rate=RATE).shape) == [2, len(clf.classes_)]
    assert clf.get_params()["reject"] is None and clf.model is model and clf.model_ is model
    named = FewShotClassifier("default")
    assert named.get_params()["model"] == "default"
    named._model()
    assert named.model == "default" and named.model_.embedding_dim > 0  # the name stays the parameter


def hand_map() -> dict:
    """A calibration map by hand: P(known) = sigmoid(12 (top score - 0.5)), softmax at T = 0.1."""
    from audiosiam.fewshot.calibration import FEATURES, CalibrationMap

    weights = [0.0] * len(FEATURES)
    weights[FEATURES.index("bias")], weights[FEATURES.index("top")] = -6.0, 12.0
    return {"prototype": CalibrationMap(weights, [math.log(0.1), 0.0, 0.0, 0.0], 0.5, 0.0).to_dict()}


def test_galleries_saved_before_the_calibration_map_still_load(model, support, tmp_path):
    clf = FewShotClassifier(model).fit(*support, sample_rate=RATE)
    clf.save(tmp_path / "new.asg")
    old = Gallery.load(tmp_path / "new.asg")  # as audiosiam wrote it before: threshold and temperature only
    old.meta = {
        "rule": "prototype",
        "k": 5,
        "reject": "auto",
        "model": None,
        "calibration": {"threshold": clf.threshold_, "temperature": clf.temperature_},
    }
    old.save(tmp_path / "old.asg")
    back = FewShotClassifier.load(tmp_path / "old.asg", model=model)  # a model without a map: kept as it was
    assert (back.threshold_, back.temperature_, back.target_false_accept) == (clf.threshold_, clf.temperature_, None)
    queries = [tone(f, seed=99) for f in (300.0, 4000.0, 2000.0)]
    assert list(back.predict(queries, sample_rate=RATE)) == list(clf.predict(queries, sample_rate=RATE))
    calibrated = SpectralModel()
    calibrated.info = {"calibration": hand_map()}  # the same weights: the gallery's fingerprint matches
    now = FewShotClassifier.load(tmp_path / "old.asg", model=calibrated)  # the map calibrates it
    assert now.calibration_ is not None and list(now.proba_columns_) == ["high", "low", "mid", UNKNOWN]
    proba = now.predict_proba(queries, sample_rate=RATE)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert list(now.predict(queries, sample_rate=RATE)) == list(now.proba_columns_[proba.argmax(1)])
    now.save(tmp_path / "again.asg")  # and a gallery saved with a map restores its offsets
    again = FewShotClassifier.load(tmp_path / "again.asg", model=calibrated)
    assert (again.adapt_scale_, again.adapt_offset_) == (now.adapt_scale_, now.adapt_offset_)
    np.testing.assert_allclose(again.predict_proba(queries, sample_rate=RATE), proba)
    broken = Gallery.load(tmp_path / "again.asg")
    broken.meta["calibration"]["adapt_offset"] = "nan"
    broken.save(tmp_path / "broken.asg")
    with pytest.raises(GalleryError, match="damaged calibration"):
        FewShotClassifier.load(tmp_path / "broken.asg", model=calibrated)


def test_reserved_label_and_bad_arguments(model, support):
    clips, _ = support
    with pytest.raises(ParameterError, match="reserved"):
        FewShotClassifier(model).fit(clips[:2], [UNKNOWN, "x"], sample_rate=RATE)
    with pytest.raises(ParameterError, match="rule="):
        FewShotClassifier(model, rule="svm").fit(clips[:2], ["a", "b"], sample_rate=RATE)
    with pytest.raises(ParameterError, match="sample_rate"):
        FewShotClassifier(model).fit(clips[:2], ["a", "b"])
    with pytest.raises(GalleryError, match="no enrolled clips"):
        FewShotClassifier(model).predict(clips[:1], sample_rate=RATE)


def test_audio_embedder_in_an_sklearn_pipeline(model, support):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    clips, labels = support
    pipe = make_pipeline(AudioEmbedder(model, sample_rate=RATE), LogisticRegression(C=100.0, max_iter=500))
    pipe.fit(clips, labels)
    queries = [tone(f, seed=400 + i) for i, f in enumerate(CLASSES.values())]
    assert list(pipe.predict(queries)) == list(CLASSES)
    assert AudioEmbedder(model, sample_rate=RATE).fit_transform(clips).shape == (9, 40)


def test_embed_all_skips_unreadable_files_and_keeps_order(model, tmp_path):
    import soundfile as sf

    good = tmp_path / "good.wav"
    sf.write(good, tone(1200, seed=3).numpy(), RATE)
    missing = tmp_path / "missing.wav"
    junk = tmp_path / "junk.wav"
    junk.write_text("this is not audio")
    emb, kept, failures = model.embed_all([missing, good, junk], on_error="skip")
    assert kept == [1] and emb.shape == (1, 40)
    assert [f.index for f in failures] == [0, 2]
    assert str(missing) in str(failures[0].error)
    with pytest.raises(Exception, match="missing.wav"):
        model.embed_all([missing, good])


@pytest.mark.parametrize("old", ["classify", "calibration", "decision", "gallery"])
def test_old_module_paths_still_work_with_a_deprecation_warning(old):
    import importlib
    import sys

    sys.modules.pop(f"audiosiam.{old}", None)
    with pytest.warns(DeprecationWarning, match=f"audiosiam.{old} moved to audiosiam.fewshot"):
        module = importlib.import_module(f"audiosiam.{old}")
    assert module.__all__ and all(hasattr(module, name) for name in module.__all__)


def test_kneighbors_answers_as_scikit_learns_cosine_distances_and_indices(model, support):
    clips, labels = support
    clf = FewShotClassifier(model).fit(clips, labels, sample_rate=RATE)
    distances, idx = clf.kneighbors(clips[:2], n_neighbors=3, sample_rate=RATE)
    assert distances.shape == idx.shape == (2, 3) and (np.diff(distances, axis=1) >= -1e-6).all()
    assert list(idx[:, 0]) == [0, 1] and np.allclose(distances[:, 0], 0.0, atol=1e-5)  # each clip is enrolled
    emb = model.embed(clips[:2], sample_rate=RATE)
    expected = 1.0 - (emb @ clf.gallery_.embeddings.T).numpy()
    np.testing.assert_allclose(distances, np.take_along_axis(expected, idx, axis=1), atol=1e-5)
    assert list(clf.labels_[idx[:, 0]]) == labels[:2]
    assert (clf.kneighbors(clips[:2], 3, False, sample_rate=RATE) == idx).all()
    with pytest.warns(DeprecationWarning, match="n_neighbors"):
        assert (clf.kneighbors(clips[:2], k=3, sample_rate=RATE)[1] == idx).all()
