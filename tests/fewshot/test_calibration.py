"""The calibration map (audiosiam.fewshot.calibration) and the classifier's probabilities with ``unknown``.

Hand values for the features and the rule; synthetic clusters, where the truth is known, for the fit:
classes are Gaussian clusters around random centres, and the map fitted on some classes must give
calibrated probabilities on other classes drawn the same way.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from audiosiam import evaluation as E
from audiosiam.errors import CheckpointError, ParameterError
from audiosiam.fewshot import UNKNOWN, FewShotClassifier
from audiosiam.fewshot.calibration import (
    FEATURES,
    CalibrationMap,
    ClassStatistics,
    adapt_log_odds,
    class_statistics,
    decision_features,
)
from audiosiam.fewshot.fitting import fit_calibration, open_set_episodes
from audiosiam.fewshot.gallery import Gallery


def clusters(n_classes: int, per_class: int, *, seed: int, spread: float = 0.55, dim: int = 16):
    """Unit embeddings of Gaussian clusters: classes overlap enough that answers are sometimes wrong."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(n_classes, dim, generator=g), dim=1)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    emb = centres[labels] + spread * torch.randn(len(labels), dim, generator=g) / math.sqrt(dim) * 2
    return torch.nn.functional.normalize(emb, dim=1), labels


@pytest.fixture(scope="module")
def fitted():
    emb, labels = clusters(40, 14, seed=1)
    return fit_calibration(emb, labels, episodes=400, seed=0)


def test_class_statistics_by_hand():
    e = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    stats = class_statistics(e, torch.tensor([0, 0, 1]), 2)
    np.testing.assert_allclose(stats.shots, [2, 1])
    assert stats.cohesion[0] == pytest.approx(0.6) and math.isnan(stats.cohesion[1])
    assert stats.separation == pytest.approx((0.0 + 0.8) / 2)  # the two cross-class pairs
    assert math.isnan(class_statistics(e[:2], torch.tensor([0, 0]), 1).separation)


def test_features_by_hand():
    stats = ClassStatistics(np.array([3.0, 1.0, 2.0]), np.array([0.5, np.nan, 0.7]), 0.2)
    x, top = decision_features(np.array([[0.9, 0.5, 0.1], [0.1, 0.6, -math.inf]]), stats, (0.4, 0.0))
    assert list(top) == [0, 1] and x.shape == (2, len(FEATURES))
    row = dict(zip(FEATURES, x[0], strict=True))
    assert row["top"] == 0.9 and row["margin"] == pytest.approx(0.4) and row["log_shots"] == pytest.approx(math.log(3))
    assert row["cohesion"] == 0.5 and row["log_way"] == pytest.approx(math.log(3)) and row["separation"] == 0.2
    row = dict(zip(FEATURES, x[1], strict=True))  # class 2 absent from this row; class 1 has one clip
    assert (
        row["margin"] == pytest.approx(0.5) and row["cohesion"] == 0.4 and row["log_way"] == pytest.approx(math.log(2))
    )
    one = decision_features(np.array([[0.7]]), ClassStatistics(np.ones(1), np.full(1, np.nan), np.nan), (0.4, 0.3))[0]
    assert one[0, FEATURES.index("margin")] == pytest.approx(0.7)  # runner-up 0 with one class
    assert one[0, FEATURES.index("separation")] == 0.3


def test_the_rule_by_hand():
    weights = [0.0] * len(FEATURES)
    weights[FEATURES.index("bias")], weights[FEATURES.index("top")] = -4.0, 8.0
    cal = CalibrationMap(weights, [math.log(0.1), 0.0, 0.0, 0.0], 0.5, 0.0)
    scores = np.array([[0.8, 0.6], [0.3, 0.2]])
    stats = ClassStatistics(np.array([2.0, 2.0]), np.array([0.5, 0.5]), 0.1)
    p = cal.proba(scores, stats)
    known = 1 / (1 + np.exp(-(-4 + 8 * scores.max(1))))
    closed = np.exp(scores / 0.1) / np.exp(scores / 0.1).sum(1, keepdims=True)
    np.testing.assert_allclose(p[:, :2], known[:, None] * closed)
    np.testing.assert_allclose(p[:, 2], 1 - known)
    np.testing.assert_allclose(p.sum(1), 1.0)
    shifted = cal.proba(scores, stats, offset=-1.0)  # an offset moves mass to unknown, keeps the class ratios
    assert (shifted[:, 2] > p[:, 2]).all()
    np.testing.assert_allclose(shifted[:, 0] / shifted[:, 1], p[:, 0] / p[:, 1])


@pytest.mark.slow
def test_a_map_round_trips_and_a_damaged_one_is_refused(fitted):
    back = CalibrationMap.from_dict(fitted.to_dict())
    assert back == fitted
    damaged = fitted.to_dict() | {"weights": fitted.weights[:-1]}
    with pytest.raises(CheckpointError, match="fit_calibration"):
        CalibrationMap.from_dict(damaged)
    with pytest.raises(CheckpointError):
        CalibrationMap.from_dict(fitted.to_dict() | {"version": 99})


def test_episodes_stay_in_one_domain_and_cover_the_shots():
    labels = np.repeat(np.arange(8), 6)
    domains = np.where(labels < 4, "words", "sounds")
    shots = set()
    for support, codes, queries, truth in open_set_episodes(labels, domains=domains, episodes=60, max_shots=4):
        used = set(domains[np.concatenate([support, queries])])
        assert len(used) == 1
        assert len(truth) == 2 * (codes.max() + 1) * 2 and (truth == -1).sum() == len(truth) // 2
        assert set(labels[queries[truth >= 0]]) == set(labels[support])  # known queries: the enrolled classes
        assert not set(labels[queries[truth < 0]]) & set(labels[support])
        shots.add(len(support) // (codes.max() + 1))
    assert shots == {1, 2, 3, 4}
    with pytest.raises(ParameterError, match="two classes"):
        next(open_set_episodes(np.zeros(10, dtype=int)))


@pytest.mark.slow
def test_fitted_map_is_calibrated_on_unseen_synthetic_classes(fitted):
    emb, labels = clusters(30, 14, seed=2)  # other classes, same generator
    for shot in (1, 5):
        r = E.calibration_metrics(emb, labels, k_shot=shot, n_query=3, episodes=150, calibration=fitted.to_dict())
        assert r["rejection"] == "calibration map"
        assert r["open_ece"] < 0.06 and r["closed_ece"] < 0.05, r
        assert 0.2 < r["open_accuracy"] < 0.99  # neither trivial nor hopeless
        assert r["false_accept_rate"] < 1.0  # one clip per class can already reject
    blind = E.calibration_metrics(
        torch.randn(420, 16), labels, k_shot=3, episodes=40, calibration=fitted.to_dict(), adapt=False
    )
    assert 0.35 < blind["open_auroc"] < 0.65  # without structure the map cannot tell known from unknown


@pytest.mark.slow
def test_target_false_accept_is_met_on_new_classes(fitted):
    emb, labels = clusters(30, 14, seed=3)
    for target in (0.05, 0.3):
        r = E.calibration_metrics(
            emb, labels, k_shot=3, n_query=3, episodes=150, calibration=fitted.to_dict(), target_false_accept=target
        )
        assert abs(r["false_accept_rate"] - target) < 0.07, (
            target,
            r["false_accept_rate"],
        )  # quantiles of other classes
    with pytest.raises(ParameterError, match="target_false_accept"):
        fitted.unknown_offset(1.5, np.ones(3))


def test_adapt_log_odds_by_hand():
    assert adapt_log_odds(np.full(5, 1.0), np.full(5, -1.0)) == (1.0, 0.0)  # too few: no adaptation
    a, delta = adapt_log_odds(np.full(50, 2.0), np.full(50, -2.0))  # symmetric: no shift
    assert delta == pytest.approx(0.0, abs=1e-3) and a > 1  # and clean separation sharpens
    a, low = adapt_log_odds(np.full(200, -1.0), np.full(200, -3.0))  # known clips look unknown to the map
    assert 0.5 < low < 5.0
    assert adapt_log_odds(np.full(12, -1.0), np.full(12, -3.0))[1] < low  # the prior holds few clips back
    rng = np.random.default_rng(0)
    a, _ = adapt_log_odds(rng.normal(0.5, 2, 400), rng.normal(-0.5, 2, 400))  # the map overstates: softer
    assert a < 0.8


def classifier(fitted, emb, labels, **kwargs):
    clf = FewShotClassifier(None, calibration={"prototype": fitted.to_dict()}, **kwargs)
    clf.gallery_ = Gallery(emb.shape[1], "test")
    return clf.add_embeddings(emb, [f"c{int(v)}" for v in labels])


def test_predict_proba_has_unknown_and_predict_is_its_argmax(fitted):
    emb, labels = clusters(10, 8, seed=4)
    enrolled = labels < 5
    support = torch.nonzero(enrolled).flatten()[::2]  # 4 clips of each of 5 classes
    clf = classifier(fitted, emb[support], labels[support])
    queries = emb[~torch.isin(torch.arange(len(labels)), support)]
    proba = clf.predict_proba_embeddings(queries)
    said = clf.predict_embeddings(queries)
    assert list(clf.proba_columns_) == [f"c{i}" for i in range(5)] + [UNKNOWN]
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert (clf.proba_columns_[proba.argmax(1)] == said).all()
    unknown_rows = said == UNKNOWN
    assert unknown_rows.any() and (said != UNKNOWN).any()
    assert (proba[unknown_rows, :-1].max(1) <= proba[unknown_rows, -1]).all()
    closed = classifier(fitted, emb[support], labels[support], reject=None)
    p = closed.predict_proba_embeddings(queries)
    assert p.shape == (len(queries), 5) and UNKNOWN not in closed.predict_embeddings(queries)
    np.testing.assert_allclose(p, proba[:, :-1] / proba[:, :-1].sum(1, keepdims=True))
    fixed = classifier(fitted, emb[support], labels[support], reject=0.99)  # a similarity threshold decides
    assert (fixed.predict_embeddings(queries) == UNKNOWN).all()
    assert fixed.predict_proba_embeddings(queries).shape == proba.shape


def test_enrolment_clips_adapt_the_map_when_there_are_enough(fitted):
    emb, labels = clusters(6, 12, seed=5)
    few = torch.tensor([0, 1, 12, 13, 24, 25])  # 2 clips of 3 classes: fewer than 10 queries of a kind
    small = classifier(fitted, emb[few], labels[few])
    assert (small.adapt_scale_, small.adapt_offset_) == (1.0, 0.0)
    many = classifier(fitted, emb, labels)
    assert many.adapt_offset_ != 0.0 and many.adapt_scale_ != 1.0
    off = classifier(fitted, emb, labels, adapt=False)
    assert (off.adapt_scale_, off.adapt_offset_) == (1.0, 0.0)


@pytest.mark.slow
def test_knn_rule_uses_its_own_map():
    emb, labels = clusters(30, 12, seed=6)
    cal = fit_calibration(emb, labels, rule="knn", k=3, episodes=200)
    clf = FewShotClassifier(None, rule="knn", n_neighbors=3, calibration={"knn": cal.to_dict()})
    clf.gallery_ = Gallery(16, "test")
    clf.add_embeddings(emb[:60], [str(int(v)) for v in labels[:60]])
    proba = clf.predict_proba_embeddings(emb[60:90])
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert clf.calibration_.rule == "knn"


def test_a_model_without_a_map_warns_once_and_keeps_the_earlier_rule():
    class Bare:
        info: dict = {}
        embedding_dim = 16

    emb, labels = clusters(4, 4, seed=7)
    model = Bare()
    clf = FewShotClassifier(model)
    clf.gallery_ = Gallery(16, "test")
    with pytest.warns(UserWarning, match="no calibration map"):
        clf.add_embeddings(emb, [str(int(v)) for v in labels])
    assert clf.calibration_ is None and clf.threshold_ is not None and clf.temperature_ > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second classifier of the same model is not warned again
        other = FewShotClassifier(model)
        other.gallery_ = Gallery(16, "test")
        other.add_embeddings(emb, [str(int(v)) for v in labels])
    proba = other.predict_proba_embeddings(emb)
    said = other.predict_embeddings(emb)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert (other.proba_columns_[proba.argmax(1)] == said).all()


def test_same_probability_rises_with_similarity(fitted):
    clf = FewShotClassifier(None, calibration={"prototype": fitted.to_dict()})
    p = clf.same_probability([-0.2, 0.3, 0.6, 0.95])
    assert (np.diff(p) > 0).all() and 0 < p[0] < 0.5 < p[-1] < 1
    assert np.isnan(FewShotClassifier(None, calibration="legacy").same_probability(0.5)).all()


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["prototype", "knn"])
def test_a_thousand_class_gallery_is_answered_not_rejected(rule):
    """A map fitted on episodes of at most 10 classes, used on 1,000 well-separated classes: the gallery is
    described within what the map saw (FeatureLimits), so near-centre queries get their class, not unknown."""
    emb, labels = clusters(40, 14, seed=1, spread=0.3, dim=64)
    cal = fit_calibration(emb, labels, rule=rule, episodes=300, seed=0)
    assert cal.limits.ways == 10 and cal.limits.shots == 10 and cal.limits.separation[0] < cal.limits.separation[1]
    gallery, codes = clusters(1000, 4, seed=2, spread=0.3, dim=64)
    g = torch.Generator().manual_seed(3)
    centres = torch.nn.functional.normalize(gallery.view(1000, 4, -1).mean(1), dim=1)
    queries = torch.nn.functional.normalize(centres + 0.3 * torch.randn(1000, 64, generator=g) / 4, dim=1)
    clf = FewShotClassifier(None, rule=rule, n_neighbors=3, calibration={rule: cal.to_dict()})
    clf.gallery_ = Gallery(64, "test")
    clf.add_embeddings(gallery, [str(int(c)) for c in codes])
    answers = clf.predict_embeddings(queries)
    assert (answers == np.array([str(i) for i in range(1000)], dtype=object)).mean() >= 0.99
    x, _ = decision_features(clf.scores_embeddings(queries)[0].numpy(), clf.stats_, (0.5, 0.0), cal.limits)
    log_way, log_shots = x[:, FEATURES.index("log_way")], x[:, FEATURES.index("log_shots")]
    assert np.allclose(log_way, math.log(10)) and np.allclose(log_shots, math.log(4))  # described as 10 classes
    separation = x[:, FEATURES.index("separation")]
    assert (separation >= cal.limits.separation[0]).all() and (separation <= cal.limits.separation[1]).all()


def test_expected_unknown_moves_the_log_odds_by_the_prior_ratio(fitted):
    emb, labels = clusters(6, 5, seed=4)
    queries = clusters(12, 2, seed=5)[0]
    proba = {}
    for u in (0.5, 0.2, 0.05):
        clf = FewShotClassifier(None, expected_unknown=u, calibration={"prototype": fitted.to_dict()})
        clf.gallery_ = Gallery(16, "test")
        clf.add_embeddings(emb, [str(int(c)) for c in labels])
        proba[u] = clf.predict_proba_embeddings(queries)
    for u in (0.2, 0.05):
        log_odds = np.log1p(-proba[u][:, -1]) - np.log(proba[u][:, -1])
        base = np.log1p(-proba[0.5][:, -1]) - np.log(proba[0.5][:, -1])
        np.testing.assert_allclose(log_odds - base, math.log((1 - u) / u), rtol=1e-6)
    assert (proba[0.05][:, -1] < proba[0.5][:, -1]).all()
    for bad in (0, 1, 1.5, float("nan"), True, "0.2"):
        with pytest.raises(ParameterError, match="expected_unknown"):
            FewShotClassifier(None, expected_unknown=bad)._check_params()


def test_same_threshold_is_where_the_probability_crosses_one_half(fitted):
    t = fitted.same_threshold()
    p = fitted.same_probability([t - 1e-3, t + 1e-3])
    assert p[0] < 0.5 <= p[1]
    grid = np.linspace(t, 1, 200)
    assert (fitted.same_probability(grid) >= 0.5 - 1e-6).all()
