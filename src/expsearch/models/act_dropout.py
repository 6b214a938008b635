"""A feed-forward layer's hidden activation, with the layer's bias and the dropout
after it, as one C kernel pass each way on the CPU (`act_dropout.c`).

    y = act_dropout(F.linear(x, layer.weight), layer.bias, "gelu", drop)
        # = drop(gelu(layer(x))): RetNet's FFN; SWOOSH_L for Zipformer's (swoosh.py)

Why: unfused, the layer writes four (B, T, hidden) tensors, the `addmm`'s output
(which it first fills with the broadcast bias), the activation, the dropout mask
and the product, and reads them back in the backward; at width 64 each is
0.7-1 MB, and four no longer fit a core's L2. Here the bias is added and the
mask made inside the activation's pass, and the backward makes the mask again
instead of storing it. The mask is the one the dropout module would draw
(`Dropout.reserve` takes its draws, `dropout.h` holds the generator), so the
fused and unfused layers give the same outputs, draws and gradients to float32
rounding (tests/test_model_kernels.py). Elsewhere (a GPU, another dtype, a
non-contiguous input, p = 1, EXPSEARCH_NATIVE=0, no compiler) it is exactly
those module calls.
"""

from __future__ import annotations

import ctypes
from functools import cache

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import native
from .dropout import Dropout
from .swoosh import swoosh

GELU = "gelu"
_KIND = {GELU: 1}  # any other activation: Swoosh constants (offset, slope, shift), kind 0
_ONE = torch.ones(1)  # the kept elements' factor when nothing is dropped


def _kernel() -> ctypes.CDLL | None:
    return native.kernel("act_dropout", act_dropout_forward=(5, 6), act_dropout_backward=(7, 6))


@cache
def _params(activation) -> torch.Tensor:
    """The kernel's float32 constants of `activation` (unused for GELU), made once."""
    return torch.tensor((0.0, 0.0, 0.0) if activation == GELU else activation)


def _activate(x: torch.Tensor, activation) -> torch.Tensor:
    return F.gelu(x) if activation == GELU else swoosh(x, activation)


class _ActDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, bias, params, scale, sizes: tuple[int, ...]):
        y = torch.empty_like(h)
        _kernel().act_dropout_forward(*native.pointers(h, bias, params, scale, y), *sizes)
        ctx.save_for_backward(h, bias, params, scale)
        ctx.sizes = sizes
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        h, bias, params, scale = ctx.saved_tensors
        grad = grad.contiguous()  # bound to a name: a temporary would be freed before the call
        gh, gbias = torch.empty_like(h), torch.empty_like(bias)
        tensors = native.pointers(h, bias, params, scale, grad, gh, gbias)
        _kernel().act_dropout_backward(*tensors, *ctx.sizes)
        return gh, gbias, None, None, None


def act_dropout(h: torch.Tensor, bias: torch.Tensor, activation, drop: Dropout) -> torch.Tensor:
    """drop(activation(h + bias)): h (..., C) a linear layer's output without its bias (C);
    activation GELU or a Swoosh's constants."""
    native_path = (
        native.cpu_float32(h, bias) and h.is_contiguous() and _kernel() is not None
        and not (drop.training and drop.p == 1.0)
    )  # fmt: skip
    if not native_path:
        return drop(_activate(h + bias, activation))
    if drop.training and drop.p > 0.0:
        draws, scale = (drop.seed, drop.reserve(h.numel()), drop.threshold), drop.scale
    else:  # nothing dropped, no draws taken (as `drop` returns its input then)
        draws, scale = (0, 0, 0), _ONE
    sizes = (h.numel() // h.shape[-1], h.shape[-1], *draws, _KIND.get(activation, 0))
    return _ActDropout.apply(h, bias.contiguous(), _params(activation), scale, sizes)
