"""Evaluation of embeddings: few-shot episodes, verification, retrieval and open-set detection.

All functions take embeddings (N, D) (normalised here) and integer labels, so they serve any model. Use
:func:`embed_dataset` to get them from a model and a dataset.

* Few-shot: N-way K-shot episodes over classes (the classes should be unseen in training), nearest
  prototype or k-NN, mean accuracy with a 95% confidence interval (1.96 standard errors over episodes).
  With ``groups`` (e.g. speakers), query clips never share a group with their episode's support clips
  (unless ``cross_group=False``); with ``query_groups`` only those groups' clips are queries, e.g. the
  speaker left out of training in a leave-one-speaker-out evaluation.
* Verification: all same/different pairs (or a seeded sample), cosine similarity as the score; equal
  error rate, the threshold at the EER, and the normalised minimum detection cost (NIST SRE:
  p_target=0.01, C_miss=C_fa=1).
* Retrieval: precision@1, R-precision and MAP@R (Musgrave et al., 2020), with each query's own clip
  excluded from the ranking, as pytorch-metric-learning's ``AccuracyCalculator`` computes them.
* Open set: AUROC of the best prototype similarity, known-class queries against clips of classes that
  were never enrolled.
* Calibration: how far :class:`~audiosiam.fewshot.FewShotClassifier`'s answers and probabilities (with
  ``unknown``) can be trusted, over seeded open-set episodes in which the classifier enrols and calibrates
  itself exactly as ``classify`` does, with the model's calibration map (:func:`calibration_metrics`).
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Sequence

import numpy as np
import torch

from ._deprecated import renamed
from .data.samplers import EpisodicSampler
from .errors import ParameterError
from .fewshot.rules import check_rule, class_scores, equal_error_rate

__all__ = [
    "embed_dataset",
    "few_shot_accuracy",
    "verification_metrics",
    "retrieval_metrics",
    "open_set_auroc",
    "calibration_metrics",
    "expected_calibration_error",
]


def _unit(embeddings) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.as_tensor(embeddings, dtype=torch.float32), dim=1)


def _bar(iterable, progress: bool, desc: str, unit: str, total: int | None = None):
    """``iterable``, under a progress bar that goes away when done if ``progress``."""
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, unit=unit, total=total, leave=False, dynamic_ncols=True)


def embed_items(model, items, *, cache=None, progress: bool = True) -> torch.Tensor:
    """Embeddings of validation clips (``ClipItem``s), read from ``cache`` when it holds as many rows, else
    computed (and written there): what the calibration scripts and benchmarks embed.

    Args:
        model (EmbeddingModel): the encoder.
        items (Sequence[ClipItem]): the clips, in order.
        cache (str, Path or None, optional): a ``torch.save`` file of these clips' embeddings. Default: ``None``.
        progress (bool, optional): a progress bar while embedding. Default: ``True``.

    Returns:
        Tensor: (N, D) L2-normalised float32 embeddings, in the items' order.

    Raises:
        ParameterError: a clip cannot be read, or ``cache`` holds another number of rows.
    """
    from pathlib import Path

    if cache is not None and Path(cache).is_file():
        emb = torch.load(cache)
        if len(emb) != len(items):
            raise ParameterError(f"{cache} holds {len(emb)} embeddings, not the {len(items)} clips asked; delete it")
        return emb
    emb, _, failures = model.embed_all([it.path for it in items], on_error="skip", progress=progress)
    if failures:
        raise ParameterError(f"{len(failures)} validation clips could not be read; the first: {failures[0].error}")
    if cache is not None:
        from .files import write_output

        write_output(cache, lambda tmp: torch.save(emb, tmp))
    return emb


def embed_dataset(model, dataset, *, batch_size: int = 64, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of every whole clip of ``dataset`` (its loading and caching, the model's length policy).

    Args:
        model (EmbeddingModel): the encoder; its :meth:`~audiosiam.models.EmbeddingModel.embed` is called.
        dataset (AudioClipDataset): the clips; each is loaded whole (``dataset.load``), not cropped or
            augmented.
        batch_size (int, optional): windows per forward pass. Default: ``64``.
        progress (bool, optional): progress bars over the clips read and the batches embedded.
            Default: ``False``.

    Returns:
        ``(embeddings (N, D), labels (N,))``: L2-normalised float32 embeddings on the CPU, and the
        dataset's integer class indices, in the dataset's order.
    """
    waves = [dataset.load(i) for i in _bar(range(len(dataset)), progress, "reading clips", "clip")]
    emb = model.embed(waves, sample_rate=dataset.sample_rate, batch_size=batch_size, progress=progress)
    return emb, torch.as_tensor(dataset.labels)


def _old_name_k(n_neighbors: int, k: int | None) -> int:
    if k is None:
        return n_neighbors
    renamed("k=...", "n_neighbors=...", stacklevel=4)
    return k


def few_shot_accuracy(
    embeddings,
    labels,
    *,
    n_way: int = 5,
    k_shot: int = 1,
    n_query: int = 5,
    episodes: int = 1000,
    rule: str = "prototype",
    n_neighbors: int = 1,
    groups: Sequence[str] | None = None,
    cross_group: bool = True,
    query_groups: Sequence[str] | None = None,
    seed: int = 0,
    progress: bool = False,
    k: int | None = None,
) -> dict:
    """Mean N-way K-shot accuracy over seeded episodes, with its 95% confidence interval.

    Args:
        embeddings (Tensor or array-like): (N, D); normalised here.
        labels (Tensor or Sequence[int]): (N,) integer class of each row.
        n_way (int, optional): classes per episode. Default: ``5``.
        k_shot (int, optional): support clips per class. Default: ``1``.
        n_query (int, optional): query clips per class; only classes with ``k_shot + n_query`` clips take
            part. Default: ``5``.
        episodes (int, optional): how many episodes are averaged. Default: ``1000``.
        rule (str, optional): ``"prototype"`` or ``"knn"`` with ``n_neighbors`` neighbours, the rules of
            :mod:`audiosiam.fewshot.rules` that classification runs. Default: ``"prototype"``.
        n_neighbors (int, optional): neighbours of ``"knn"`` (``k`` is its old name, for one release).
            Default: ``1``.
        groups (Sequence[str] or None, optional): (N,) group names (e.g. speakers); with ``cross_group``,
            queries never share a group with their episode's support. Default: ``None``.
        cross_group (bool, optional): keep query and support groups apart (no effect without ``groups``).
            Default: ``True``.
        query_groups (Sequence[str] or None, optional): only these groups' clips are queries (support from
            any group); needs ``groups``. Default: ``None``.
        seed (int, optional): seed of the episodes; the same seed draws the same episodes. Default: ``0``.
        progress (bool, optional): a progress bar over the episodes. Default: ``False``.
        k (int, optional): the old name of ``n_neighbors``, for one release. Default: ``None``.

    Returns:
        ``{"accuracy", "ci95", "episodes", "n_way", "k_shot", "n_query", "rule"}``; ``ci95`` is 1.96
        standard errors over episodes (0 for a single episode).

    Raises:
        ParameterError: a bad ``rule`` or ``n_neighbors``, counts below 1, bad groups, or fewer than ``n_way``
            classes with enough clips.
    """
    check_rule(rule, _old_name_k(n_neighbors, k), "k" if k is not None else "n_neighbors")
    k = n_neighbors if k is None else k
    emb = _unit(embeddings)
    labels = [int(v) for v in torch.as_tensor(labels).tolist()]
    sampler = EpisodicSampler(
        labels,
        n_way,
        k_shot,
        n_query,
        episodes,
        groups=groups,
        cross_group=cross_group,
        query_groups=query_groups,
        seed=seed,
    )
    accs = np.empty(episodes)
    support_truth = torch.arange(n_way).repeat_interleave(k_shot)
    truth = torch.arange(n_way).repeat_interleave(n_query)
    episodes_bar = _bar(sampler, progress, f"{n_way}-way {k_shot}-shot episodes", "episode", episodes)
    for e, (support, query) in enumerate(episodes_bar):
        scores, _ = class_scores(emb[query], emb[support], support_truth, n_way, rule=rule, k=k)
        accs[e] = float((scores.argmax(1) == truth).float().mean())
    return {
        "accuracy": float(accs.mean()),
        "ci95": float(1.96 * accs.std(ddof=1) / math.sqrt(episodes)) if episodes > 1 else 0.0,
        "episodes": episodes,
        "n_way": n_way,
        "k_shot": k_shot,
        "n_query": n_query,
        "rule": rule,
    }


def _pair_scores(emb: torch.Tensor, labels: torch.Tensor, max_pairs: int, seed: int):
    n = emb.shape[0]
    total = n * (n - 1) // 2
    if total <= max_pairs:
        i, j = torch.triu_indices(n, n, offset=1)
    else:
        g = torch.Generator().manual_seed(seed)
        i = torch.randint(n, (max_pairs,), generator=g)
        j = (i + torch.randint(1, n, (max_pairs,), generator=g)) % n
    scores = (emb[i] * emb[j]).sum(1)
    same = labels[i] == labels[j]
    return scores.numpy(), same.numpy()


def verification_metrics(
    embeddings,
    labels,
    *,
    p_target: float = 0.01,
    max_pairs: int = 2_000_000,
    seed: int = 0,
    threshold: float | None = None,
) -> dict:
    """EER, the similarity threshold at the EER on these clips, and normalised minDCF over same/different
    pairs; with ``threshold`` (the model's own, :func:`audiosiam.fewshot.verification.verification_threshold`),
    the error rates of the decisions made at it.

    Args:
        embeddings (Tensor or array-like): (N, D); normalised here, the score of a pair is its cosine.
        labels (Tensor or Sequence[int]): (N,) integer class of each row.
        p_target (float, optional): prior of a same-class trial in the detection cost (C_miss = C_fa = 1).
            Default: ``0.01``.
        max_pairs (int, optional): all N (N - 1) / 2 pairs are scored up to this many; beyond, a seeded
            sample of ``max_pairs`` random pairs (two different clips each, drawn with replacement).
            Default: ``2_000_000``.
        seed (int, optional): seed of that sample. Default: ``0``.
        threshold (float or None, optional): a decision threshold to score ("same" at or above it).
            Default: ``None``.

    Returns:
        ``{"eer", "eer_threshold", "min_dcf", "p_target", "pairs", "same_pairs"}``, and with ``threshold``
        ``"model_threshold"``, ``"false_accept_at_model_threshold"``, ``"false_reject_at_model_threshold"``.

    Raises:
        ParameterError: the pairs are all same-class or all different-class.
    """
    emb, labels = _unit(embeddings), torch.as_tensor(labels)
    scores, same = _pair_scores(emb, labels, max_pairs, seed)
    if same.all() or not same.any():
        raise ParameterError("labels: verification needs both same-class and different-class pairs")
    eer, eer_threshold = equal_error_rate(scores[same], scores[~same])
    order = np.argsort(-scores, kind="stable")
    y = same[order]
    n_pos, n_neg = y.sum(), (~y).sum()
    far = np.cumsum(~y) / n_neg  # impostors accepted with the threshold just below each score
    frr = 1.0 - np.cumsum(y) / n_pos  # genuine rejected
    dcf = p_target * frr + (1 - p_target) * far
    min_dcf = float(min(dcf.min(), min(p_target, 1 - p_target)) / min(p_target, 1 - p_target))
    out = {
        "eer": eer,
        # cosines of unit vectors can round a hair past +-1; a threshold is a similarity, and checkpoints refuse others
        "eer_threshold": min(1.0, max(-1.0, float(eer_threshold))),
        "min_dcf": min_dcf,
        "p_target": p_target,
        "pairs": int(len(scores)),
        "same_pairs": int(n_pos),
    }
    if threshold is not None:
        out["model_threshold"] = float(threshold)
        out["false_accept_at_model_threshold"] = float((scores[~same] >= threshold).mean())
        out["false_reject_at_model_threshold"] = float((scores[same] < threshold).mean())
    return out


def retrieval_metrics(embeddings, labels) -> dict:
    """precision@1, R-precision and MAP@R, each query's own clip excluded (queries = the whole set).

    R is the number of other clips of the query's class; queries whose class has no other clip are left
    out of the means.

    Args:
        embeddings (Tensor or array-like): (N, D); normalised here, ranked by cosine similarity.
        labels (Tensor or Sequence[int]): (N,) integer class of each row.

    Returns:
        ``{"precision_at_1", "r_precision", "map_at_r"}``.

    Raises:
        ParameterError: no class has two clips.
    """
    emb, labels = _unit(embeddings), torch.as_tensor(labels)
    counts = torch.bincount(labels - labels.min())[labels - labels.min()] - 1  # R per query
    keep = counts > 0
    max_r = int(counts.max()) if keep.any() else 0
    if max_r == 0:
        raise ParameterError("labels: retrieval needs at least one class with two clips")
    p1, rprec, map_r = [], [], []
    for start in range(0, emb.shape[0], 1024):
        sims = emb[start : start + 1024] @ emb.T
        rows = torch.arange(sims.shape[0])
        sims[rows, rows + start] = -math.inf
        top = sims.topk(max_r, dim=1).indices
        hits = (labels[top] == labels[start : start + 1024, None]).float()
        r = counts[start : start + 1024]
        within = torch.arange(max_r)[None, :] < r[:, None]
        hits = hits * within
        precision_at = hits.cumsum(1) / torch.arange(1, max_r + 1)[None, :]
        p1.append(hits[:, 0])
        rprec.append(hits.sum(1) / r.clamp_min(1))
        map_r.append((precision_at * hits).sum(1) / r.clamp_min(1))
    p1, rprec, map_r = (torch.cat(v)[keep] for v in (p1, rprec, map_r))
    return {"precision_at_1": float(p1.mean()), "r_precision": float(rprec.mean()), "map_at_r": float(map_r.mean())}


def open_set_auroc(embeddings, labels, known_classes: Sequence[int], *, k_shot: int = 5, seed: int = 0) -> dict:
    """AUROC of "is this query from an enrolled class?" using its best prototype similarity.

    ``k_shot`` clips of each known class are enrolled (seeded); the remaining known clips are positive
    queries, all clips of other classes negative. Needs scikit-learn.

    Args:
        embeddings (Tensor or array-like): (N, D); normalised here.
        labels (Tensor or Sequence[int]): (N,) integer class of each row.
        known_classes (Sequence[int]): the label values that are enrolled.
        k_shot (int, optional): clips enrolled per known class; each needs more than this many.
            Default: ``5``.
        seed (int, optional): seed of the enrolled clips' draw. Default: ``0``.

    Returns:
        ``{"auroc", "known_queries", "unknown_queries", "k_shot"}``.

    Raises:
        ParameterError: a known class has at most ``k_shot`` clips, or the queries are not both known and
            unknown.
    """
    from sklearn.metrics import roc_auc_score

    emb, labels = _unit(embeddings), torch.as_tensor(labels)
    g = torch.Generator().manual_seed(seed)
    protos, enrolled = [], torch.zeros(len(labels), dtype=torch.bool)
    for c in known_classes:
        members = torch.nonzero(labels == c).flatten()
        if len(members) <= k_shot:
            raise ParameterError(f"class {c}: has {len(members)} clips, needs more than k_shot={k_shot}")
        pick = members[torch.randperm(len(members), generator=g)[:k_shot]]
        enrolled[pick] = True
        protos.append(torch.nn.functional.normalize(emb[pick].mean(0), dim=0))
    known = torch.isin(labels, torch.as_tensor(list(known_classes)))
    queries = ~enrolled
    best = (emb[queries] @ torch.stack(protos).T).max(1).values
    truth = known[queries]
    if truth.all() or not truth.any():
        raise ParameterError("open-set evaluation needs both known and unknown query clips")
    return {
        "auroc": float(roc_auc_score(truth.numpy(), best.numpy())),
        "known_queries": int(truth.sum()),
        "unknown_queries": int((~truth).sum()),
        "k_shot": k_shot,
    }


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

    from .fewshot import UNKNOWN, FewShotClassifier, Gallery

    check_rule(rule, _old_name_k(n_neighbors, k), "k" if k is not None else "n_neighbors")
    k = n_neighbors if k is None else k
    emb = _unit(embeddings)
    label_list = [int(v) for v in torch.as_tensor(labels).tolist()]
    sampler = EpisodicSampler(label_list, 2 * n_way, k_shot, n_query, episodes, seed=seed)
    support_names = [str(c) for c in range(n_way) for _ in range(k_shot)]
    query_truth = np.repeat(np.arange(2 * n_way), n_query)  # classes n_way.. were never enrolled
    known = query_truth < n_way
    closed_conf, closed_right, closed_brier = [], [], []
    open_conf, open_right, open_brier, open_label = [], [], [], []
    rejected, accepted_unknown, known_right, rejection_score, similarity = [], [], [], [], []
    rejection_on = 0
    for support, query in _bar(sampler, progress, f"calibration {k_shot}-shot episodes", "episode", episodes):
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


def format_table(results: dict) -> str:
    """A readable two-column table of a flat or one-level nested results dict.

    Args:
        results (dict): name -> value, or name -> dict of name -> value (a metric function's dict, or
            several under their names); floats are printed with 4 decimals.

    Returns:
        str: one line per value, nested entries indented under their name.
    """
    lines = []
    for name, value in results.items():
        if isinstance(value, dict):
            lines.append(f"{name}:")
            for key, v in value.items():
                if isinstance(v, list):  # a table of rows (e.g. reliability bins): in --format json
                    lines.append(f"  {key:<24} {len(v)} rows (see --format json)")
                else:
                    lines.append(f"  {key:<24} {v:.4f}" if isinstance(v, float) else f"  {key:<24} {v}")
        else:
            lines.append(f"{name:<26} {value:.4f}" if isinstance(value, float) else f"{name:<26} {value}")
    return "\n".join(lines)


def to_json(results: dict) -> str:
    """The results dict as indented JSON, keys in their order."""
    return json.dumps(results, indent=2, sort_keys=False)
