"""Fake kernels and autograd formulas of the compiled loss ops (imported when audiosiam._C loads)."""

from __future__ import annotations

import torch


@torch.library.register_fake("audiosiam::triplet_batch_hard")
def _batch_hard_fake(embeddings, labels, margin, scale, squared, soft):
    b = embeddings.shape[0]
    vec = embeddings.new_empty(b)
    idx = labels.new_empty(b, dtype=torch.long)
    return vec, idx, torch.empty_like(idx), torch.empty_like(vec), torch.empty_like(vec)


@torch.library.register_fake("audiosiam::_triplet_batch_hard_backward")
def _batch_hard_backward_fake(grad_terms, embeddings, positive, negative, d_ap, d_an, margin, scale, squared, soft):
    return torch.empty_like(embeddings)


@torch.library.register_fake("audiosiam::triplet_batch_all")
def _batch_all_fake(dist, labels, margin, soft):
    b = dist.shape[0]
    return dist.new_empty(b), labels.new_empty(b), labels.new_empty(b), dist.new_empty(b, b)


@torch.library.register_fake("audiosiam::triplet_semi_hard_negatives")
def _semi_hard_fake(dist, labels, margin):
    return labels.new_empty(dist.shape[0], dist.shape[0])


def _setup_context(ctx, inputs, output):
    embeddings, _, margin, scale, squared, soft = inputs
    _, positive, negative, d_ap, d_an = output
    ctx.save_for_backward(embeddings, positive, negative, d_ap, d_an)
    ctx.settings = (margin, scale, squared, soft)


def _backward(ctx, grad_terms, _grad_pos, _grad_neg, _grad_dap, _grad_dan):
    # Only the terms are differentiable outputs; d_ap and d_an are returned for logging.
    embeddings, positive, negative, d_ap, d_an = ctx.saved_tensors
    grad = torch.ops.audiosiam._triplet_batch_hard_backward(grad_terms, embeddings, positive, negative, d_ap, d_an,
                                                            *ctx.settings)
    return grad, None, None, None, None, None


torch.library.register_autograd("audiosiam::triplet_batch_hard", _backward, setup_context=_setup_context)
