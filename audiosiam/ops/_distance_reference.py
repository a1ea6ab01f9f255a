"""Pure-PyTorch references of the distance ops: the definition the compiled kernels are tested against,
and the fallback when ``audiosiam._C`` is missing.

Definitions (the kernels implement exactly these):

* ``euclidean``: ``sqrt(sum((x - y)^2))``; ``sqeuclidean``: ``sum((x - y)^2)``; ``l1``: ``sum(|x - y|)``;
  ``cosine``: ``1 - x.y / (|x| |y|)``, and 1 (similarity 0) when either row is all zeros.
* Subgradients where a distance is not differentiable: 0. At ``x == y`` the euclidean gradient is 0
  (not NaN, no epsilon bias); ``l1`` uses ``sign(0) = 0``; a zero-norm row gets cosine gradient 0.
* Accuracy: squared distances are formed from differences, not from ``|x|^2 + |y|^2 - 2 x.y``, so there
  is no cancellation: the self-distance is exactly 0 and near-duplicates keep their tiny true distance.
"""

from __future__ import annotations

import torch


__all__ = ["pairwise_distance", "paired_distance", "knn"]

# Rows per block so a (rows, M, D) difference tensor stays around 16M elements.
_CELLS = 1 << 24


def _blocks(n: int, m: int, d: int):
    step = max(1, _CELLS // max(1, m * max(d, 1)))
    return range(0, n, step), step


def _safe_sqrt(sq: torch.Tensor) -> torch.Tensor:
    """sqrt with gradient 0 (not inf or NaN) where the argument is 0."""
    positive = sq > 0
    return torch.where(positive, sq.clamp_min(torch.finfo(sq.dtype).tiny).sqrt(), torch.zeros_like(sq))


def _cosine(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    nx, ny = x.norm(dim=-1, keepdim=True), y.norm(dim=-1, keepdim=True)
    ux = torch.where(nx > 0, x / nx.clamp_min(torch.finfo(x.dtype).tiny), torch.zeros_like(x))
    uy = torch.where(ny > 0, y / ny.clamp_min(torch.finfo(y.dtype).tiny), torch.zeros_like(y))
    return ux, uy


def pairwise_distance(x: torch.Tensor, y: torch.Tensor, metric: str) -> torch.Tensor:
    """(N, D) x (M, D) -> (N, M) in the inputs' dtype (float32 or float64)."""
    n, m, d = x.shape[0], y.shape[0], x.shape[1]
    if metric == "cosine":
        ux, uy = _cosine(x, y)
        return 1.0 - ux @ uy.T
    rows, step = _blocks(n, m, d)
    parts = []
    for start in rows:
        diff = x[start:start + step, None, :] - y[None, :, :]
        if metric == "l1":
            parts.append(diff.abs().sum(-1))
        else:
            parts.append(diff.square().sum(-1))
    out = torch.cat(parts) if parts else x.new_zeros(0, m)
    return _safe_sqrt(out) if metric == "euclidean" else out


def paired_distance(x: torch.Tensor, y: torch.Tensor, metric: str) -> torch.Tensor:
    """Row-wise distance of (B, D) and (B, D) -> (B,)."""
    if metric == "cosine":
        ux, uy = _cosine(x, y)
        return 1.0 - (ux * uy).sum(-1)
    diff = x - y
    if metric == "l1":
        return diff.abs().sum(-1)
    sq = diff.square().sum(-1)
    return _safe_sqrt(sq) if metric == "euclidean" else sq


def select_k_smallest(dist: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the k smallest values in ascending order, ties broken by the lower column index."""
    kth = dist.topk(k, dim=1, largest=False, sorted=True).values[:, -1:]
    below = dist < kth
    equal = dist == kth
    need = k - below.sum(1, keepdim=True)
    chosen = below | (equal & (equal.cumsum(1) <= need))
    cols = torch.nonzero(chosen)[:, 1].view(dist.shape[0], k)  # ascending index within each row
    vals = dist.gather(1, cols)
    order = vals.argsort(dim=1, stable=True)  # stable: equal values keep the lower index first
    return vals.gather(1, order), cols.gather(1, order)


def knn(query: torch.Tensor, reference: torch.Tensor, k: int, metric: str, block: int = 1024):
    """k nearest references of every query, query rows in blocks (never the full matrix at once). Finite
    rows only: the public :func:`audiosiam.ops.knn` refuses NaN and infinity for both paths."""
    dists, idxs = [], []
    for start in range(0, query.shape[0], block):
        d = pairwise_distance(query[start:start + block], reference, metric)
        vals, cols = select_k_smallest(d, k)
        dists.append(vals)
        idxs.append(cols)
    if not dists:
        return query.new_zeros(0, k), torch.zeros(0, k, dtype=torch.long, device=query.device)
    return torch.cat(dists), torch.cat(idxs)
