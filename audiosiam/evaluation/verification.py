"""Verification (same or different, EER, minimum detection cost) and retrieval (precision@1, R-precision,
MAP@R) over all pairs of a labelled set."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import ParameterError
from ..fewshot.rules import equal_error_rate
from .embedding import as_unit_rows


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
    pairs; with ``threshold`` (the model's own, ``audiosiam.fewshot.verification.verification_threshold()``),
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
    emb, labels = as_unit_rows(embeddings), torch.as_tensor(labels)
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
    emb, labels = as_unit_rows(embeddings), torch.as_tensor(labels)
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
