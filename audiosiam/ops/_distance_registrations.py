"""Fake (meta) kernels and autograd formulas of the compiled distance ops.

Imported once, right after ``audiosiam._C`` loads. ``register_fake`` lets ``torch.compile`` trace the
ops without running them; ``register_autograd`` connects ``pairwise_distance`` to its private backward op.
"""

from __future__ import annotations

import torch


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


def _setup_context(ctx, inputs, output):
    x, y, metric = inputs
    ctx.save_for_backward(x, y, output)
    ctx.metric = metric


def _backward(ctx, grad):
    x, y, dist = ctx.saved_tensors
    grad_x, grad_y = torch.ops.audiosiam._pairwise_distance_backward(grad, x, y, dist, ctx.metric)
    return grad_x, grad_y, None


torch.library.register_autograd("audiosiam::pairwise_distance", _backward, setup_context=_setup_context)


def _self_setup_context(ctx, inputs, output):
    x, metric = inputs
    ctx.save_for_backward(x, output)
    ctx.metric = metric


def _self_backward(ctx, grad):
    x, dist = ctx.saved_tensors
    return torch.ops.audiosiam._self_distance_backward(grad, x, dist, ctx.metric), None


torch.library.register_autograd("audiosiam::self_distance", _self_backward, setup_context=_self_setup_context)
