"""Fake (meta) kernels and autograd formulas of every compiled op, registered the same way for all.

Imported once, right after ``audiosiam._C`` loads. ``register_fake`` lets ``torch.compile`` trace the ops
without running them; ``register_autograd`` gives each differentiable op its gradient: a private
``_*_backward`` op for the distances and batch-hard, a formula in terms of saved outputs for mel_power
and batch-all. The mining selection ops (knn, semi-hard) are not differentiable.
"""

from __future__ import annotations

import torch


# ------------------------------------------------------------------------------------ distances
@torch.library.register_fake("audiosiam::pairwise_distance")
def _pairwise_distance_fake(x, y, metric):
    return x.new_empty(x.shape[0], y.shape[0])


@torch.library.register_fake("audiosiam::_pairwise_distance_backward")
def _pairwise_distance_backward_fake(grad, x, y, dist, metric):
    return torch.empty_like(x), torch.empty_like(y)


@torch.library.register_fake("audiosiam::self_distance")
def _self_distance_fake(x, metric):
    return x.new_empty(x.shape[0], x.shape[0])


@torch.library.register_fake("audiosiam::_self_distance_backward")
def _self_distance_backward_fake(grad, x, dist, metric):
    return torch.empty_like(x)


@torch.library.register_fake("audiosiam::knn")
def _knn_fake(query, reference, k, metric):
    return query.new_empty(query.shape[0], k), query.new_empty(query.shape[0], k, dtype=torch.long)


def _pairwise_setup_context(ctx, inputs, output):
    x, y, metric = inputs
    ctx.save_for_backward(x, y, output)
    ctx.metric = metric


def _pairwise_backward(ctx, grad):
    x, y, dist = ctx.saved_tensors
    grad_x, grad_y = torch.ops.audiosiam._pairwise_distance_backward(grad, x, y, dist, ctx.metric)
    return grad_x, grad_y, None


torch.library.register_autograd(
    "audiosiam::pairwise_distance", _pairwise_backward, setup_context=_pairwise_setup_context
)


def _self_setup_context(ctx, inputs, output):
    x, metric = inputs
    ctx.save_for_backward(x, output)
    ctx.metric = metric


def _self_backward(ctx, grad):
    x, dist = ctx.saved_tensors
    return torch.ops.audiosiam._self_distance_backward(grad, x, dist, ctx.metric), None


torch.library.register_autograd("audiosiam::self_distance", _self_backward, setup_context=_self_setup_context)


# ------------------------------------------------------------------------------------- spectral
@torch.library.register_fake("audiosiam::mel_power")
def _mel_power_fake(spectrum, filterbank):
    return spectrum.new_empty(spectrum.shape[0], filterbank.shape[1])


def _mel_power_setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _mel_power_backward(ctx, grad):
    spectrum, filterbank = ctx.saved_tensors
    grad_spectrum = grad_filterbank = None
    if ctx.needs_input_grad[0]:  # d out[r, m] / d spectrum[r, f, c] = 2 filterbank[f, m] spectrum[r, f, c]
        grad_spectrum = 2 * spectrum * (grad @ filterbank.T).unsqueeze(-1)
    if ctx.needs_input_grad[1]:
        grad_filterbank = spectrum.square().sum(-1).T @ grad
    return grad_spectrum, grad_filterbank


torch.library.register_autograd("audiosiam::mel_power", _mel_power_backward, setup_context=_mel_power_setup_context)


# ------------------------------------------------------------------------------- triplet mining
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


def _batch_hard_setup_context(ctx, inputs, output):
    embeddings, _, margin, scale, squared, soft = inputs
    _, positive, negative, d_ap, d_an = output
    ctx.mark_non_differentiable(d_ap, d_an)  # returned for logging only
    ctx.save_for_backward(embeddings, positive, negative, d_ap, d_an)
    ctx.settings = (margin, scale, squared, soft)


def _batch_hard_backward(ctx, grad_terms, _grad_pos, _grad_neg, _grad_dap, _grad_dan):
    # Only the terms are differentiable outputs; d_ap and d_an are returned for logging.
    embeddings, positive, negative, d_ap, d_an = ctx.saved_tensors
    grad = torch.ops.audiosiam._triplet_batch_hard_backward(
        grad_terms, embeddings, positive, negative, d_ap, d_an, *ctx.settings
    )
    return grad, None, None, None, None, None


torch.library.register_autograd(
    "audiosiam::triplet_batch_hard", _batch_hard_backward, setup_context=_batch_hard_setup_context
)


def _batch_all_setup_context(ctx, inputs, output):
    ctx.save_for_backward(output[3])  # slope = d term_sum[a] / d dist[a, j]
    # slope is an output for the record, not differentiable: without this, every backward would first
    # fill a (B, B) zero gradient for it (64 MB at B = 4096)
    ctx.mark_non_differentiable(output[3])


def _batch_all_backward(ctx, grad_term_sum, _grad_valid, _grad_active, _grad_slope):
    (slope,) = ctx.saved_tensors
    return grad_term_sum[:, None] * slope, None, None, None


torch.library.register_autograd(
    "audiosiam::triplet_batch_all", _batch_all_backward, setup_context=_batch_all_setup_context
)
