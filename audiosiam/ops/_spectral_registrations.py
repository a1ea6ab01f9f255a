"""Fake (meta) kernel and autograd formula of the compiled ``mel_power`` op (imported when it loads)."""

from __future__ import annotations

import torch


@torch.library.register_fake("audiosiam::mel_power")
def _mel_power_fake(spectrum, filterbank):
    return spectrum.new_empty(spectrum.shape[0], filterbank.shape[1])


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad):
    spectrum, filterbank = ctx.saved_tensors
    grad_spectrum = grad_filterbank = None
    if ctx.needs_input_grad[0]:  # d out[r, m] / d spectrum[r, f, c] = 2 filterbank[f, m] spectrum[r, f, c]
        grad_spectrum = 2 * spectrum * (grad @ filterbank.T).unsqueeze(-1)
    if ctx.needs_input_grad[1]:
        grad_filterbank = spectrum.square().sum(-1).T @ grad
    return grad_spectrum, grad_filterbank


torch.library.register_autograd("audiosiam::mel_power", _backward, setup_context=_setup_context)
