"""Zipformer's Bypass with its sub-layer's dropout, x + c * drop(y) with a learned scale c
per channel, as one C kernel pass each way on the CPU (`residual.c`).

    out = residual_dropout(x, y, c, drop)      # = torch.addcmul(x, c, drop(y))

Why: unfused, the dropout writes its mask and the product, the Bypass's addcmul a
third tensor, and the backward reads them in four more passes (the mask's
product; the scale's product and its sum over rows); at width 64 each is
(B, T, 64) floats, where the passes and allocations cost more than their
arithmetic (0.6 ms per residual of a batch of 64 x 20 steps; six per Zipformer
block). Here the mask is made inside the pass, and again in the backward instead
of being stored; it is the one the module would draw (`Dropout.reserve` takes
its draws), so the fused and unfused forms give the same outputs, draws and
gradients to float32 rounding (tests/test_model_kernels.py). In evaluation, at
p = 0 or 1, and elsewhere (a GPU, another dtype, a non-contiguous input,
EXPSEARCH_NATIVE=0, no compiler) it is exactly those module calls. The plain
residuals of the other encoders (x + drop(y)) gained nothing measurable from
the same kernel (a step x0.997-1.01 in one-process A/Bs): there the Python
autograd Function costs about what the two passes it saves do.
"""

from __future__ import annotations

import ctypes

import torch
from torch.autograd.function import once_differentiable

from . import native
from .dropout import Dropout


def _kernel() -> ctypes.CDLL | None:
    return native.kernel("residual", residual_forward=(5, 5), residual_backward=(6, 5))


class _ResidualDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, scale, kept, sizes: tuple[int, ...]):
        out = torch.empty_like(x)
        _kernel().residual_forward(*native.pointers(x, y, scale, kept, out), *sizes)
        ctx.save_for_backward(y, scale, kept)
        ctx.sizes = sizes
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        y, scale, kept = ctx.saved_tensors
        grad = grad.contiguous()  # bound to a name: a temporary would be freed before the call
        gy, gscale = torch.empty_like(y), torch.empty_like(scale)
        _kernel().residual_backward(*native.pointers(grad, y, scale, kept, gy, gscale),
                                    *ctx.sizes)  # fmt: skip
        return grad, gy, gscale, None, None


def residual_dropout(
    x: torch.Tensor, y: torch.Tensor, scale: torch.Tensor, drop: Dropout
) -> torch.Tensor:
    """x + scale * drop(y): x, y (..., C), scale (C,) per channel."""
    fused = (
        drop.training and 0.0 < drop.p < 1.0 and x.shape == y.shape
        and scale.shape == x.shape[-1:] and native.cpu_float32(x, y, scale)
        and x.is_contiguous() and y.is_contiguous() and _kernel() is not None
    )  # fmt: skip
    if not fused:
        return torch.addcmul(x, scale, drop(y))
    sizes = (y.numel() // y.shape[-1], y.shape[-1], drop.seed, drop.reserve(y.numel()),
             drop.threshold)  # fmt: skip
    return _ResidualDropout.apply(x, y, scale.contiguous(), drop.scale, sizes)
