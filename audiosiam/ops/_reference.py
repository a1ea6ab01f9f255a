"""Pure-PyTorch references of every audiosiam op, in one place: the definitions the compiled kernels are
tested against, and what the public ops in ``audiosiam.ops`` run when ``audiosiam._C`` is missing (or
inside ``reference_ops()``, or on a device the build has no kernel for).

Each function takes the arguments of its public op after validation (float32/float64 tensors, a
canonical metric name) and returns what the compiled op returns. Gradients come from autograd, except
batch-all, whose gradient is the slope matrix it computes anyway (see :func:`triplet_batch_all`).

Distance definitions (the kernels implement exactly these):

* ``euclidean``: ``sqrt(sum((x - y)^2))``; ``sqeuclidean``: ``sum((x - y)^2)``; ``l1``: ``sum(|x - y|)``;
  ``cosine``: ``1 - x.y / (|x| |y|)``, and 1 (similarity 0) when either row is all zeros.
* Subgradients where a distance is not differentiable: 0. At ``x == y`` the euclidean gradient is 0
  (not NaN, no epsilon bias); ``l1`` uses ``sign(0) = 0``; a zero-norm row gets cosine gradient 0.
* Accuracy: squared distances are formed from differences, not from ``|x|^2 + |y|^2 - 2 x.y``, so there
  is no cancellation: the self-distance is exactly 0 and near-duplicates keep their tiny true distance.
"""

from __future__ import annotations

import torch

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
        diff = x[start : start + step, None, :] - y[None, :, :]
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
        d = pairwise_distance(query[start : start + block], reference, metric)
        vals, cols = select_k_smallest(d, k)
        dists.append(vals)
        idxs.append(cols)
    if not dists:
        return query.new_zeros(0, k), torch.zeros(0, k, dtype=torch.long, device=query.device)
    return torch.cat(dists), torch.cat(idxs)


# ------------------------------------------------------------------------------------------- spectral
def mel_power(spectrum: torch.Tensor, filterbank: torch.Tensor) -> torch.Tensor:
    """``|spectrum|^2 @ filterbank`` as ATen ops: the power of each bin, then a dense product.
    ``spectrum`` (..., bins) complex; ``filterbank`` (bins, n_mels) real."""
    power = spectrum.real.square() + spectrum.imag.square()
    return power @ filterbank.to(power)


# -------------------------------------------------------------------------------------- triplet mining
# Conventions shared with the kernels (csrc/ops/triplet_*.cpp): a positive of anchor a is another row with
# a's label, a negative a row with another label; ties go to the lower index; an anchor (or pair) with no
# positive or no negative is marked -1 and contributes nothing.

# batch-all processes anchors in chunks of at most this many (anchor, positive, negative) cells, so memory
# stays O(B^2) however large the batch: 2^17 cells hold about 2.5 MB of temporaries (~20 bytes per cell),
# and chunks this size already keep the per-chunk Python overhead small.
BATCH_ALL_CHUNK_CELLS = 1 << 17


def hinge(x: torch.Tensor, margin: float, soft: bool) -> torch.Tensor:
    """The triplet term of ``x = d(a, p) - d(a, n)``: ``max(0, x + margin)``, or ``softplus(x)`` when soft."""
    return torch.nn.functional.softplus(x) if soft else torch.relu(x + margin)


def triplet_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(positive, negative)`` (B, B) boolean masks: same label other row, and different label."""
    same = labels[:, None] == labels[None, :]
    return same.clone().fill_diagonal_(False), ~same


def batch_hard_from_distances(dist: torch.Tensor, labels: torch.Tensor, margin: float, soft: bool):
    """Batch-hard mining on a (B, B) distance matrix; the outputs of :func:`triplet_batch_hard`."""
    if dist.shape[0] == 0:  # argmax has nothing to reduce over
        none = torch.zeros(0, dtype=torch.long, device=dist.device)
        return dist.sum(1), none, none.clone(), dist.sum(1).detach(), dist.sum(1).detach()
    pos_mask, neg_mask = triplet_masks(labels)
    has = pos_mask.any(1) & neg_mask.any(1)
    # argmax/argmin return the first of equal values: the lower index, as the kernels choose
    positive = dist.detach().masked_fill(~pos_mask, float("-inf")).argmax(1, keepdim=True)
    negative = dist.detach().masked_fill(~neg_mask, float("inf")).argmin(1, keepdim=True)
    zero = torch.zeros_like(dist[:, 0])
    d_ap = torch.where(has, dist.gather(1, positive)[:, 0], zero)  # the gathers carry the gradient
    d_an = torch.where(has, dist.gather(1, negative)[:, 0], zero)
    terms = torch.where(has, hinge(d_ap - d_an, margin, soft), zero)
    missing = torch.full_like(positive[:, 0], -1)
    return (
        terms,
        torch.where(has, positive[:, 0], missing),
        torch.where(has, negative[:, 0], missing),
        d_ap.detach(),
        d_an.detach(),
    )


def triplet_batch_hard(embeddings: torch.Tensor, labels: torch.Tensor, margin: float, metric: str, soft: bool):
    """Per anchor: its farthest positive and nearest negative under ``metric``, and the term.

    Returns:
        ``(terms (B,), positive (B,) int64, negative (B,) int64, d_ap (B,), d_an (B,))``; -1 and a term of 0
        for anchors without a positive or a negative; only ``terms`` carries gradients.
    """
    return batch_hard_from_distances(pairwise_distance(embeddings, embeddings, metric), labels, margin, soft)


def _positive_table(pos_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each anchor's positives as a padded table: ``(index (B, P), valid (B, P))``, P = most positives of any anchor.

    In a PK batch an anchor has K - 1 positives but B - K negatives, so enumerating (anchor, positive, all
    B) costs B^2 (K - 1) cells instead of the B^3 of the full cube.
    """
    b = pos_mask.shape[0]
    counts = pos_mask.sum(1)
    p = int(counts.max()) if b else 0
    rows, cols = torch.nonzero(pos_mask, as_tuple=True)  # row-major: each row's positives are contiguous
    first = torch.cumsum(counts, 0) - counts
    slot = torch.arange(rows.numel(), device=pos_mask.device) - first[rows]
    index = torch.zeros(b, p, dtype=torch.long, device=pos_mask.device)
    valid = torch.zeros(b, p, dtype=torch.bool, device=pos_mask.device)
    index[rows, slot] = cols
    valid[rows, slot] = True
    return index, valid


@torch.no_grad()
def _batch_all_sweep(dist: torch.Tensor, labels: torch.Tensor, margin: float, soft: bool):
    """Every valid triplet of ``dist``, anchors in chunks of at most ``BATCH_ALL_CHUNK_CELLS`` cells."""
    b = dist.shape[0]
    pos_mask, neg_mask = triplet_masks(labels)
    pos_index, pos_valid = _positive_table(pos_mask)
    p = pos_index.shape[1]
    chunk = max(1, BATCH_ALL_CHUNK_CELLS // max(1, p * b))
    w_pos, w_neg = torch.zeros_like(dist), torch.zeros_like(dist)
    term_sum = torch.zeros(b, dtype=dist.dtype, device=dist.device)
    valid_count = torch.zeros(b, dtype=torch.long, device=dist.device)
    active_count = torch.zeros(b, dtype=torch.long, device=dist.device)
    for start in range(0, b if p else 0, chunk):
        rows = slice(start, start + chunk)
        d, idx = dist[rows], pos_index[rows]
        valid = pos_valid[rows, :, None] & neg_mask[rows, None, :]  # (c, P, B)
        z = d.gather(1, idx)[:, :, None] - d[:, None, :]
        invalid = ~valid
        terms = hinge(z, margin, soft).masked_fill_(invalid, 0)
        active = terms > 0  # invalid cells are 0, so never active
        # d(term)/dz: sigmoid for the soft margin, 1 where the hinge is open, 0 elsewhere
        slope = torch.sigmoid(z).masked_fill_(invalid, 0) if soft else active.to(dist.dtype)
        w_pos[rows].scatter_add_(1, idx, slope.sum(2))  # padding slots carry slope 0
        w_neg[rows] = slope.sum(1)
        term_sum[rows] = terms.sum((1, 2))
        valid_count[rows] = valid.sum((1, 2))
        active_count[rows] = active.sum((1, 2))
    return term_sum, valid_count, active_count, w_pos.sub_(w_neg)


def triplet_batch_all(dist: torch.Tensor, labels: torch.Tensor, margin: float, soft: bool):
    """Every valid triplet (a, p, n) of a (B, B) distance matrix, summed per anchor.

    Returns:
        ``(term_sum (B,), valid (B,) int64, active (B,) int64, slope (B, B))``: per anchor the sum of its
        terms, how many triplets it has and how many of them are positive, and ``slope[a, j] =
        d term_sum[a] / d dist[a, j]`` (no gradient of its own). ``term_sum`` is differentiable with
        respect to ``dist``: its gradient is ``grad[:, None] * slope``, the formula registered for the
        compiled op. It is attached as the first-order expansion ``term_sum + <slope, dist - dist.detach()>``
        so that no (B, P, B) triplet tensor is kept for the backward: memory stays O(B^2).
    """
    term_sum, valid, active, slope = _batch_all_sweep(dist.detach(), labels, margin, soft)
    if dist.requires_grad:
        term_sum = term_sum + (slope * (dist - dist.detach())).sum(1)
    return term_sum, valid, active, slope


@torch.no_grad()
def triplet_semi_hard_negatives(dist: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """(B, B) int64: for every positive pair (a, p), the nearest negative n with d(a, p) < d(a, n) <
    d(a, p) + margin (FaceNet's semi-hard), else the nearest negative of all; -1 where (a, p) is no
    positive pair or a has no negative."""
    pos_mask, neg_mask = triplet_masks(labels)
    out = torch.full(dist.shape, -1, dtype=torch.long, device=dist.device)
    a_idx, p_idx = torch.nonzero(pos_mask & neg_mask.any(1, keepdim=True), as_tuple=True)
    if a_idx.numel() == 0:
        return out
    d_ap = dist[a_idx, p_idx][:, None]
    row, negs = dist[a_idx], neg_mask[a_idx]  # (pairs, B)
    window = negs & (row > d_ap) & (row < d_ap + margin)
    semi = row.masked_fill(~window, float("inf")).argmin(1)  # the first of equal values: the lower index
    hardest = row.masked_fill(~negs, float("inf")).argmin(1)
    out[a_idx, p_idx] = torch.where(window.any(1), semi, hardest)
    return out
