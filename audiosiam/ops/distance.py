"""Exact pairwise distances and k-nearest-neighbour search.

``pairwise_distance`` and ``knn`` run audiosiam's compiled kernels (``torch.ops.audiosiam.*``, CPU and
CUDA) when the extension is built, and the pure-PyTorch references in ``_reference`` otherwise;
both compute the same definitions (see that module): differences rather than the Gram expansion, so the
self-distance is exactly 0, and a subgradient of 0 wherever a distance is not differentiable.

Dtypes: float32 and float64 are computed in their own precision; float16 and bfloat16 are accumulated
in float32 and the result is returned in the input dtype. Non-contiguous inputs are accepted.
"""

from __future__ import annotations

import torch

from ..errors import ParameterError
from . import _reference as reference
from ._extension import call, use_compiled

#: The metrics of the distance ops (``metric=``); aliases such as ``"l2"`` map onto them (``parse_metric()``).
METRICS = ("euclidean", "sqeuclidean", "cosine", "l1")
_ALIASES = {
    "l2": "euclidean",
    "sql2": "sqeuclidean",
    "squared_euclidean": "sqeuclidean",
    "manhattan": "l1",
    "cityblock": "l1",
}


def parse_metric(metric: str) -> str:
    """Canonical metric name: ``"euclidean"``, ``"sqeuclidean"``, ``"cosine"`` or ``"l1"``.

    Args:
        metric (str): a name of :data:`METRICS` or an alias (``"l2"``, ``"sql2"``, ``"squared_euclidean"``,
            ``"manhattan"``, ``"cityblock"``), in any case.

    Returns:
        str: the canonical name, one of :data:`METRICS`.

    Raises:
        ParameterError: ``metric`` is not a string, or names no known metric.
    """
    if not isinstance(metric, str):
        raise ParameterError(f"metric={metric!r}: expected a string, one of {METRICS}")
    name = _ALIASES.get(metric.lower(), metric.lower())
    if name not in METRICS:
        raise ParameterError(f"metric={metric!r}: unknown; expected one of {METRICS}")
    return name


def _check_matrix(name: str, t) -> torch.Tensor:
    if not torch.is_tensor(t):
        raise ParameterError(f"{name}: expected a torch.Tensor of shape (rows, dim), got {type(t).__name__}")
    if t.ndim != 2:
        raise ParameterError(f"{name}: expected shape (rows, dim), got {tuple(t.shape)}")
    if not t.dtype.is_floating_point:
        raise ParameterError(f"{name}: expected a floating dtype (float32, float64, float16, bfloat16), got {t.dtype}")
    return t


def _prepare(x: torch.Tensor, y: torch.Tensor | None, names=("x", "y")):
    x = _check_matrix(names[0], x)
    y = x if y is None else _check_matrix(names[1], y)
    if x.shape[1] != y.shape[1]:
        raise ParameterError(f"{names[1]}: has dim {y.shape[1]}, but {names[0]} has dim {x.shape[1]}; they must match")
    if x.device != y.device:
        raise ParameterError(f"{names[1]}: is on {y.device}, but {names[0]} is on {x.device}; move both to one device")
    if x.dtype != y.dtype:
        raise ParameterError(f"{names[1]}: has dtype {y.dtype}, but {names[0]} has {x.dtype}; convert one of them")
    compute = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    return x, y, compute


def pairwise_distance(x: torch.Tensor, y: torch.Tensor | None = None, *, metric: str = "euclidean") -> torch.Tensor:
    """Distances between every row of ``x`` and every row of ``y``.

    Args:
        x (Tensor): (N, D) float32, float64, float16 or bfloat16.
        y (Tensor or None, optional): (M, D), of ``x``'s dtype and device; ``None`` means ``x`` against
            itself: with the compiled ``self_distance`` op the diagonal is then exactly 0 (cosine: 1 for an
            all-zero row) and the matrix exactly symmetric (it computes each pair once, and its backward is a
            single matrix product); the pure-PyTorch path equals it to rounding.
            Default: ``None``.
        metric (str, optional): ``"euclidean"``, ``"sqeuclidean"``, ``"cosine"`` (1 - cosine similarity) or
            ``"l1"``, or an alias of ``parse_metric()``. Default: ``"euclidean"``.

    Returns:
        Tensor: (N, M) in the input dtype, differentiable with respect to ``x`` and ``y``; (N, 0) or (0, M)
        zeros when either input has no rows.

    Raises:
        ParameterError: an input is not a 2-D floating tensor, or ``x`` and ``y`` differ in dim, device or
            dtype, or ``metric`` is unknown.

    Example:
        >>> pairwise_distance(torch.eye(3)).diagonal()
        tensor([0., 0., 0.])
    """
    metric = parse_metric(metric)
    x, y, compute = _prepare(x, y)
    out_dtype = x.dtype
    if x.shape[0] == 0 or y.shape[0] == 0:
        return (x.sum() + y.sum()).mul(0).expand(x.shape[0], y.shape[0]).to(out_dtype).contiguous()
    xc = x.to(compute)
    if y is x and use_compiled("self_distance", xc):  # half the work forward, one product backward
        return call("self_distance", xc, metric).to(out_dtype)
    yc = xc if y is x else y.to(compute)
    if use_compiled("pairwise_distance", xc, yc):
        out = call("pairwise_distance", xc, yc, metric)
    else:
        out = reference.pairwise_distance(xc, yc, metric)
    return out.to(out_dtype)


def paired_distance(x: torch.Tensor, y: torch.Tensor, *, metric: str = "euclidean") -> torch.Tensor:
    """Row-wise distance between ``x[i]`` and ``y[i]``: (B, D), (B, D) -> (B,).

    Same definitions as :func:`pairwise_distance`; used by the explicit-triplet loss. Always the
    pure-PyTorch formula (there is no compiled kernel for it).

    Args:
        x (Tensor): (B, D) float32, float64, float16 or bfloat16.
        y (Tensor): (B, D), of ``x``'s dtype and device.
        metric (str, optional): as :func:`pairwise_distance`. Default: ``"euclidean"``.

    Returns:
        Tensor: (B,) in the input dtype, differentiable with respect to ``x`` and ``y``.

    Raises:
        ParameterError: as :func:`pairwise_distance`, or ``x`` and ``y`` have different numbers of rows.
    """
    metric = parse_metric(metric)
    x, y, compute = _prepare(x, y)
    if x.shape[0] != y.shape[0]:
        raise ParameterError(f"y: has {y.shape[0]} rows, but x has {x.shape[0]}; paired rows must match")
    return reference.paired_distance(x.to(compute), y.to(compute), metric).to(x.dtype)


def knn(query: torch.Tensor, reference_set: torch.Tensor, k: int, *, metric: str = "euclidean"):
    """The ``k`` nearest rows of ``reference_set`` for every row of ``query``, exactly.

    Computed block by block: the full (Q, R) distance matrix is never held. Ties are broken by the lower
    reference index, so results are deterministic.

    Args:
        query (Tensor): (Q, D) float32, float64, float16 or bfloat16.
        reference_set (Tensor): (R, D), of ``query``'s dtype and device.
        k (int): neighbours per query, 1 <= k <= R.
        metric (str, optional): as :func:`pairwise_distance`. Default: ``"euclidean"``.

    Returns:
        ``(distances (Q, k), indices (Q, k) int64)``, nearest first; distances in the input dtype. Not
        differentiable (a search).

    Raises:
        ParameterError: (a ``ValueError``) the same on the compiled and the reference path: bad arguments,
            or a row of ``query`` or ``reference_set`` holding NaN or infinity (its neighbours would be
            arbitrary).
    """
    metric = parse_metric(metric)
    query, reference_set, compute = _prepare(query, reference_set, names=("query", "reference"))
    if isinstance(k, bool) or not isinstance(k, int):
        raise ParameterError(f"k={k!r}: expected a positive integer")
    if k <= 0:
        raise ParameterError(f"k={k}: must be >= 1")
    if k > reference_set.shape[0]:
        raise ParameterError(
            f"k={k}: larger than the reference set ({reference_set.shape[0]} rows); "
            f"ask for at most {reference_set.shape[0]} neighbours"
        )
    q, r = query.detach().to(compute), reference_set.detach().to(compute)
    # NaN compares false with everything: a search over such rows has no answer, on either path (inside a
    # torch.compile graph the kernel's own check of the same condition applies)
    for name, t in () if torch.compiler.is_compiling() else (("query", q), ("reference", r)):
        bad = (~torch.isfinite(t)).any(1)
        if bad.any():
            raise ParameterError(
                f"{name}: row {int(bad.nonzero()[0])} contains NaN or infinite values; "
                f"remove or fix such rows before searching"
            )
    if q.shape[0] == 0:
        return q.new_zeros(0, k).to(query.dtype), torch.zeros(0, k, dtype=torch.long, device=q.device)
    if use_compiled("knn", q, r):
        dist, idx = call("knn", q, r, k, metric)
    else:
        dist, idx = reference.knn(q, r, k, metric)
    return dist.to(query.dtype), idx
