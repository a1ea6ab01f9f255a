"""The decision rules (audiosiam.fewshot.rules) and that classification and evaluation run the same ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiosiam.data.samplers import EpisodicSampler
from audiosiam.errors import ParameterError
from audiosiam.evaluation import few_shot_accuracy
from audiosiam.fewshot import FewShotClassifier
from audiosiam.fewshot.rules import class_scores, equal_error_rate, equal_error_threshold, knn_scores
from audiosiam.models import EmbeddingModel, EncoderConfig, ResNetEncoder
from audiosiam.transforms import LogMelSpectrogram

# the untrained model here carries no calibration map: the classifier's fallback warning is expected
pytestmark = pytest.mark.filterwarnings("ignore:audiosiam. this model carries no calibration map")


def test_knn_weighs_similarities_not_counts():
    # one neighbour of class 0 at 0.90 against two of class 1 at 0.30 (k=3): class 0 wins (0.30 vs 0.20)
    scores, confidence = knn_scores(torch.tensor([[0.9, 0.3, 0.3]]), torch.tensor([[0, 1, 1]]), 2)
    assert scores.argmax(1).item() == 0
    assert torch.allclose(scores, torch.tensor([[0.3, 0.2]]))
    assert confidence.item() == pytest.approx(0.9)


def test_prototype_rule_is_the_nearest_normalised_mean():
    support = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]), dim=1)
    q = torch.nn.functional.normalize(torch.tensor([[0.3, 1.0]]), dim=1)
    scores, confidence = class_scores(q, support, torch.tensor([0, 0, 1]), 2)
    assert scores.argmax(1).item() == 1 and confidence.item() == pytest.approx(scores.max().item())
    with pytest.raises(ParameterError, match="rule"):
        class_scores(q, support, torch.tensor([0, 0, 1]), 2, rule="vote")


def tiny_model(dim):
    return EmbeddingModel(
        LogMelSpectrogram(n_mels=16), ResNetEncoder(EncoderConfig(n_mels=16, channels=(4, 4, 4, 4), embedding_dim=dim))
    )


@pytest.mark.parametrize("rule", ["prototype", "knn"])
def test_evaluation_measures_the_classifier_that_classification_runs(rule):
    # The same episodes scored by few_shot_accuracy and by FewShotClassifier must agree query by query.
    # (evaluate once voted by count while classify summed similarities: they disagreed here.)
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(6).repeat_interleave(8)
    emb = torch.nn.functional.normalize(
        torch.randn(48, 8, generator=g) + 0.6 * torch.randn(6, 8, generator=g)[labels], dim=1
    )
    measured = few_shot_accuracy(
        emb, labels, n_way=3, k_shot=4, n_query=2, episodes=60, rule=rule, n_neighbors=3, seed=5
    )
    sampler = EpisodicSampler(labels.tolist(), 3, 4, 2, 60, seed=5)
    model, correct = tiny_model(8), []
    for support, query in sampler:
        names = [f"c{i // 4}" for i in range(len(support))]
        clf = FewShotClassifier(model, rule=rule, n_neighbors=3, reject=None).add_embeddings(emb[support], names)
        truth = np.array([f"c{i // 2}" for i in range(len(query))], dtype=object)
        correct.append(float((clf.predict_embeddings(emb[query]) == truth).mean()))
    assert measured["accuracy"] == pytest.approx(float(np.mean(correct)), abs=1e-6)


def test_equal_error_rate_and_threshold():
    eer, threshold = equal_error_rate([0.8, 0.9, 0.95], [0.1, 0.2, 0.3])
    assert eer == 0.0 and 0.3 < threshold < 0.8
    assert equal_error_threshold([0.8, 0.9, 0.95], [0.1, 0.2, 0.3]) == threshold
    eer, _ = equal_error_rate([0.4, 0.8, 0.9], [0.1, 0.2, 0.5])
    assert eer == pytest.approx(1 / 3)
    with pytest.raises(ParameterError, match="genuine and impostor"):
        equal_error_rate([], [0.1])


@pytest.mark.parametrize("bad", [1.5, -2, float("nan"), float("inf"), "high", True])
def test_thresholds_outside_the_similarity_range_are_refused(bad):
    from audiosiam.errors import ParameterError
    from audiosiam.fewshot import FewShotClassifier
    from audiosiam.fewshot.rules import check_threshold

    with pytest.raises(ParameterError, match="threshold|reject"):
        check_threshold(bad)
    if not isinstance(bad, str):
        with pytest.raises(ParameterError, match="reject="):
            FewShotClassifier(object(), reject=bad).fit([], [])
    assert check_threshold(-1) == -1.0 and check_threshold("0.7") == 0.7


@pytest.mark.parametrize("bad", [0, -1, 10**6, 2.5, 3.0, "3", True, float("nan"), None])
def test_neighbour_counts_must_be_whole_and_plausible(bad):
    from audiosiam.fewshot.rules import MAX_K, check_k

    with pytest.raises(ParameterError, match="k="):
        check_k(bad)
    with pytest.raises(ParameterError, match="n_neighbors="):
        FewShotClassifier(object(), rule="knn", n_neighbors=bad).fit([], [])
    with pytest.warns(DeprecationWarning, match=r"FewShotClassifier\(k=\.\.\.\) is now n_neighbors"):
        assert FewShotClassifier(tiny_model(8), rule="knn", k=2)._neighbors() == 2  # the old name
    clf = FewShotClassifier(tiny_model(8), rule="knn", n_neighbors=3, reject=None)
    clf.add_embeddings(torch.nn.functional.normalize(torch.randn(4, 8), dim=1), ["a", "a", "b", "b"])
    with pytest.raises(ParameterError, match="n_neighbors="):
        clf.kneighbors(torch.randn(16000).numpy(), n_neighbors=bad, sample_rate=16000)
    assert check_k(np.int64(3)) == 3 and check_k(MAX_K) == MAX_K
