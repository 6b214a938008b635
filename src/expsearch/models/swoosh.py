"""Softplus and Zipformer's Swoosh activations, which are shifted softplus.

    y = swoosh_l(x)    # softplus(x - 4) - 0.08 x - 0.035   (Zipformer's FFN)
    y = swoosh_r(x)    # softplus(x - 1) - 0.08 x - 0.313261687   (its conv module)
    y = softplus(x)    # log(1 + exp(x))   (no model calls it now: BiMamba's scan kernel has its own)
    y = swoosh_dropout(h, bias, SWOOSH_L, drop)   # drop(swoosh_l(h + bias)), Zipformer's FFN

Why a kernel: in PyTorch each is four passes over the activations forward and
three backward, and `softplus` alone ran at about 2 ns per element on one CPU
thread; at width 64 these were about a tenth of a Zipformer training step. On a
CPU with a C compiler, float32 contiguous tensors go through `swoosh.c`, one
pass each way (the backward recomputes sigmoid(x - offset) from x rather than
storing it); anything else (a GPU, another dtype, EXPSEARCH_NATIVE=0, no
compiler) uses the PyTorch formula, which the kernel matches to float32 rounding.

`swoosh_dropout` also takes the FFN hidden layer's bias and the dropout after the
activation into the same pass: the bias leaves the matmul (an `addmm` first copies
the broadcast bias into its whole output), and the dropout mask, the same one the
module would draw (`dropout.h`), is made inside the kernel and made again in the
backward instead of being stored. At width 64 the hidden activations are 1 MB per
batch: four such tensors (the matmul's, the activation's, the mask and the product)
become one, which keeps them in a core's L2.
"""

from __future__ import annotations

import ctypes
from functools import cache

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import native
from .dropout import Dropout

SWOOSH_L = (4.0, 0.08, 0.035)  # offset, slope, shift
SWOOSH_R = (1.0, 0.08, 0.313261687)
SOFTPLUS = (0.0, 0.0, 0.0)


@cache
def _params(constants: tuple[float, float, float]) -> torch.Tensor:
    """The kernel's float32 copy of `constants`, made once per set."""
    return torch.tensor(constants, dtype=torch.float32)


def _kernel() -> ctypes.CDLL | None:
    return native.kernel(
        "swoosh",
        swoosh_forward=(3, 1),
        swoosh_backward=(4, 1),
        swoosh_dropout_forward=(5, 5),
        swoosh_dropout_backward=(7, 5),
    )


_ONE = torch.ones(1)  # the kept elements' factor when nothing is dropped


def reference(x: torch.Tensor, offset: float, slope: float, shift: float) -> torch.Tensor:
    """The formula in PyTorch: the fallback, and what the kernel is tested against."""
    return F.softplus(x - offset) - slope * x - shift


class _NativeSwoosh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        y = torch.empty_like(x)
        _kernel().swoosh_forward(*native.pointers(x, params, y), x.numel())
        ctx.save_for_backward(x, params)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, params = ctx.saved_tensors
        grad = grad.contiguous()
        gx = torch.empty_like(x)
        _kernel().swoosh_backward(*native.pointers(x, params, grad, gx), x.numel())
        return gx, None


def swoosh(x: torch.Tensor, constants: tuple[float, float, float]) -> torch.Tensor:
    native_path = (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and x.is_contiguous()
        and _kernel() is not None
    )
    if native_path:
        return _NativeSwoosh.apply(x, _params(constants))
    return reference(x, *constants)


def swoosh_l(x: torch.Tensor) -> torch.Tensor:
    return swoosh(x, SWOOSH_L)


def swoosh_r(x: torch.Tensor) -> torch.Tensor:
    return swoosh(x, SWOOSH_R)


def softplus(x: torch.Tensor) -> torch.Tensor:
    """F.softplus (beta 1; above its threshold of 20 the two differ by < 1e-8)."""
    return swoosh(x, SOFTPLUS)


class _SwooshDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, bias, params, scale, draws: tuple[int, int, int]):
        y = torch.empty_like(h)
        sizes = (h.numel() // h.shape[-1], h.shape[-1], *draws)
        _kernel().swoosh_dropout_forward(*native.pointers(h, bias, params, scale, y), *sizes)
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
        _kernel().swoosh_dropout_backward(*tensors, *ctx.sizes)
        return gh, gbias, None, None, None


def swoosh_dropout(
    h: torch.Tensor, bias: torch.Tensor, constants: tuple[float, float, float], drop: Dropout
) -> torch.Tensor:
    """drop(swoosh(h + bias)): h (..., C) a linear layer's output without its bias (C).
    On a CPU with the kernel, one pass each way with `drop`'s own mask stream (the same
    masks as calling `drop`); elsewhere exactly those calls."""
    native_path = (
        native.cpu_float32(h, bias) and h.is_contiguous() and _kernel() is not None
        and not (drop.training and drop.p == 1.0)
    )  # fmt: skip
    if not native_path:
        return drop(swoosh(h + bias, constants))
    if drop.training and drop.p > 0.0:
        draws = (drop.seed, drop.reserve(h.numel()), drop.threshold)
        scale = drop.scale
    else:  # nothing dropped, no draws taken (as `drop` returns its input then)
        draws, scale = (0, 0, 0), _ONE
    return _SwooshDropout.apply(h, bias.contiguous(), _params(constants), scale, draws)
