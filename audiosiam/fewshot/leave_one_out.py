"""The enrolled clips asked as queries against the gallery without them: how a classifier adapts its
calibration map to the clips a user enrolled (:func:`map_log_odds`), and the scores of the earlier rule's
temperature and threshold (:func:`legacy_scores`, for models without a map).

Both ask at most :data:`CALIBRATION_CLIPS` clips (a seeded random subset): the cost stays bounded on
100k-clip galleries, and the adaptation or threshold changes only by sampling noise.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch

from .calibration import CalibrationMap, ClassStatistics
from .gallery import Gallery
from .rules import knn_scores

#: The most enrolled clips asked leave-one-out.
CALIBRATION_CLIPS = 2000


def _asked(gallery: Gallery) -> torch.Tensor:
    """The indices of the clips asked: all, or a seeded subset of :data:`CALIBRATION_CLIPS`, in order."""
    generator = torch.Generator().manual_seed(0)
    return torch.randperm(len(gallery), generator=generator)[:CALIBRATION_CLIPS].sort().values


def _similarities_without_self(
    gallery: Gallery, sel: torch.Tensor, block: int = 256
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Per block of clips ``sel``: their rows' place and their cosine similarities to every enrolled clip,
    their own set to ``-inf`` (float32: a block of a large gallery stays small)."""
    for start in range(0, len(sel), block):
        part = sel[start : start + block]
        sims = gallery.embeddings[part] @ gallery.embeddings.T
        sims[torch.arange(len(part)), part] = -math.inf
        yield slice(start, start + len(part)), sims


def _knn_scores_without(
    gallery: Gallery, codes: torch.Tensor, sel: torch.Tensor, c: int, n_neighbors: int, *, drop_class: bool = False
) -> torch.Tensor:
    """k-NN class scores (len(sel), c) of clips ``sel`` against the gallery without them (or their class)."""
    out = torch.zeros(len(sel), c, dtype=torch.float64)
    for rows, sims in _similarities_without_self(gallery, sel):
        if drop_class:
            sims = sims.masked_fill(codes[sel[rows], None] == codes[None, :], -math.inf)
        k = min(int(n_neighbors), int(torch.isfinite(sims).sum(1).min()))
        if k < 1:
            continue
        top = sims.topk(k, dim=1)
        out[rows] = knn_scores(top.values.double(), codes[top.indices], c)[0]
    return out


def _nearest_same_and_other(gallery: Gallery, codes: torch.Tensor, sel: torch.Tensor):
    """For clips ``sel``: the similarity of the nearest other clip of their class and of another class."""
    own = torch.full((len(sel),), -math.inf)
    other = torch.full((len(sel),), -math.inf)
    for rows, sims in _similarities_without_self(gallery, sel):
        same = codes[sel[rows], None] == codes[None, :]
        own[rows] = sims.masked_fill(~same, -math.inf).max(dim=1).values
        other[rows] = sims.masked_fill(same, -math.inf).max(dim=1).values
    return own, other


def map_log_odds(
    gallery: Gallery, rule: str, n_neighbors: int, stats: ClassStatistics, calibration: CalibrationMap
) -> tuple[np.ndarray, np.ndarray]:
    """The map's known log-odds of enrolled clips asked leave-one-out (module docstring of
    ``audiosiam.fewshot.calibration``): against the gallery without the clip (those whose class keeps a
    clip) and against the gallery without its class (when another class is left).

    Args:
        gallery (Gallery): the enrolled clips.
        rule (str): ``"prototype"`` or ``"knn"``.
        n_neighbors (int): neighbours of ``"knn"``.
        stats (ClassStatistics): the gallery's class statistics (shots, cohesion).
        calibration (CalibrationMap): the map.

    Returns:
        ``(known, unknown)``: the log-odds of the clips whose class was enrolled, and of those whose class
        was not (empty with a single class).
    """
    classes, codes = gallery.label_indices()
    n, c = len(gallery), len(classes)
    sel = _asked(gallery)
    emb, ys = gallery.embeddings[sel].double(), codes[sel]
    rows = torch.arange(len(sel))
    counts = torch.bincount(codes, minlength=c).double()
    sums = torch.zeros(c, gallery.dim, dtype=torch.float64).index_add_(0, codes, gallery.embeddings.double())
    total, n_all = sums.sum(0), float(n)
    cross = float(total.pow(2).sum() - sums.pow(2).sum())  # twice the summed cosines of cross-class pairs
    pairs = n_all**2 - float(counts.pow(2).sum())  # twice their number
    shots = counts.expand(len(sel), c).clone()
    cohesion = torch.as_tensor(stats.cohesion).expand(len(sel), c).clone()
    shots[rows, ys] -= 1
    own_sum = sums[ys] - emb  # the clip's class without it
    m = shots[rows, ys]
    nan = torch.tensor(math.nan, dtype=torch.float64)
    cohesion[rows, ys] = torch.where(m >= 2, (own_sum.pow(2).sum(1) - m) / (m * (m - 1)).clamp_min(1), nan)
    others = total - sums[ys]  # the clips of the other classes
    sep_pairs = pairs - 2 * (n_all - counts[ys])
    separation = torch.where(sep_pairs > 0, (cross - 2 * (emb * others).sum(1)) / sep_pairs.clamp_min(1), nan)
    if rule == "prototype":
        protos = torch.nn.functional.normalize(sums, dim=1)
        scores = emb @ protos.T
        scores[rows, ys] = (emb * own_sum).sum(1) / own_sum.norm(dim=1).clamp_min(1e-12)
    else:
        scores = _knn_scores_without(gallery, codes, sel, c, n_neighbors)
    has_mate = m >= 1
    mates = ClassStatistics(shots[has_mate].numpy(), cohesion[has_mate].numpy(), separation[has_mate].numpy())
    known = calibration.known_logit(scores[has_mate].numpy(), mates)[0]
    if c < 2:
        return known, np.empty(0)
    without = (
        scores if rule == "prototype" else _knn_scores_without(gallery, codes, sel, c, n_neighbors, drop_class=True)
    ).clone()
    without[rows, ys] = -math.inf  # its class is not enrolled
    sep_pairs = pairs - 2 * counts[ys] * (n_all - counts[ys])
    separation = torch.where(
        sep_pairs > 0, (cross - 2 * (sums[ys] * others).sum(1)) / sep_pairs.clamp_min(1), nan
    )  # the gallery without the clip's class
    full = ClassStatistics(counts.expand(len(sel), c).numpy(), cohesion.numpy(), separation.numpy())
    full.cohesion[rows.numpy(), ys.numpy()] = math.nan  # not used: the class is absent from these rows
    unknown = calibration.known_logit(without.numpy(), full)[0]
    return known, unknown


def legacy_scores(gallery: Gallery, rule: str, n_neighbors: int):
    """Scores of enrolled clips against the gallery without them, for the earlier rule (a temperature and an
    equal-error threshold; ``audiosiam.fewshot.classifier``).

    Args:
        gallery (Gallery): the enrolled clips.
        rule (str): ``"prototype"`` or ``"knn"``.
        n_neighbors (int): neighbours of ``"knn"``.

    Returns:
        ``(genuine, impostor, scores, targets)``: own-class confidences of clips whose class has another
        member, best other-class confidences, and the class scores with true class indices used to fit the
        temperature.
    """
    classes, codes = gallery.label_indices()
    n, c = len(gallery), len(classes)
    sel = _asked(gallery)
    emb, ys = gallery.embeddings[sel], codes[sel]
    rows = torch.arange(len(sel))
    has_mate = torch.bincount(codes, minlength=c)[ys] >= 2
    if rule == "prototype":
        sums = torch.zeros(c, gallery.dim).index_add_(0, codes, gallery.embeddings)
        raw = emb @ sums.T
        norms = sums.norm(dim=1).expand(len(sel), c).clone()
        own_raw = raw[rows, ys]
        # The clip's own class without it: sum - e, whose norm follows from |e| = 1.
        norms[rows, ys] = (sums[ys].pow(2).sum(1) - 2 * own_raw + 1.0).clamp_min(0).sqrt()
        raw[rows, ys] = own_raw - 1.0
        scores = raw / norms.clamp_min(1e-12)
        own = scores[rows, ys]
        best_other = scores.index_put((rows, ys), torch.tensor(-math.inf)).max(dim=1).values
    else:
        k = min(int(n_neighbors), n - 1)
        scores = torch.zeros(len(sel), c)
        if k >= 1:
            sims, idx = gallery.search(emb, k + 1)
            keep = idx != sel[:, None]
            keep[keep.all(dim=1), -1] = False  # self not among them (duplicates): drop the farthest
            sims, idx = sims[keep].view(-1, k), idx[keep].view(-1, k)
            scores.scatter_add_(1, codes[idx], sims / k)
        own, best_other = _nearest_same_and_other(gallery, codes, sel)
    impostor = best_other[torch.isfinite(best_other)]
    return own[has_mate].numpy(), impostor.numpy(), scores[has_mate].numpy(), ys[has_mate].numpy()
