"""Batch and episode samplers for metric learning. All are seeded, and ``set_epoch`` varies them per epoch.

* :class:`PKSampler`: P classes x K clips per batch, the batch triplet mining needs (every anchor has
  K - 1 positives and (P - 1) K negatives).
* :class:`PairSampler`: batches of (a, b) index pairs, half from the same class, for contrastive loss.
* :class:`EpisodicSampler`: N-way K-shot episodes (support, query) for few-shot evaluation, optionally
  with support and query from different groups (speakers, recording sources).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Collection, Iterator, Sequence

import torch

from .._deprecated import renamed
from ..errors import ParameterError


def _by_class(labels: Sequence[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        out[int(label)].append(i)
    return dict(out)


class _Seeded:
    def __init__(self, seed: int):
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)


class PKSampler(_Seeded):
    """Yields batches (lists of dataset indices) of ``classes_per_batch`` classes (P) with ``clips_per_class``
    clips (K) each.

    Classes with fewer than two clips cannot supply a positive and are never drawn. A class with fewer
    than ``clips_per_class`` clips contributes all of them plus repeats (a repeated clip gets another crop and
    augmentation, so it is still a useful positive).

    Args:
        labels (Sequence[int]): class index of every dataset item; at least two classes need two or more
            clips.
        classes_per_batch (int): P, classes per batch (>= 1; capped at the number of usable classes).
            Default: ``None``, which only the old ``p`` may stand for.
        clips_per_class (int): K, clips per class (>= 2, so every anchor has a positive). Default: ``None``,
            which only the old ``k`` may stand for.
        batches (int or None, optional): batches per epoch; ``None``: enough to show every clip about once
            (``len(labels) // (P * K)``, at least 1). Default: ``None``.
        seed (int, optional): base seed; the batches of an epoch depend only on it and ``set_epoch``.
            Default: ``0``.
        class_weights (dict[int, float] or None, optional): relative probability of drawing each class (by
            class index), e.g. to keep thousands of single-clip label-free classes from crowding out the
            labelled ones. A class missing from the dict has weight 0 and is never drawn; at least P
            usable classes need a positive weight. ``None``: every usable class equally likely.
            Default: ``None``.
        p (int, optional): the old name of ``classes_per_batch``, for one release. Default: ``None``.
        k (int, optional): the old name of ``clips_per_class``, for one release. Default: ``None``.

    Raises:
        ParameterError: P < 1 or K < 2, fewer than two usable classes, or ``class_weights`` negative
            or positive for fewer than P usable classes.
    """

    def __init__(
        self,
        labels: Sequence[int],
        classes_per_batch: int | None = None,
        clips_per_class: int | None = None,
        *,
        batches: int | None = None,
        seed: int = 0,
        class_weights: dict[int, float] | None = None,
        p: int | None = None,
        k: int | None = None,
    ):
        super().__init__(seed)
        if p is not None or k is not None:
            renamed("PKSampler(p=..., k=...)", "PKSampler(classes_per_batch=..., clips_per_class=...)")
        p = classes_per_batch if p is None else p
        k = clips_per_class if k is None else k
        if p is None or k is None:
            raise ParameterError("PKSampler: give classes_per_batch and clips_per_class")
        if p < 1 or k < 2:
            raise ParameterError(
                f"classes_per_batch={p}, clips_per_class={k}: need at least 1 class and 2 clips per class"
            )
        self.by_class = {c: idx for c, idx in _by_class(labels).items() if len(idx) >= 2}
        if len(self.by_class) < 2:
            raise ParameterError("labels: need at least two classes with two or more clips each for PK batches")
        self.classes = sorted(self.by_class)
        self.classes_per_batch, self.clips_per_class = min(p, len(self.classes)), k
        self.batches = batches or max(1, len(labels) // (self.classes_per_batch * self.clips_per_class))
        self.weights = None
        if class_weights is not None:
            self.weights = torch.tensor([float(class_weights.get(c, 0.0)) for c in self.classes], dtype=torch.float64)
            if (self.weights < 0).any() or int((self.weights > 0).sum()) < self.classes_per_batch:
                raise ParameterError(
                    f"class_weights: need at least classes_per_batch={self.classes_per_batch} usable classes with "
                    "positive weight"
                )

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[list[int]]:
        g = self._generator()
        for _ in range(self.batches):
            if self.weights is None:
                chosen = torch.randperm(len(self.classes), generator=g)[: self.classes_per_batch]
            else:
                chosen = torch.multinomial(self.weights, self.classes_per_batch, replacement=False, generator=g)
            batch = []
            for c in chosen.tolist():
                members = self.by_class[self.classes[c]]
                order = torch.randperm(len(members), generator=g).tolist()
                while len(order) < self.clips_per_class:
                    order += torch.randperm(len(members), generator=g).tolist()
                batch.extend(members[j] for j in order[: self.clips_per_class])
            yield batch


class PairSampler(_Seeded):
    """Yields batches of ``batch_size`` pairs as flat index lists ``[a0, b0, a1, b1, ...]``.

    A fraction ``positive_fraction`` of the pairs are from the same class; the rest from different classes.

    Args:
        labels (Sequence[int]): class index of every dataset item; needs two classes, one of them with two or
            more clips (positive pairs come only from such classes).
        batch_size (int): pairs per batch (>= 1), so a batch holds ``2 * batch_size`` indices.
        positive_fraction (float, optional): share of same-class pairs in a batch, in [0, 1] (rounded to a
            whole number of pairs). Default: ``0.5``.
        batches (int or None, optional): batches per epoch; ``None``: enough to show every clip about once
            (``len(labels) // (2 * batch_size)``, at least 1). Default: ``None``.
        seed (int, optional): base seed; the batches of an epoch depend only on it and ``set_epoch``.
            Default: ``0``.

    Raises:
        ParameterError: ``batch_size < 1``, ``positive_fraction`` outside [0, 1], or labels that cannot form
            both kinds of pair.
    """

    def __init__(
        self,
        labels: Sequence[int],
        batch_size: int,
        *,
        positive_fraction: float = 0.5,
        batches: int | None = None,
        seed: int = 0,
    ):
        super().__init__(seed)
        if batch_size < 1 or not 0.0 <= positive_fraction <= 1.0:
            raise ParameterError(
                f"batch_size={batch_size}, positive_fraction={positive_fraction}: "
                "expected batch_size >= 1 and 0 <= positive_fraction <= 1"
            )
        self.by_class = _by_class(labels)
        self.pairable = [c for c, idx in self.by_class.items() if len(idx) >= 2]
        if not self.pairable or len(self.by_class) < 2:
            raise ParameterError("labels: need two classes and one with two or more clips to form pairs")
        self.classes = sorted(self.by_class)
        self.batch_size, self.positive_fraction = batch_size, positive_fraction
        self.batches = batches or max(1, len(labels) // (2 * batch_size))

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[list[int]]:
        g = self._generator()
        n_pos = round(self.batch_size * self.positive_fraction)
        for _ in range(self.batches):
            flat = []
            for i in range(self.batch_size):
                if i < n_pos:
                    members = self.by_class[self.pairable[int(torch.randint(len(self.pairable), (1,), generator=g))]]
                    a, b = torch.randperm(len(members), generator=g)[:2].tolist()
                    flat += [members[a], members[b]]
                else:
                    ca, cb = torch.randperm(len(self.classes), generator=g)[:2].tolist()
                    ma, mb = self.by_class[self.classes[ca]], self.by_class[self.classes[cb]]
                    flat += [
                        ma[int(torch.randint(len(ma), (1,), generator=g))],
                        mb[int(torch.randint(len(mb), (1,), generator=g))],
                    ]
            yield flat


class EpisodicSampler(_Seeded):
    """Yields ``episodes`` N-way K-shot episodes as ``(support, query)`` lists of dataset indices.

    Support is ordered class by class (``k_shot`` each), query likewise (``n_query`` each), with the
    episode's classes in the same order, so labels within an episode are ``index // k_shot`` and
    ``index // n_query``.

    Args:
        labels (Sequence[int]): class of every item. Only classes with at least ``k_shot + n_query`` clips
            take part.
        n_way (int): classes per episode (>= 1).
        k_shot (int): support clips per class (>= 1).
        n_query (int): query clips per class (>= 1).
        episodes (int): how many episodes one iteration yields (>= 1).
        groups (Sequence[str] or None, optional): group of every item (e.g. speaker), one per label. When
            given (and ``cross_group``), no query clip shares a group with any support clip of its episode,
            so a model cannot win by recognising the speaker. Default: ``None``.
        cross_group (bool, optional): keep query clips out of the support's groups; has no effect without
            ``groups``. Default: ``True``.
        query_groups (Collection[str] or None, optional): groups whose clips alone are queries, e.g. a
            speaker held out of training (leave-one-speaker-out evaluation); support from any group, or with
            ``cross_group`` from the other groups. Needs ``groups``. Default: ``None``.
        seed (int, optional): base seed; the episodes of an epoch depend only on it and ``set_epoch``.
            Default: ``0``.

    Raises:
        ParameterError: a count below 1, ``groups`` of the wrong length, ``query_groups`` without ``groups``
            or naming unknown groups, or fewer than ``n_way`` classes with enough clips. While iterating,
            when the groups leave too few clips to build an episode.
    """

    def __init__(
        self,
        labels: Sequence[int],
        n_way: int,
        k_shot: int,
        n_query: int,
        episodes: int,
        *,
        groups: Sequence[str] | None = None,
        cross_group: bool = True,
        query_groups: Collection[str] | None = None,
        seed: int = 0,
    ):
        super().__init__(seed)
        if min(n_way, k_shot, n_query, episodes) < 1:
            raise ParameterError(
                f"n_way={n_way}, k_shot={k_shot}, n_query={n_query}, episodes={episodes}: all must be >= 1"
            )
        self.by_class = _by_class(labels)
        self.groups = None if groups is None else list(groups)
        if self.groups is not None and len(self.groups) != len(labels):
            raise ParameterError(f"groups: {len(self.groups)} entries for {len(labels)} labels")
        self.cross_group = cross_group and self.groups is not None
        self.query_groups = None if query_groups is None else {str(q) for q in query_groups}
        if self.query_groups is not None:
            if self.groups is None:
                raise ParameterError("query_groups needs groups (the group of every item)")
            unknown = sorted(self.query_groups - set(self.groups))
            if unknown:
                raise ParameterError(f"query_groups: {unknown} not among the items' groups {sorted(set(self.groups))}")
        need = k_shot + n_query
        self.classes = sorted(c for c, idx in self.by_class.items() if len(idx) >= need)
        if len(self.classes) < n_way:
            sizes = sorted((len(idx) for idx in self.by_class.values()), reverse=True)
            room = sizes[n_way - 1] if len(sizes) >= n_way else 0  # clips of the n_way-th largest class
            if room >= 2:  # name the settings that fit, in the CLI's words and the API's
                fix = (
                    f"; {n_way} classes have {room}+ clips: lower the queries (--n-query / n_query "
                    f"{room - k_shot}) or the shots (--k-shot / k_shot {room - n_query})"
                    if room - k_shot >= 1 and room - n_query >= 1
                    else f"; {n_way} classes have {room}+ clips: e.g. --k-shot 1 --n-query {room - 1}"
                )
            else:
                fix = f"; fewer than {n_way} classes have 2 clips: lower --n-way / n_way or add clips"
            raise ParameterError(
                f"only {len(self.classes)} classes have the {need} clips a {n_way}-way {k_shot}-shot "
                f"episode with {n_query} queries needs{fix}"
            )
        self.n_way, self.k_shot, self.n_query, self.episodes = n_way, k_shot, n_query, episodes

    def __len__(self) -> int:
        return self.episodes

    def _draw(self, members: list[int], g: torch.Generator) -> tuple[list[int], list[int]] | None:
        order = [members[j] for j in torch.randperm(len(members), generator=g).tolist()]
        if self.query_groups is not None and self.cross_group:
            # support from a query group could never have a query: draw it from the other groups
            support = [i for i in order if self.groups[i] not in self.query_groups][: self.k_shot]
            candidates = [i for i in order if self.groups[i] in self.query_groups]
        else:
            support, candidates = order[: self.k_shot], order[self.k_shot :]
            if self.query_groups is not None:
                candidates = [i for i in candidates if self.groups[i] in self.query_groups]
        if len(support) < self.k_shot:
            return None
        if self.cross_group:
            banned = {self.groups[i] for i in support}
            candidates = [i for i in candidates if self.groups[i] not in banned]
        query = candidates[: self.n_query]
        return (support, query) if len(query) == self.n_query else None

    def __iter__(self) -> Iterator[tuple[list[int], list[int]]]:
        g = self._generator()
        for _ in range(self.episodes):
            support, query = [], []
            for c in torch.randperm(len(self.classes), generator=g).tolist():
                drawn = None
                for _attempt in range(10):  # with groups, some support draws leave no valid query
                    drawn = self._draw(self.by_class[self.classes[c]], g)
                    if drawn is not None:
                        break
                if drawn is None:
                    continue
                support.extend(drawn[0])
                query.extend(drawn[1])
                if len(support) == self.n_way * self.k_shot:
                    break
            if len(support) < self.n_way * self.k_shot:
                raise ParameterError(
                    "groups: too few clips outside the support's groups (or inside query_groups) to build an episode"
                )
            yield support, query
