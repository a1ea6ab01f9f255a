"""The triplet-mining ops behind ``audiosiam.losses``: batch-hard (fused with its distances and terms),
batch-all and semi-hard.

Each runs its compiled kernel (``torch.ops.audiosiam.*``, CPU and CUDA) when the extension is built and
can compute the case exactly, and its reference in ``_reference`` otherwise, like every op here. The
conventions (ties to the lower index, -1 for anchors or pairs without a positive or a negative) are
those of the kernels' schemas in ``csrc/ops/triplet_*.cpp``.
"""

from __future__ import annotations

import torch

from ..errors import ParameterError
from . import _reference as reference
from ._extension import call, use_compiled

TRIPLET_METRICS = ("euclidean", "sqeuclidean", "cosine")


def _check_labels(labels, rows: int, device) -> torch.Tensor:
    if not torch.is_tensor(labels) or labels.ndim != 1 or labels.shape[0] != rows:
        shape = tuple(labels.shape) if torch.is_tensor(labels) else type(labels).__name__
        raise ParameterError(f"labels: expected shape ({rows},), got {shape}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ParameterError(f"labels: expected an integer tensor, got {labels.dtype}")
    if labels.device != device:
        raise ParameterError(f"labels: on {labels.device}, but the other input is on {device}")
    return labels.long()


def _check_float(name: str, t, square: bool = False) -> torch.Tensor:
    if not torch.is_tensor(t) or t.ndim != 2 or (square and t.shape[0] != t.shape[1]):
        want = "(B, B)" if square else "(B, D)"
        raise ParameterError(
            f"{name}: expected shape {want}, got {tuple(t.shape) if torch.is_tensor(t) else type(t).__name__}"
        )
    if not t.dtype.is_floating_point:
        raise ParameterError(f"{name}: expected a floating dtype, got {t.dtype}")
    return t if t.dtype in (torch.float32, torch.float64) else t.float()  # half precision: computed in float32


def triplet_batch_hard(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    margin: float = 0.2,
    metric: str = "euclidean",
    soft: bool = False,
):
    """Batch-hard mining and its triplet terms, from the embeddings.

    Args:
        embeddings (Tensor): (B, D) float; float16/bfloat16 are computed in float32.
        labels (Tensor): (B,) integer class of each row.
        margin (float, optional): the hinge's margin (ignored when ``soft``). Default: ``0.2``.
        metric (str, optional): ``"euclidean"``, ``"sqeuclidean"`` or ``"cosine"``. Default: ``"euclidean"``.
        soft (bool, optional): ``softplus(d_ap - d_an)`` instead of the hinge. Default: ``False``.

    Returns:
        ``(terms (B,), positive (B,) int64, negative (B,) int64, d_ap (B,), d_an (B,))``: per anchor its
        term, the indices of its farthest positive and nearest negative (-1, and a term of 0, where it has
        none), and their distances. Only ``terms`` carries gradients.

    Raises:
        ParameterError: ``embeddings`` is not (B, D) floating, ``labels`` not (B,) integer on the same
            device, or ``metric`` is not one of the three.

    The compiled op computes each pair's distance once and keeps O(B) memory, with a sparse O(B D)
    backward; cosine is served as half the squared euclidean distance of unit rows, so a batch with an
    all-zero row (cosine distance 1 by definition) goes to the reference.
    """
    x = _check_float("embeddings", embeddings)
    labels = _check_labels(labels, x.shape[0], x.device)
    if metric not in TRIPLET_METRICS:
        raise ParameterError(f"metric={metric!r}: expected one of {TRIPLET_METRICS}")
    cosine = metric == "cosine"
    if use_compiled("triplet_batch_hard", x) and not (cosine and bool((x.detach().norm(dim=1) == 0).any())):
        scale = 0.5 if cosine else 1.0  # 1 - cos(u, v) = |u - v|^2 / 2 for unit vectors
        rows = torch.nn.functional.normalize(x, dim=1) if cosine else x
        terms, positive, negative, d_ap, d_an = call(
            "triplet_batch_hard", rows, labels, float(margin), scale, cosine or metric == "sqeuclidean", bool(soft)
        )
        return terms, positive, negative, (scale * d_ap).detach(), (scale * d_an).detach()
    return reference.triplet_batch_hard(x, labels, float(margin), metric, bool(soft))


def triplet_batch_all(dist: torch.Tensor, labels: torch.Tensor, *, margin: float = 0.2, soft: bool = False):
    """Every valid triplet (a, p, n) of a distance matrix, summed per anchor, in O(B^2) memory.

    Args:
        dist (Tensor): (B, B) float distances, e.g. ``pairwise_distance(embeddings)``.
        labels (Tensor): (B,) integer class of each row.
        margin (float, optional): the hinge's margin (ignored when ``soft``). Default: ``0.2``.
        soft (bool, optional): softplus terms instead of the hinge. Default: ``False``.

    Returns:
        ``(term_sum (B,), valid (B,) int64, active (B,) int64, slope (B, B))``: per anchor the sum of its
        terms, its number of triplets and of positive terms, and ``slope = d term_sum[a] / d dist[a, j]``.
        ``term_sum`` is differentiable with respect to ``dist`` (gradient ``grad[:, None] * slope``, so no
        B^3 anything is kept); ``slope`` carries no gradient.
    """
    d = _check_float("dist", dist, square=True)
    labels = _check_labels(labels, d.shape[0], d.device)
    if use_compiled("triplet_batch_all", d):
        return call("triplet_batch_all", d.contiguous(), labels, float(margin), bool(soft))
    return reference.triplet_batch_all(d, labels, float(margin), bool(soft))


def triplet_semi_hard_negatives(dist: torch.Tensor, labels: torch.Tensor, *, margin: float = 0.2) -> torch.Tensor:
    """FaceNet's semi-hard negative of every positive pair.

    Args:
        dist (Tensor): (B, B) float distances.
        labels (Tensor): (B,) integer class of each row.
        margin (float, optional): the semi-hard window ``d(a, p) < d(a, n) < d(a, p) + margin``.
            Default: ``0.2``.

    Returns:
        (B, B) int64: for every positive pair (a, p) the nearest negative inside the window, else the
        nearest negative of all; -1 where (a, p) is no positive pair or a has no negative. A selection:
        not differentiable (gather ``dist`` with it for the loss).
    """
    d = _check_float("dist", dist, square=True).detach()
    labels = _check_labels(labels, d.shape[0], d.device)
    if use_compiled("triplet_semi_hard_negatives", d):
        return call("triplet_semi_hard_negatives", d.contiguous(), labels, float(margin))
    return reference.triplet_semi_hard_negatives(d, labels, float(margin))
