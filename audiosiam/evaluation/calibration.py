"""How far a classifier's answers and probabilities (with ``unknown``) can be trusted: expected calibration
error and seeded open-set episodes in which :class:`~audiosiam.fewshot.FewShotClassifier` enrols and
calibrates itself exactly as ``classify`` does."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..data.samplers import EpisodicSampler
from ..fewshot.rules import check_rule
from .embedding import as_unit_rows, progress_bar
from .few_shot import neighbors_given


def expected_calibration_error(confidence, correct, *, bins: int = 15, weights=None) -> tuple[float, list[list[float]]]:
    """Expected calibration error over equal-width confidence bins, and the reliability table behind it.

    Args:
        confidence (array-like): (N,) the probability each answer was given, in [0, 1].
        correct (array-like): (N,) whether each answer was right (bool or 0/1).
        bins (int, optional): equal-width bins over [0, 1]; the last one includes 1. Default: ``15``.
        weights (array-like or None, optional): (N,) weight of each answer (e.g. to measure at another mix
            of queries than the one asked); ``None``: all 1. Default: ``None``.

    Returns:
        (float, list): ECE = sum over bins of (bin weight share) x ``|accuracy - mean confidence|`` (0 for no
        answers), both weighted, and one ``[mean confidence, accuracy, count]`` row per non-empty bin.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    right = np.asarray(correct, dtype=np.float64)
    w = np.ones_like(conf) if weights is None else np.asarray(weights, dtype=np.float64)
    if conf.size == 0 or w.sum() <= 0:
        return 0.0, []
    which = np.minimum((conf * bins).astype(int), bins - 1)
    ece, table = 0.0, []
    for b in range(bins):
        inside = which == b
        mass = float(w[inside].sum())
        if mass > 0:
            mean_conf = float(np.average(conf[inside], weights=w[inside]))
            acc = float(np.average(right[inside], weights=w[inside]))
            ece += mass / w.sum() * abs(acc - mean_conf)
            table.append([mean_conf, acc, int(inside.sum())])
    return float(ece), table


def calibration_metrics(
    embeddings,
    labels,
    *,
    n_way: int = 5,
    k_shot: int = 1,
    n_query: int = 5,
    episodes: int = 1000,
    rule: str = "prototype",
    n_neighbors: int = 5,
    calibration: dict | str | None = None,
    target_false_accept: float | None = None,
    expected_unknown: float = 0.5,
    adapt: bool = True,
    bins: int = 15,
    seed: int = 0,
    progress: bool = False,
    k: int | None = None,
) -> dict:
    """How far :class:`~audiosiam.fewshot.FewShotClassifier`'s answers and probabilities can be trusted.

    Each seeded episode draws ``2 * n_way`` classes: ``k_shot`` clips of the first ``n_way`` are enrolled
    (the classifier calibrates itself on them, as ``classify`` does) and ``n_query`` clips of every one of
    the ``2 * n_way`` are asked, so half the queries come from classes that were never enrolled.

    * Closed set (queries of enrolled classes, probabilities over the enrolled classes alone, i.e.
      ``P(class | known)``): expected calibration error, Brier score, accuracy, and the share and accuracy
      of answers given >= 0.9.
    * Open set (every query; ``predict_proba`` with its ``unknown`` column, the answer its most probable
      column, right when it is the query's class or ``unknown`` for a class never enrolled): calibration
      error, Brier score over the C + 1 columns, accuracy, the share and accuracy of answers given >= 0.9,
      and the same accuracy over the answers that are a class label (``label_accuracy_at_0.9``).
    * The decision (``predict``) at the chosen criterion: the false-accept rate (queries of classes never
      enrolled that got a label), the false-reject rate (queries of enrolled classes answered
      ``unknown``), the share of queries of enrolled classes given their own label (``known_accuracy``);
      the AUROC of the classifier's rejection score (``1 - P(unknown)``; the best similarity for the earlier
      rule) and, for comparison at equal embeddings, of the best similarity alone.

    Args:
        embeddings (Tensor or array-like): (N, D) embeddings; normalised here.
        labels (Tensor or Sequence[int]): (N,) integer class of each row.
        n_way (int, optional): enrolled classes per episode (as many again are not enrolled). Default: ``5``.
        k_shot (int, optional): enrolment clips per enrolled class. Default: ``1``.
        n_query (int, optional): query clips per class and episode. Default: ``5``.
        episodes (int, optional): seeded episodes. Default: ``1000``.
        rule (str, optional): the classifier's rule, ``"prototype"`` or ``"knn"``. Default: ``"prototype"``.
        n_neighbors (int, optional): neighbours of ``"knn"`` (``k`` is its old name, for one release).
            Default: ``5``.
        calibration (dict, str or None, optional): the calibration map of the model that made the
            embeddings (``model.info["calibration"]``); ``None`` or ``"legacy"``: the earlier rule fitted on
            the enrolment clips alone. Default: ``None``.
        target_false_accept (float or None, optional): the classifier's criterion for ``unknown``
            (:class:`~audiosiam.fewshot.FewShotClassifier`). Default: ``None``.
        expected_unknown (float, optional): the classifier's prior share of queries from classes never
            enrolled, and the mix the open-set metrics are measured at: the episodes ask as many queries of
            each kind, so each is weighted by ``expected_unknown / 0.5`` or ``(1 - expected_unknown) / 0.5``
            (1 at the default). The decision rates (false accept, false reject, known accuracy) do not
            depend on the mix. Default: ``0.5``.
        adapt (bool, optional): the classifier's leave-one-out adaptation. Default: ``True``.
        bins (int, optional): confidence bins of the calibration errors. Default: ``15``.
        seed (int, optional): seed of the episodes. Default: ``0``.
        progress (bool, optional): a progress bar over the episodes. Default: ``False``.
        k (int, optional): the old name of ``n_neighbors``, for one release. Default: ``None``.

    Returns:
        dict: the metrics above (``closed_*``, ``open_*``, ``false_accept_rate``, ``false_reject_rate``,
        ``known_accuracy``, ``open_auroc``, ``similarity_auroc``), ``rejection`` (how ``unknown`` was
        decided; the earlier rule cannot reject with one clip per class), and the reliability tables
        ``closed_reliability`` and ``open_reliability`` (``[confidence, accuracy, count]`` per bin).

    Raises:
        ParameterError: fewer than ``2 * n_way`` classes have ``k_shot + n_query`` clips, or bad counts.
    """

    from sklearn.metrics import roc_auc_score

    from ..fewshot import UNKNOWN, FewShotClassifier, Gallery

    check_rule(rule, neighbors_given(n_neighbors, k), "k" if k is not None else "n_neighbors")
    k = n_neighbors if k is None else k
    emb = as_unit_rows(embeddings)
    label_list = [int(v) for v in torch.as_tensor(labels).tolist()]
    sampler = EpisodicSampler(label_list, 2 * n_way, k_shot, n_query, episodes, seed=seed)
    support_names = [str(c) for c in range(n_way) for _ in range(k_shot)]
    query_truth = np.repeat(np.arange(2 * n_way), n_query)  # classes n_way.. were never enrolled
    known = query_truth < n_way
    closed_conf, closed_right, closed_brier = [], [], []
    open_conf, open_right, open_brier, open_label = [], [], [], []
    rejected, accepted_unknown, known_right, rejection_score, similarity = [], [], [], [], []
    rejection_on = 0
    for support, query in progress_bar(sampler, progress, f"calibration {k_shot}-shot episodes", "episode", episodes):
        enrolled = torch.as_tensor(support)[: n_way * k_shot]  # class-major: the first n_way classes
        clf = FewShotClassifier(
            None,
            rule=rule,
            k=k,
            reject="auto",
            target_false_accept=target_false_accept,
            expected_unknown=expected_unknown,
            adapt=adapt,
            calibration=calibration if calibration is not None else "legacy",
        )
        clf.gallery_ = Gallery(emb.shape[1], "evaluation")  # embeddings given: no model to fingerprint
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "unknown rejection is off" at 1 shot: reported below instead
            clf.add_embeddings(emb[enrolled], support_names)
        columns = np.array([int(c) for c in clf.classes_])  # classes_ are sorted as strings
        q = emb[torch.as_tensor(query)]
        decided = clf.decide_embeddings(q)  # scored once: answers, probabilities, scores
        proba = decided.proba
        c = len(columns)
        if proba.shape[1] == c:  # no unknown column (the earlier rule at one clip per class)
            proba = np.concatenate([proba, np.zeros((len(proba), 1))], axis=1)
        position = np.empty(n_way, dtype=np.int64)
        position[columns] = np.arange(c)  # classes_ are sorted as strings ("10" before "2")
        truth_col = np.where(known, position[np.minimum(query_truth, n_way - 1)], c)
        closed = clf.class_proba_embeddings(q)
        best = closed.argmax(1)
        closed_conf.append(closed[known, best[known]])
        closed_right.append(best[known] == truth_col[known])
        onehot = np.eye(c + 1)[truth_col]
        closed_brier.append(((closed[known] - onehot[known, :c]) ** 2).sum(1))
        answer = proba.argmax(1)
        said = decided.labels
        open_conf.append(proba[np.arange(len(answer)), answer])
        open_right.append(answer == truth_col)
        open_brier.append(((proba - onehot) ** 2).sum(1))
        open_label.append(answer < c)
        labelled = said != UNKNOWN
        rejected.append(~labelled[known])
        accepted_unknown.append(labelled[~known])
        known_right.append(said[known] == np.array([str(v) for v in query_truth[known]], dtype=object))
        rejection_score.append(1.0 - proba[:, -1] if clf.calibration_ is not None else decided.confidence)
        similarity.append(decided.scores.max(axis=1))
        rejection_on += clf.rejects_
    closed_conf, closed_right = np.concatenate(closed_conf), np.concatenate(closed_right)
    open_conf, open_right, open_label = (
        np.concatenate(open_conf),
        np.concatenate(open_right),
        np.concatenate(open_label),
    )
    known_all = np.tile(known, episodes)
    weight = np.where(known_all, (1.0 - expected_unknown) / 0.5, expected_unknown / 0.5)
    closed_ece, closed_table = expected_calibration_error(closed_conf, closed_right, bins=bins)
    open_ece, open_table = expected_calibration_error(open_conf, open_right, bins=bins, weights=weight)
    confident, open_confident = closed_conf >= 0.9, open_conf >= 0.9
    label_confident = open_confident & open_label

    def share_right(mask):
        return float(np.average(open_right[mask], weights=weight[mask])) if mask.any() else float("nan")

    if clf.calibration_ is not None:
        how = "calibration map" + (
            f", target false-accept rate {target_false_accept}" if target_false_accept is not None else ""
        )
    elif rejection_on == episodes:
        how = "earlier rule: equal-error threshold of the enrolment clips"
    else:
        how = f"earlier rule: off in {episodes - rejection_on} of {episodes} episodes (it needs a class with 2+ clips)"
    return {
        "k_shot": k_shot,
        "episodes": episodes,
        "rejection": how,
        "closed_accuracy": float(closed_right.mean()),
        "closed_ece": closed_ece,
        "closed_brier": float(np.concatenate(closed_brier).mean()),
        "closed_share_at_0.9": float(confident.mean()),
        "closed_accuracy_at_0.9": float(closed_right[confident].mean()) if confident.any() else float("nan"),
        "expected_unknown": float(expected_unknown),
        "open_accuracy": float(np.average(open_right, weights=weight)),
        "open_ece": open_ece,
        "open_brier": float(np.average(np.concatenate(open_brier), weights=weight)),
        "open_share_at_0.9": float(np.average(open_confident, weights=weight)),
        "open_accuracy_at_0.9": share_right(open_confident),
        "label_accuracy_at_0.9": share_right(label_confident),
        "false_accept_rate": float(np.concatenate(accepted_unknown).mean()),
        "false_reject_rate": float(np.concatenate(rejected).mean()),
        "known_accuracy": float(np.concatenate(known_right).mean()),
        "open_auroc": float(roc_auc_score(known_all, np.concatenate(rejection_score))),
        "similarity_auroc": float(roc_auc_score(known_all, np.concatenate(similarity))),
        "closed_reliability": closed_table,
        "open_reliability": open_table,
    }
