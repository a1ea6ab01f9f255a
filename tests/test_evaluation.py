"""Evaluation metrics on embeddings whose right answers are known."""

from __future__ import annotations

import pytest
import torch

from audiosiam import evaluation as E
from audiosiam.errors import ParameterError
from audiosiam.evaluation.calibration import expected_calibration_error
from audiosiam.evaluation.tables import format_table


def clusters(n_classes=10, per_class=20, dim=16, spread=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, dim, generator=g)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    return centres[labels] + spread * torch.randn(len(labels), dim, generator=g), labels


def test_few_shot_accuracy_separated_vs_random():
    emb, labels = clusters(spread=0.1)
    good = E.few_shot_accuracy(emb, labels, episodes=200)
    assert good["accuracy"] > 0.99 and good["ci95"] < 0.01
    noise = torch.randn_like(emb)
    chance = E.few_shot_accuracy(noise, labels, episodes=400)
    assert abs(chance["accuracy"] - 0.2) < 0.05  # 5-way chance
    assert chance["ci95"] > 0
    knn = E.few_shot_accuracy(emb, labels, k_shot=5, rule="knn", n_neighbors=3, episodes=100)
    assert knn["accuracy"] > 0.99
    with pytest.warns(DeprecationWarning, match=r"k=\.\.\. is now n_neighbors"):
        assert E.few_shot_accuracy(emb, labels, k_shot=5, rule="knn", k=3, episodes=100) == knn  # old name


def test_few_shot_is_seeded():
    emb, labels = clusters(spread=1.0)
    a = E.few_shot_accuracy(emb, labels, episodes=50, seed=1)
    assert a == E.few_shot_accuracy(emb, labels, episodes=50, seed=1)
    assert a != E.few_shot_accuracy(emb, labels, episodes=50, seed=2)


def test_cross_group_episodes_expose_group_shortcuts():
    # Embeddings that encode the group (speaker), not the class: accurate only when groups may match.
    n_classes, per_class = 6, 12
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    groups = [f"s{i % 3}" for i in range(len(labels))]
    g = torch.Generator().manual_seed(0)
    group_centres = torch.randn(3, 8, generator=g) * 5
    emb = torch.stack([group_centres[i % 3] + 0.1 * torch.randn(8, generator=g) for i in range(len(labels))])
    emb = emb + 0.5 * torch.randn(n_classes, 8, generator=g)[labels]
    same = E.few_shot_accuracy(emb, labels, k_shot=1, episodes=300)
    cross = E.few_shot_accuracy(emb, labels, k_shot=1, episodes=300, groups=groups)
    assert cross["accuracy"] < same["accuracy"]


def test_verification_eer_and_min_dcf():
    emb, labels = clusters(spread=0.05)
    good = E.verification_metrics(emb, labels)
    assert good["eer"] < 0.01 and good["min_dcf"] < 0.05 and -1 <= good["eer_threshold"] <= 1
    bad = E.verification_metrics(torch.randn(200, 16), labels)
    assert 0.35 < bad["eer"] < 0.65 and bad["min_dcf"] > 0.9
    with pytest.raises(ParameterError, match="same-class and different-class"):
        E.verification_metrics(emb[:5], torch.zeros(5, dtype=torch.long))


def test_retrieval_agrees_with_pytorch_metric_learning():
    pml = pytest.importorskip("pytorch_metric_learning.utils.accuracy_calculator")
    emb, labels = clusters(spread=0.8, per_class=7)
    ours = E.retrieval_metrics(emb, labels)
    calc = pml.AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"), device=torch.device("cpu")
    )
    theirs = calc.get_accuracy(torch.nn.functional.normalize(emb, dim=1), labels, ref_includes_query=True)
    assert ours["precision_at_1"] == pytest.approx(theirs["precision_at_1"], abs=1e-6)
    assert ours["r_precision"] == pytest.approx(theirs["r_precision"], abs=1e-6)
    assert ours["map_at_r"] == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-6)


def test_open_set_auroc():
    emb, labels = clusters(spread=0.1)
    result = E.open_set_auroc(emb, labels, known_classes=[0, 1, 2, 3, 4], k_shot=5)
    assert result["auroc"] > 0.99 and result["unknown_queries"] == 100
    random = E.open_set_auroc(torch.randn(200, 16), labels, known_classes=[0, 1, 2, 3, 4])
    assert 0.3 < random["auroc"] < 0.7


def test_format_table_is_readable():
    text = format_table({"model": "m", "5-way 1-shot": {"accuracy": 0.9, "episodes": 10}})
    assert "accuracy" in text and "0.9000" in text and "episodes" in text


def test_expected_calibration_error_by_hand():
    ece, table = expected_calibration_error([0.95, 0.95, 0.55, 0.55, 1.0], [1, 0, 1, 1, 1], bins=10)
    # bin [0.9, 1]: confidence (0.95 + 0.95 + 1) / 3, accuracy 2/3; bin [0.5, 0.6): 0.55 and 1.0
    want = 3 / 5 * abs(2 / 3 - 2.9 / 3) + 2 / 5 * abs(1.0 - 0.55)
    assert ece == pytest.approx(want)
    assert [row[2] for row in table] == [2, 3]
    assert expected_calibration_error([], [])[0] == 0.0


def test_calibration_metrics_measure_the_earlier_rule_without_a_map():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(20, 16, generator=g) * 2
    labels = torch.arange(20).repeat_interleave(10)
    tight = centers[labels] + 0.5 * torch.randn(200, 16, generator=g)
    one = E.calibration_metrics(tight, labels, k_shot=1, episodes=60)
    three = E.calibration_metrics(tight, labels, k_shot=3, episodes=60)
    assert one["closed_accuracy"] > 0.95 and three["closed_accuracy"] > 0.95
    assert one["rejection"].startswith("earlier rule: off") and one["false_accept_rate"] == 1.0  # nothing to fit
    assert three["rejection"].startswith("earlier rule: equal-error") and three["false_accept_rate"] < 0.3
    assert three["open_auroc"] > 0.9
    # without structure: chance accuracy, and an unknown query is as confident as a known one
    noise = torch.randn(200, 16, generator=g)
    blind = E.calibration_metrics(noise, labels, k_shot=3, episodes=60)
    assert blind["closed_accuracy"] < 0.4 and 0.35 < blind["open_auroc"] < 0.65
    with pytest.raises(ParameterError):
        E.calibration_metrics(tight, labels % 6, n_way=5, k_shot=3, episodes=5)  # 6 classes < 2 x 5
