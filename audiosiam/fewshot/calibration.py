"""Calibrated probabilities over the enrolled classes and ``unknown``: one small model of the decision.

A twin network gives similarities, not probabilities. This module turns the class scores of a query (the
rules of ``audiosiam.fewshot.rules``) into probabilities with one map learnt once per model, on episodes
of validation classes that the model never trained on, and stored in its checkpoint
(``model.info["calibration"]``, plain numbers).

The rule, for a query with class scores ``s`` (C,) against a gallery whose class ``c`` has ``n_c``
enrolment clips of cohesion ``rho_c`` (their mean pairwise cosine) and whose clips of different classes
have a mean cosine ``b`` (the separation; where either is undefined, with one clip or one class, the
map's typical value from its fitting data):

* the top class ``t`` (highest score), the runner-up score ``s_2`` (0 when one class is enrolled), the
  margin ``m = s_t - s_2`` and ``l = log n_t`` give the features
  ``x = [1, s_t, m, l, s_t l, m l, rho_t, log C, s_t log C, b, s_t b, s_t^2, m^2, s_t rho_t]``
  (``FEATURES``), each gallery description held within what the map was fitted on
  (:class:`FeatureLimits`: at most 10 shots and 10 classes, cohesion and separation in their fitted ranges);
* ``P(known) = sigmoid(a (w . x) + delta - beta)``: the probability that the query belongs to an
  enrolled class at all. ``a`` and ``delta`` are the gallery's own adaptation (below; 1 and 0 by
  default), ``beta`` the offset of the user's rejection criterion (below; 0 by default);
* ``P(c | known) = softmax(s / T)_c`` with a temperature of the gallery,
  ``T = exp(tau_0 + tau_1 log n + tau_2 b + tau_3 b log n)``, ``n`` the mean number of clips per
  enrolled class;
* ``P(c) = P(known) P(c | known)`` and ``P(unknown) = 1 - P(known)``: the columns sum to 1, and the most
  probable column is the answer, so a query answered ``unknown`` never shows a class above it.

``w`` and ``tau`` are fitted together by maximum likelihood of the (C + 1)-way outcome
(:func:`audiosiam.fewshot.fitting.fit_calibration`) over seeded open-set episodes: 1 to 10 shots, 1, 2, 3,
5 or 10 classes enrolled (fewer where a domain has too few classes), each
episode asking ``n_query`` clips of every enrolled class and of as many classes that were not enrolled,
all drawn from one domain of the validation set (words, environmental sounds, ...). The fitting
episodes hold as many queries of enrolled as of non-enrolled classes, so the map's log-odds are those of
a user who expects half of the clips to come from classes never enrolled.

**The user's prior.** A user who expects a share ``u`` of the queries to come
from classes never enrolled (``expected_unknown``) gets the same evidence under their prior: by Bayes'
rule, the log-odds move by ``log((1 - u) / u)`` (:func:`prior_offset`; 0 at ``u = 1/2``, +2.20 at
``u = 0.1``). ``predict`` is the most probable column under that prior.

**The unknown criterion.** By default (``target_false_accept=None``) the prior above decides. A target
false-accept rate ``f`` instead shifts ``beta`` (the prior offset is then not added) so that, on validation
episodes with the gallery's number of shots and of classes, a share ``f`` of the queries of non-enrolled
classes gets a label (:meth:`CalibrationMap.unknown_offset`, from quantiles of 40 extra episodes per shot
count and class count, stored with the map); the probabilities then hold for a correspondingly different
prior of unknown clips. The rate holds as far as the user's classes resemble the validation classes.

**Adaptation to the enrolment clips** (:func:`adapt_log_odds`, called by
:class:`~audiosiam.fewshot.FewShotClassifier`): every enrolled clip (at most 2,000, a seeded sample) is
asked as a query of the gallery without it (a known query, its class one clip smaller; for clips whose
class has another) and of the gallery without its class (a query of a non-enrolled class; with two
classes or more). When there are at least ``min_clips`` (10) such queries of each kind,
``log a`` and ``delta`` are the maximum a posteriori scale and shift of the known log-odds under normal
priors of standard deviation ``prior_scale`` (0.5) around 0, so ten clips move them little and a
thousand decide them. With fewer, ``a = 1`` and ``delta = 0``. (The false-accept offsets ``beta`` were
estimated without adaptation; with ``a`` far from 1 the target rate holds less exactly.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import numpy as np
import torch

from ..errors import CheckpointError, ParameterError

#: The names of the map's features, in the order of its weights (the module docstring defines them).
FEATURES = ("bias", "top", "margin", "log_shots", "top*log_shots", "margin*log_shots", "cohesion", "log_way",
            "top*log_way", "separation", "top*separation", "top^2", "margin^2", "top*cohesion")  # fmt: skip
VERSION = 1


class FeatureLimits(NamedTuple):
    """The gallery descriptions a map was fitted on; beyond them a gallery is described by the nearest edge
    (a logistic map extrapolated to a 1,000-class gallery from episodes of at most 10 classes, or to classes
    far better separated than any it saw, would answer ``unknown`` to everything).

    Args:
        shots (float): the largest shot count.
        ways (float): the largest number of enrolled classes.
        cohesion (tuple[float, float]): the range of class cohesions.
        separation (tuple[float, float]): the range of gallery separations.
    """

    shots: float = math.inf
    ways: float = math.inf
    cohesion: tuple[float, float] = (-math.inf, math.inf)
    separation: tuple[float, float] = (-math.inf, math.inf)


class ClassStatistics(NamedTuple):
    """The gallery side of the features: per class (C,), or per query and class (Q, C) where they differ
    by query (leave-one-out).

    Args:
        shots (numpy.ndarray): enrolment clips per class (>= 1).
        cohesion (numpy.ndarray): mean pairwise cosine of each class's clips; NaN for one clip.
        separation (float or numpy.ndarray): mean cosine of clips of different classes, a number or (Q,);
            NaN for one class.
    """

    shots: np.ndarray
    cohesion: np.ndarray
    separation: float | np.ndarray


def class_statistics(embeddings: torch.Tensor, codes: torch.Tensor, n_classes: int) -> ClassStatistics:
    """Enrolment clips per class, their cohesion and the separation of the classes (module docstring).

    Args:
        embeddings (Tensor): (N, D) L2-normalised enrolled rows.
        codes (Tensor): (N,) int64 class index of each row, in ``[0, n_classes)``.
        n_classes (int): C.

    Returns:
        ClassStatistics: shots (C,) and cohesion (C,) float64 (NaN for a class of one clip), separation a
        float (NaN for one class).
    """
    emb = torch.as_tensor(embeddings, dtype=torch.float64)
    codes = torch.as_tensor(codes, dtype=torch.long)
    sums = torch.zeros(n_classes, emb.shape[1], dtype=torch.float64).index_add_(0, codes, emb)
    shots = torch.bincount(codes, minlength=n_classes).to(torch.float64)
    own = sums.pow(2).sum(1)
    cohesion = (own - shots) / (shots * (shots - 1)).clamp_min(1)
    cohesion[shots < 2] = math.nan
    cross_pairs = float(shots.sum() ** 2 - shots.pow(2).sum())
    cross = float(sums.sum(0).pow(2).sum() - own.sum())
    separation = cross / cross_pairs if cross_pairs > 0 else math.nan
    return ClassStatistics(shots.numpy(), cohesion.numpy(), separation)


def decision_features(
    scores, stats: ClassStatistics, defaults: Sequence[float], limits: FeatureLimits = FeatureLimits()
) -> tuple[np.ndarray, np.ndarray]:
    """The map's features (``FEATURES``, module docstring) of each query, and its top class.

    Args:
        scores (Tensor or array): (Q, C) class scores of the queries (prototype cosines or k-NN votes);
            ``-inf`` marks a class absent from that row.
        stats (ClassStatistics): the gallery's, per class (C,) or per query and class (Q, C).
        defaults (Sequence[float]): ``(cohesion, separation)`` used where they are NaN.
        limits (FeatureLimits, optional): what the map was fitted on; a gallery beyond is described by the
            nearest edge. Default: no limits.

    Returns:
        (numpy.ndarray, numpy.ndarray): features (Q, F) float64 and the top class (Q,) int64.
    """
    s = np.asarray(scores, dtype=np.float64)
    q, c = s.shape
    rows = np.arange(q)
    top = s.argmax(1)
    s1 = s[rows, top]
    present = np.isfinite(s).sum(1)  # -inf marks a class left out of a row (leave-one-out)
    s2 = np.where(present > 1, np.sort(s, axis=1)[:, -2] if c > 1 else 0.0, 0.0)
    margin = s1 - s2
    shots = np.broadcast_to(np.asarray(stats.shots, dtype=np.float64), s.shape)[rows, top]
    log_shots = np.log(np.minimum(shots, limits.shots))
    rho = np.broadcast_to(np.asarray(stats.cohesion, dtype=np.float64), s.shape)[rows, top]
    rho = np.clip(np.where(np.isnan(rho), defaults[0], rho), *limits.cohesion)
    sep = np.broadcast_to(np.asarray(stats.separation, dtype=np.float64), (q,))
    sep = np.clip(np.where(np.isnan(sep), defaults[1], sep), *limits.separation)
    log_way = np.log(np.minimum(present.astype(np.float64), limits.ways))
    x = np.stack(
        [
            np.ones(q),
            s1,
            margin,
            log_shots,
            s1 * log_shots,
            margin * log_shots,
            rho,
            log_way,
            s1 * log_way,
            sep,
            s1 * sep,
            s1**2,
            margin**2,
            s1 * rho,
        ],
        axis=1,
    )
    return x, top


def _temperature_features(
    stats: ClassStatistics, defaults: Sequence[float], limits: FeatureLimits = FeatureLimits()
) -> np.ndarray:
    """``[1, log n, b, b log n]`` of the temperature, (Q, 4) or (1, 4) (module docstring), within ``limits``
    (as :func:`decision_features`)."""
    shots = np.minimum(np.asarray(stats.shots, dtype=np.float64), limits.shots)
    rho = np.asarray(stats.cohesion, dtype=np.float64)
    rho = np.where(np.isnan(rho), defaults[0], rho).mean(-1)
    sep = np.asarray(stats.separation, dtype=np.float64)
    sep = np.clip(np.where(np.isnan(sep), defaults[1], sep), *limits.separation)
    log_n = np.log(shots.mean(-1))
    log_n, sep, rho = np.broadcast_arrays(np.atleast_1d(log_n), np.atleast_1d(sep), np.atleast_1d(rho))
    return np.stack([np.ones_like(log_n), log_n, sep, log_n * sep], axis=1)


@dataclass
class CalibrationMap:
    """The fitted map from class scores to probabilities over the classes and ``unknown`` (module docstring).

    Args:
        weights (list[float]): ``w``, one per name of ``FEATURES``.
        temperature (list[float]): ``[tau_0, tau_1, tau_2, tau_3]`` (module docstring).
        default_cohesion (float): cohesion used for classes of one clip.
        default_separation (float): separation used for a gallery of one class.
        rule (str, optional): the decision rule the map was fitted for. Default: ``"prototype"``.
        k (int, optional): neighbours of ``"knn"`` when fitted. Default: ``5``.
        false_accept (dict, optional): ``{"shots", "ways", "levels", "quantiles"}``: per shot count and
            number of enrolled classes, quantiles (at ``levels``) of ``log P(top class) - log P(unknown)``
            over queries of non-enrolled validation classes, for :meth:`unknown_offset`. Default: ``{}``.
        fitted_on (dict, optional): a description of the fitting data (classes, episodes, metrics).
            Default: ``{}``.

    Example:
        >>> cal = CalibrationMap.from_dict(model.info["calibration"]["prototype"])
        >>> proba = cal.proba(scores, class_statistics(support, codes, n_classes))  # (Q, C + 1): last is unknown
    """

    weights: list[float]
    temperature: list[float]
    default_cohesion: float
    default_separation: float
    rule: str = "prototype"
    k: int = 5
    false_accept: dict = field(default_factory=dict)
    fitted_on: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The map as plain numbers and strings (what a checkpoint stores).

        Returns:
            dict: the fields, and ``version`` and ``features``.
        """
        return {
            "version": VERSION,
            "features": list(FEATURES),
            "weights": [float(v) for v in self.weights],
            "temperature": [float(v) for v in self.temperature],
            "default_cohesion": float(self.default_cohesion),
            "default_separation": float(self.default_separation),
            "rule": self.rule,
            "k": int(self.k),
            "false_accept": self.false_accept,
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_dict(cls, stored: dict) -> "CalibrationMap":
        """Rebuild a map from :meth:`to_dict`'s output, checking it.

        Args:
            stored (dict): the stored map.

        Returns:
            CalibrationMap: the map.

        Raises:
            CheckpointError: a map of another version or feature set, or damaged numbers.
        """
        try:
            if stored.get("version") != VERSION or list(stored.get("features", [])) != list(FEATURES):
                raise ValueError(f"version {stored.get('version')} with features {stored.get('features')}")
            cal = cls(
                weights=[float(v) for v in stored["weights"]],
                temperature=[float(v) for v in stored["temperature"]],
                default_cohesion=float(stored["default_cohesion"]),
                default_separation=float(stored["default_separation"]),
                rule=str(stored.get("rule", "prototype")),
                k=int(stored.get("k", 5)),
                false_accept=dict(stored.get("false_accept") or {}),
                fitted_on=dict(stored.get("fitted_on") or {}),
            )
            numbers = cal.weights + cal.temperature + [cal.default_cohesion, cal.default_separation]
            if len(cal.weights) != len(FEATURES) or len(cal.temperature) != 4 or not all(map(math.isfinite, numbers)):
                raise ValueError("wrong number of weights or non-finite values")
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"the model's calibration map cannot be used ({exc}); fit it again with scripts/fit_calibration.py"
            ) from None
        return cal

    def known_logit(self, scores, stats: ClassStatistics) -> tuple[np.ndarray, np.ndarray]:
        """``w . x`` of each query (the log-odds of "enrolled class", before offsets) and its top class.

        Args:
            scores (Tensor or array): (Q, C) class scores.
            stats (ClassStatistics): the gallery's (``class_statistics()``).

        Returns:
            (numpy.ndarray, numpy.ndarray): (Q,) float64 log-odds and (Q,) int64 top classes.
        """
        x, top = decision_features(scores, stats, (self.default_cohesion, self.default_separation), self.limits)
        return x @ np.asarray(self.weights), top

    def class_temperature(self, stats: ClassStatistics) -> np.ndarray:
        """``T`` of ``P(c | known)`` for a gallery (module docstring).

        Args:
            stats (ClassStatistics): the gallery's, per class or per query and class.

        Returns:
            numpy.ndarray: the temperature, (1,) or (Q,), positive.
        """
        defaults = (self.default_cohesion, self.default_separation)
        return np.exp(_temperature_features(stats, defaults, self.limits) @ self.temperature)

    @property
    def limits(self) -> FeatureLimits:
        """What the map was fitted on (:class:`FeatureLimits`), from ``fitted_on``: shots and classes up to 10
        where a map does not say; cohesion and separation unlimited where it does not record their ranges
        (maps fitted before they were recorded)."""
        ranges = self.fitted_on.get("ranges") or {}
        return FeatureLimits(
            float(self.fitted_on.get("max_shots") or 10),
            float(max(self.fitted_on.get("ways") or [10])),
            tuple(ranges.get("cohesion") or (-math.inf, math.inf)),
            tuple(ranges.get("separation") or (-math.inf, math.inf)),
        )

    def proba(self, scores, stats: ClassStatistics, *, offset: float = 0.0, scale: float = 1.0) -> np.ndarray:
        """Probabilities (Q, C + 1): the C classes in the scores' column order, then ``unknown``.

        Args:
            scores (Tensor or array): (Q, C) class scores.
            stats (ClassStatistics): the gallery's (``class_statistics()``).
            offset (float, optional): added to the known log-odds (``delta - beta`` of the module
                docstring). Default: ``0.0``.
            scale (float, optional): multiplies the known log-odds before the offset (``a``).
                Default: ``1.0``.

        Returns:
            numpy.ndarray: (Q, C + 1) float64, rows sum to 1.
        """
        s = np.asarray(scores, dtype=np.float64)
        logit, _ = self.known_logit(s, stats)
        known = 1.0 / (1.0 + np.exp(-(scale * logit + offset)))
        z = s / np.reshape(self.class_temperature(stats), (-1, 1))
        z = np.exp(z - z.max(1, keepdims=True))
        closed = z / z.sum(1, keepdims=True)
        return np.concatenate([known[:, None] * closed, (1.0 - known)[:, None]], axis=1)

    def same_probability(self, similarity) -> np.ndarray:
        """P(same) of clip pairs with these cosine similarities: the probability that a query belongs to a class
        enrolled with one clip, the other clip of the pair (at the map's prior of 1/2: as many different pairs
        as same ones).

        Args:
            similarity (float or array-like): (P,) cosine similarities.

        Returns:
            numpy.ndarray: (P,) probabilities.
        """
        sims = np.atleast_1d(np.asarray(similarity, dtype=np.float64))
        one_clip = ClassStatistics(np.ones(1), np.full(1, math.nan), math.nan)
        return self.proba(sims[:, None], one_clip)[:, 0]

    def same_threshold(self) -> float:
        """The similarity at and above which P(same) >= 1/2 (:meth:`same_probability`): the one verification
        threshold of a model with this map. Found on a grid of step 5e-4 over [-1, 1], refined linearly;
        where P(same) crosses 1/2 more than once, the last crossing (so every similarity above it answers
        "same").

        Returns:
            float: the threshold in [-1, 1]; 1.0 when no similarity reaches 1/2 (the map never says "same").
        """
        grid = np.linspace(-1.0, 1.0, 4001)
        margin = self.same_probability(grid) - 0.5
        below = np.flatnonzero(margin < 0)
        if len(below) == 0:
            return -1.0
        i = int(below[-1])
        if i == len(grid) - 1:
            return 1.0
        a, b = margin[i], margin[i + 1]  # a < 0 <= b
        return float(grid[i] + (grid[i + 1] - grid[i]) * (-a) / (b - a))

    def unknown_offset(self, target_false_accept: float, shots) -> float:
        """``beta``: the offset on the unknown side that makes a share ``target_false_accept`` of the
        queries of non-enrolled classes get a label, on the validation episodes with these shots and this
        many classes (interpolated in shots and log classes between the stored ones, the nearest beyond).

        Args:
            target_false_accept (float): the target rate, in (0, 1).
            shots (numpy.ndarray): (C,) enrolment clips per class (their median and C pick the cell).

        Returns:
            float: ``beta`` (subtracted from the known log-odds).

        Raises:
            ParameterError: ``target_false_accept`` outside (0, 1).
            CheckpointError: the map stores no false-accept statistics.
        """
        f = float(target_false_accept)
        if not 0.0 < f < 1.0:
            raise ParameterError(f"target_false_accept={target_false_accept!r}: expected a rate in (0, 1), e.g. 0.05")
        table = self.false_accept
        if not table.get("quantiles"):
            raise CheckpointError("this calibration map has no false-accept statistics; fit it again")
        levels = np.asarray(table["levels"], dtype=np.float64)
        beta = np.array([[np.interp(1.0 - f, levels, q) for q in row] for row in table["quantiles"]])  # shots x ways
        log_ways = np.log(np.asarray(table["ways"], dtype=np.float64))
        per_shot = [np.interp(math.log(len(shots)), log_ways, row) for row in beta]
        return float(np.interp(float(np.median(shots)), np.asarray(table["shots"], dtype=np.float64), per_shot))


def prior_offset(expected_unknown: float) -> float:
    """``log((1 - u) / u)``: what a share ``u`` of queries from classes never enrolled adds to the known
    log-odds of a map fitted at ``u = 1/2`` (module docstring).

    Args:
        expected_unknown (float): the share, in (0, 1).

    Returns:
        float: the offset (0 at 1/2, positive below).

    Raises:
        ParameterError: not a number in (0, 1).
    """
    if isinstance(expected_unknown, bool) or not isinstance(expected_unknown, (int, float)):
        raise ParameterError(f"expected_unknown={expected_unknown!r}: expected a share in (0, 1), e.g. 0.2")
    u = float(expected_unknown)
    if not 0.0 < u < 1.0:
        raise ParameterError(
            f"expected_unknown={expected_unknown!r}: expected the share of queries from classes never enrolled, "
            "in (0, 1), e.g. 0.2 (for 'never unknown', turn rejection off instead)"
        )
    return math.log((1.0 - u) / u)


def adapt_log_odds(
    known_logits, unknown_logits, *, min_clips: int = 10, prior_scale: float = 0.5
) -> tuple[float, float]:
    """``(a, delta)``: the gallery's scale and shift of the known log-odds, fitted on its leave-one-out
    queries (module docstring).

    Args:
        known_logits (array-like): (M,) known log-odds ``w . x`` of enrolled clips asked against the gallery
            without them (each should come out "known").
        unknown_logits (array-like): (U,) known log-odds of enrolled clips asked against the gallery without
            their class (each should come out "unknown").
        min_clips (int, optional): fewer queries of either kind leave ``(1, 0)``. Default: ``10``.
        prior_scale (float, optional): standard deviation of the normal priors of ``log a`` and ``delta``.
            Default: ``0.5``.

    Returns:
        (float, float): the maximum a posteriori ``a`` (in [e^-1.5, e^1.5]) and ``delta`` (in [-5, 5]);
        ``(1.0, 0.0)`` when there are too few queries.
    """
    pos = np.asarray(known_logits, dtype=np.float64)
    neg = np.asarray(unknown_logits, dtype=np.float64)
    if len(pos) < min_clips or len(neg) < min_clips:
        return 1.0, 0.0
    from scipy.optimize import minimize

    def objective(p: np.ndarray) -> float:
        a, delta = math.exp(p[0]), p[1]
        loss = np.logaddexp(0.0, -(a * pos + delta)).sum() + np.logaddexp(0.0, a * neg + delta).sum()
        return float(loss + (p[0] ** 2 + delta**2) / (2 * prior_scale**2))

    result = minimize(objective, np.zeros(2), method="L-BFGS-B", bounds=[(-1.5, 1.5), (-5.0, 5.0)])
    return float(math.exp(result.x[0])), float(result.x[1])
