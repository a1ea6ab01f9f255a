"""Fitting a calibration map (:class:`~audiosiam.fewshot.calibration.CalibrationMap`): seeded open-set episodes
of validation clips, the maximum-likelihood fit of the map on them, and the false-accept statistics behind
``target_false_accept``.

Run once per model, by ``scripts/fit_calibration.py`` and at the end of ``audiosiam train``; nothing here runs
when a user classifies (that is ``audiosiam.fewshot.calibration``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ..errors import ParameterError
from .calibration import (
    FEATURES,
    CalibrationMap,
    _temperature_features,
    class_statistics,
    decision_features,
)
from .rules import check_rule, class_scores

_LEVELS = np.linspace(0.0, 1.0, 201)  # quantile levels of the stored false-accept statistics
_FA_EPISODES = 40  # episodes per shot count and number of classes behind those statistics


def open_set_episodes(
    labels: Sequence[int],
    *,
    domains: Sequence[str] | None = None,
    episodes: int = 3000,
    max_shots: int = 10,
    ways: Sequence[int] = (1, 2, 3, 5, 10),
    n_query: int = 2,
    seed: int = 0,
    min_shots: int = 1,
):
    """Seeded open-set episodes over labelled clips, the fitting data of :func:`fit_calibration`.

    Each episode picks a domain (uniformly among those with enough classes), a shot count ``k`` in
    ``min_shots..max_shots`` and a number of classes ``n`` from ``ways`` (both uniformly, lowered until the domain
    has ``2 n`` classes of ``k + n_query`` clips), then ``n`` enrolled and ``n`` other classes of it.

    Why not :class:`~audiosiam.data.EpisodicSampler`, which draws the evaluation's episodes: a map must be
    fitted on episodes of every shape a user meets (shots and classes vary per episode, domains never mix),
    where an evaluation fixes N-way K-shot to report one number. The shipped maps were fitted on exactly
    this seeded stream; drawing it otherwise would change them with no gain.

    Args:
        labels (Sequence[int]): (N,) class of every clip.
        domains (Sequence[str] or None, optional): (N,) domain of every clip (one per class); episodes never
            mix domains. ``None``: one domain. Default: ``None``.
        episodes (int, optional): how many. Default: ``3000``.
        max_shots (int, optional): the largest shot count. Default: ``10``.
        ways (Sequence[int], optional): the numbers of enrolled classes drawn from. Default:
            ``(1, 2, 3, 5, 10)``.
        n_query (int, optional): queries per class (enrolled or not). Default: ``2``.
        seed (int, optional): the seed. Default: ``0``.
        min_shots (int, optional): the smallest shot count. Default: ``1``.

    Yields:
        ``(support, support_codes, queries, truth)``: numpy index arrays into the clips, the support's
        class codes ``0..n-1``, and each query's code (``-1`` for a class that was not enrolled).

    Raises:
        ParameterError: no domain has two classes with ``1 + n_query`` clips.
    """
    labels = np.asarray(labels)
    domains = np.zeros(len(labels), dtype=object) if domains is None else np.asarray(domains, dtype=object)
    by_domain: dict = {}
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        by_domain.setdefault(domains[members[0]], []).append(members)
    usable = {d: m for d, m in by_domain.items() if sum(len(x) >= 1 + n_query for x in m) >= 2}
    if not usable:
        raise ParameterError(
            f"calibration episodes need, in one domain, two classes with at least {1 + n_query} clips; add classes"
        )
    names = sorted(usable, key=str)
    rng = np.random.default_rng(seed)
    for _ in range(episodes):
        members = usable[names[rng.integers(len(names))]]
        k, n = int(rng.integers(min_shots, max_shots + 1)), int(rng.choice(ways))
        while True:
            big = [m for m in members if len(m) >= k + n_query]
            if len(big) >= 2 * n:
                break
            if n > 1 and len(big) >= 2:
                n = max(1, min(n - 1, len(big) // 2))
            else:
                k -= 1
        chosen = rng.permutation(len(big))[: 2 * n]
        support, codes, queries, truth = [], [], [], []
        for j, idx in enumerate(chosen):
            clips = big[idx][rng.permutation(len(big[idx]))]
            if j < n:
                support.append(clips[:k])
                codes.append(np.full(k, j))
                queries.append(clips[k : k + n_query])
                truth.append(np.full(n_query, j))
            else:
                queries.append(clips[:n_query])
                truth.append(np.full(n_query, -1))
        yield np.concatenate(support), np.concatenate(codes), np.concatenate(queries), np.concatenate(truth)


def _nll(weights, tau, x, z, temp_x, truth, known_rows):
    """Summed negative log-likelihood of the (C + 1)-way outcomes, grouped rows of equal width."""
    total = 0.0
    for xi, zi, li, ti, ki in zip(x, z, temp_x, truth, known_rows, strict=True):
        logit = xi @ weights
        log_temp = li @ tau
        log_closed = torch.log_softmax(zi / torch.exp(log_temp)[:, None], dim=1)
        log_known = torch.nn.functional.logsigmoid(logit)
        log_unknown = torch.nn.functional.logsigmoid(-logit)
        picked = log_closed.gather(1, ti.clamp_min(0)[:, None]).squeeze(1)
        total = total - torch.where(ki, log_known + picked, log_unknown).sum()
    return total


def _episode_rows(emb, labels, domains, *, rule, k, episodes, max_shots, ways, n_query, seed, min_shots=1):
    """Scores, features and outcomes of the fitting episodes, grouped by the number of enrolled classes."""
    groups: dict = {}
    cohesions, separations = [], []
    for support, codes, queries, truth in open_set_episodes(
        labels, domains=domains, episodes=episodes, max_shots=max_shots, ways=ways, n_query=n_query, seed=seed,
        min_shots=min_shots,
    ):  # fmt: skip
        n = int(codes.max()) + 1
        codes_t = torch.as_tensor(codes)
        scores, _ = class_scores(emb[queries], emb[support], codes_t, n, rule=rule, k=k)
        stats = class_statistics(emb[support], codes_t, n)
        cohesions.append(stats.cohesion[~np.isnan(stats.cohesion)])
        separations.append(stats.separation)
        groups.setdefault(n, []).append((scores.numpy().astype(np.float64), stats, truth))
    pooled = np.concatenate(cohesions)
    default_cohesion = float(pooled.mean()) if len(pooled) else 0.5
    default_separation = float(np.nanmean(separations)) if not np.isnan(separations).all() else 0.0
    ranges = {
        "cohesion": [float(pooled.min()), float(pooled.max())] if len(pooled) else None,
        "separation": [float(np.nanmin(separations)), float(np.nanmax(separations))]
        if not np.isnan(separations).all()
        else None,
    }
    return groups, (default_cohesion, default_separation), ranges


def fit_calibration(
    embeddings,
    labels: Sequence[int],
    *,
    domains: Sequence[str] | None = None,
    rule: str = "prototype",
    k: int = 5,
    episodes: int = 3000,
    max_shots: int = 10,
    ways: Sequence[int] = (1, 2, 3, 5, 10),
    n_query: int = 2,
    seed: int = 0,
    description: dict | None = None,
) -> CalibrationMap:
    """Fit the map (module docstring) on open-set episodes of validation clips (:func:`open_set_episodes`).

    Args:
        embeddings (Tensor or array): (N, D) embeddings of clips of classes the model did not train on.
        labels (Sequence[int]): (N,) class of each clip.
        domains (Sequence[str] or None, optional): (N,) domain of each clip; episodes stay in one.
            Default: ``None``.
        rule (str, optional): the decision rule whose scores are calibrated. Default: ``"prototype"``.
        k (int, optional): neighbours of ``"knn"``. Default: ``5``.
        episodes (int, optional): fitting episodes. Default: ``3000``.
        max_shots (int, optional): the largest shot count of an episode. Default: ``10``.
        ways (Sequence[int], optional): numbers of enrolled classes. Default: ``(1, 2, 3, 5, 10)``.
        n_query (int, optional): queries per class and episode. Default: ``2``.
        seed (int, optional): seed of the episodes. Default: ``0``.
        description (dict or None, optional): stored in ``fitted_on`` beside the counts. Default: ``None``.

    Returns:
        CalibrationMap: the fitted map, with false-accept quantiles per shot count and its fitting
        negative log-likelihood in ``fitted_on``.

    Raises:
        ParameterError: a bad rule, or too few classes (:func:`open_set_episodes`).
    """
    check_rule(rule, k)
    emb = torch.nn.functional.normalize(torch.as_tensor(embeddings, dtype=torch.float32), dim=1)
    groups, defaults, ranges = _episode_rows(
        emb, labels, domains, rule=rule, k=k, episodes=episodes, max_shots=max_shots, ways=ways, n_query=n_query,
        seed=seed,
    )  # fmt: skip
    x, z, shots_log, truth = [], [], [], []
    for rows in groups.values():
        for scores, stats, t in rows:
            xi, _ = decision_features(scores, stats, defaults)
            x.append(xi)
            z.append(scores)
            shots_log.append(np.repeat(_temperature_features(stats, defaults), len(t), axis=0))
            truth.append(t)
    # one tensor per episode width (the softmax is over C columns): stack equal widths
    by_width: dict = {}
    for xi, zi, li, ti in zip(x, z, shots_log, truth, strict=True):
        by_width.setdefault(zi.shape[1], []).append((xi, zi, li, ti))
    xs, zs, ls, ts, ks = [], [], [], [], []
    for parts in by_width.values():
        xs.append(torch.as_tensor(np.concatenate([p[0] for p in parts])))
        zs.append(torch.as_tensor(np.concatenate([p[1] for p in parts])))
        ls.append(torch.as_tensor(np.concatenate([p[2] for p in parts])))
        t = torch.as_tensor(np.concatenate([p[3] for p in parts]))
        ts.append(t)
        ks.append(t >= 0)
    n_rows = sum(len(t) for t in ts)
    weights = torch.zeros(len(FEATURES), dtype=torch.float64, requires_grad=True)
    tau = torch.tensor([math.log(0.05), 0.0, 0.0, 0.0], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights, tau], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = _nll(weights, tau, xs, zs, ls, ts, ks) / n_rows + 1e-4 * weights[1:].pow(2).sum()
        loss.backward()
        return loss

    for _ in range(2):  # a restart from where the first run stopped
        optimizer.step(closure)
    with torch.no_grad():
        nll = float(_nll(weights, tau, xs, zs, ls, ts, ks) / n_rows)
    cal = CalibrationMap(
        weights=weights.detach().tolist(),
        temperature=tau.detach().tolist(),
        default_cohesion=defaults[0],
        default_separation=defaults[1],
        rule=rule,
        k=int(k),
    )
    cal.fitted_on = {
        **(description or {}),
        "clips": int(len(labels)),
        "classes": int(len(np.unique(np.asarray(labels)))),
        "episodes": int(episodes),
        "max_shots": int(max_shots),
        "ways": [int(w) for w in ways],
        "n_query": int(n_query),
        "seed": int(seed),
        "queries": int(n_rows),
        "nll": nll,
        "ranges": ranges,
    }
    cal.false_accept = _false_accept_table(  # with fitted_on set, so at the limits inference uses
        cal, emb, labels, domains, rule=rule, k=k, max_shots=max_shots, ways=ways, n_query=n_query, seed=seed
    )
    return cal


def _false_accept_table(cal: CalibrationMap, emb, labels, domains, *, max_shots: int, ways, seed: int, **kw) -> dict:
    """Per shot count and number of enrolled classes: quantiles of ``log P(top) - log P(unknown)`` over the
    queries of non-enrolled classes, from ``_FA_EPISODES`` episodes of each (a cell with fewer than 20
    queries takes its shot count's quantiles over all)."""
    stats: dict = {}
    for cell, (shot, way) in enumerate((s, w) for s in range(1, max_shots + 1) for w in ways):
        groups, _, _ = _episode_rows(
            emb, labels, domains, episodes=_FA_EPISODES, max_shots=shot, min_shots=shot, ways=(way,),
            seed=seed + 1 + cell, **kw,
        )  # fmt: skip
        for rows in groups.values():
            for scores, gallery, truth in rows:
                p = cal.proba(scores, gallery)
                d = np.log(p[:, :-1].max(1).clip(1e-300)) - np.log(p[:, -1].clip(1e-300))
                stats.setdefault((int(gallery.shots.max()), scores.shape[1]), []).append(d[truth < 0])
    shots = sorted({s for s, _ in stats if s <= max_shots})
    ways = sorted({w for _, w in stats})
    table = []
    for s in shots:
        pooled = np.concatenate([np.concatenate(v) for (s2, _), v in stats.items() if s2 == s])
        row = []
        for w in ways:
            cell = np.concatenate(stats[(s, w)]) if (s, w) in stats else np.empty(0)
            row.append(np.quantile(cell if len(cell) >= 20 else pooled, _LEVELS).tolist())
        table.append(row)
    return {"shots": shots, "ways": ways, "levels": _LEVELS.tolist(), "quantiles": table}
