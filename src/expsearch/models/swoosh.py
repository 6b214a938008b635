"""Softplus and Zipformer's Swoosh activations, which are shifted softplus.

    y = swoosh_l(x)    # softplus(x - 4) - 0.08 x - 0.035   (Zipformer's FFN)
    y = swoosh_r(x)    # softplus(x - 1) - 0.08 x - 0.313261687   (its conv module)
    y = softplus(x)    # log(1 + exp(x))   (no model calls it now: BiMamba's scan kernel has its own)

Why a kernel: in PyTorch each is four passes over the activations forward and
three backward, and `softplus` alone ran at about 2 ns per element on one CPU
thread; at width 64 these were about a tenth of a Zipformer training step. On a
CPU with a C compiler, float32 contiguous tensors go through `swoosh.c`, one
pass each way (the backward recomputes sigmoid(x - offset) from x rather than
storing it); anything else (a GPU, another dtype, EXPSEARCH_NATIVE=0, no
compiler) uses the PyTorch formula, which the kernel matches to float32 rounding.
"""

from __future__ import annotations

import ctypes
from functools import cache

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import native

SWOOSH_L = (4.0, 0.08, 0.035)  # offset, slope, shift
SWOOSH_R = (1.0, 0.08, 0.313261687)
SOFTPLUS = (0.0, 0.0, 0.0)


@cache
def _params(constants: tuple[float, float, float]) -> torch.Tensor:
    """The kernel's float32 copy of `constants`, made once per set."""
    return torch.tensor(constants, dtype=torch.float32)


def _kernel() -> ctypes.CDLL | None:
    return native.kernel("swoosh", swoosh_forward=(3, 1), swoosh_backward=(4, 1))


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
    if native.cpu_float32(x) and x.is_contiguous() and _kernel() is not None:
        return _NativeSwoosh.apply(x, _params(constants))
    return reference(x, *constants)


def swoosh_l(x: torch.Tensor) -> torch.Tensor:
    return swoosh(x, SWOOSH_L)


def swoosh_r(x: torch.Tensor) -> torch.Tensor:
    return swoosh(x, SWOOSH_R)


def softplus(x: torch.Tensor) -> torch.Tensor:
    """F.softplus (beta 1; above its threshold of 20 the two differ by < 1e-8)."""
    return swoosh(x, SOFTPLUS)
