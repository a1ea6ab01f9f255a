"""Fused loss ops: thin wrappers over ``torch.ops.audiosiam.triplet_batch_hard``.

``audiosiam.losses`` calls these when the compiled op is available and falls back to the pure-PyTorch
definitions in ``audiosiam/losses/functional.py`` (the reference) otherwise.
"""

from __future__ import annotations

import torch

from ._extension import has_ops

__all__ = ["fused_batch_hard_available", "batch_hard_triplet_terms"]


def fused_batch_hard_available(embeddings: torch.Tensor, distance: str) -> bool:
    """True when the compiled batch-hard op can compute this case exactly as the reference does."""
    if not (has_ops() and hasattr(torch.ops.audiosiam, "triplet_batch_hard")):
        return False
    if embeddings.device.type not in ("cpu", "cuda"):
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
    terms, pos, _, d_ap, d_an = torch.ops.audiosiam.triplet_batch_hard(x, labels.long(), float(margin), scale,
                                                                       bool(squared), bool(soft))
    return terms, pos >= 0, (scale * d_ap).detach(), (scale * d_an).detach()
