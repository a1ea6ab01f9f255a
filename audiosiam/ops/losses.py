"""Fused loss ops: thin wrappers over ``torch.ops.audiosiam.triplet_batch_hard``, ``triplet_batch_all`` and
``triplet_semi_hard_negatives``.

``audiosiam.losses`` calls these when the compiled op is available and falls back to the pure-PyTorch
definitions in ``audiosiam/losses/functional.py`` (the reference) otherwise.
"""

from __future__ import annotations

import torch

from ._extension import call, use_compiled

__all__ = ["fused_batch_hard_available", "batch_hard_triplet_terms", "compiled_batch_all_available",
           "fused_batch_all_available",
           "batch_all_triplet_slopes", "compiled_semi_hard_available", "semi_hard_negatives"]


def fused_batch_hard_available(embeddings: torch.Tensor, distance: str) -> bool:
    """True when the compiled batch-hard op can compute this case exactly as the reference does."""
    if not use_compiled("triplet_batch_hard", embeddings):
        return False
    if distance == "cosine":  # zero rows have cosine distance 1 by definition; normalising cannot express it
        return bool((embeddings.detach().norm(dim=1) > 0).all())
    return True


def batch_hard_triplet_terms(embeddings: torch.Tensor, labels: torch.Tensor, *, margin: float, distance: str,
                             squared: bool, soft: bool):
    """Per-anchor batch-hard terms from the fused op.

    Returns:
        ``(terms (B,), valid (B,) bool, d_ap (B,), d_an (B,))``; only ``terms`` carries gradients.
    """
    x = embeddings if embeddings.dtype in (torch.float32, torch.float64) else embeddings.float()
    scale = 1.0
    if distance == "cosine":  # 1 - cos(u, v) = |u - v|^2 / 2 for unit vectors
        x, squared, scale = torch.nn.functional.normalize(x, dim=1), True, 0.5
    terms, pos, _, d_ap, d_an = call("triplet_batch_hard", x, labels.long(), float(margin), scale, bool(squared),
                                        bool(soft))
    return terms, pos >= 0, (scale * d_ap).detach(), (scale * d_an).detach()


def _compiled_mining_available(op: str, dist: torch.Tensor) -> bool:
    return use_compiled(op, dist) and dist.dtype in (torch.float32, torch.float64)


def compiled_batch_all_available(dist: torch.Tensor) -> bool:
    """True when the compiled batch-all mining op can run on this distance matrix."""
    return _compiled_mining_available("triplet_batch_all", dist)


def fused_batch_all_available(embeddings: torch.Tensor) -> bool:
    """True when batch-all can run from the embeddings inside one node: the compiled self-distance and
    batch-all ops are built and serve this device (half inputs are computed in float32)."""
    return use_compiled("self_distance", embeddings) and use_compiled("triplet_batch_all", embeddings)


def compiled_semi_hard_available(dist: torch.Tensor) -> bool:
    """True when the compiled semi-hard mining op can run on this distance matrix."""
    return _compiled_mining_available("triplet_semi_hard_negatives", dist)


def semi_hard_negatives(dist: torch.Tensor, labels: torch.Tensor, *, margin: float) -> torch.Tensor:
    """(B, B) int64: the semi-hard negative of every positive pair (a, p), -1 elsewhere (see the schema)."""
    return call("triplet_semi_hard_negatives", dist.detach().contiguous(), labels.long(), float(margin))


def batch_all_triplet_slopes(dist: torch.Tensor, labels: torch.Tensor, *, margin: float, soft: bool):
    """Every valid triplet of a (B, B) distance matrix, from the compiled op (no gradient; see the schema).

    Returns:
        ``(term_sum (B,), valid (B,) int64, active (B,) int64, slope (B, B))`` per anchor.
    """
    return call("triplet_batch_all", dist.detach().contiguous(), labels.long(), float(margin), bool(soft))
