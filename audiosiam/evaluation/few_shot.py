"""Few-shot accuracy over seeded N-way K-shot episodes, and open-set AUROC of never-enrolled classes."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .._deprecated import renamed
from ..data.samplers import EpisodicSampler
from ..errors import ParameterError
from ..fewshot.rules import check_rule, class_scores
from .embedding import as_unit_rows, progress_bar


def neighbors_given(n_neighbors: int, k: int | None) -> int:
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
            ``audiosiam.fewshot.rules`` that classification runs. Default: ``"prototype"``.
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
    check_rule(rule, neighbors_given(n_neighbors, k), "k" if k is not None else "n_neighbors")
    k = n_neighbors if k is None else k
    emb = as_unit_rows(embeddings)
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
    episodes_bar = progress_bar(sampler, progress, f"{n_way}-way {k_shot}-shot episodes", "episode", episodes)
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

    emb, labels = as_unit_rows(embeddings), torch.as_tensor(labels)
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
