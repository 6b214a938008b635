"""Zipformer's BiasNorm as one C kernel pass each way on the CPU (`bias_norm.c`).

    y = bias_norm(x, bias, log_scale, eps)
        # x (..., C), bias (C), log_scale a 0-d tensor (already limited) ->
        # x * exp(log_scale) / sqrt(mean_C((x - bias)^2) + eps)

Why a kernel: the PyTorch form (`reference`) is nine passes over the activations
forward and about a dozen backward, for a row of 64-256 channels that needs one;
a Zipformer step at depth 1 runs seven norms. Float32 CPU tensors go through the
kernel, anything else (a GPU, another dtype, EXPSEARCH_NATIVE=0, no compiler)
through `reference`; the two agree to float32 rounding (tests/test_zipformer.py).
"""

from __future__ import annotations

import ctypes
from functools import cache

import torch
from torch.autograd.function import once_differentiable

from . import native


def _kernel() -> ctypes.CDLL | None:
    return native.kernel("bias_norm", bias_norm_forward=(6, 2), bias_norm_backward=(8, 2))


@cache
def _eps(value: float) -> torch.Tensor:
    """The kernel's float32 copy of eps, made once per value."""
    return torch.tensor(value, dtype=torch.float32)


def reference(x, bias, log_scale, eps: float) -> torch.Tensor:
    """The formula in PyTorch: the fallback, and what the kernel is tested against."""
    mean_square = (x - bias).square().mean(-1, keepdim=True)
    # One full-size multiply by a per-step factor (not a divide and a multiply).
    return x * (log_scale.exp() * torch.rsqrt(mean_square + eps))


class _FusedBiasNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bias, log_scale, eps):
        y, r = torch.empty_like(x), x.new_empty(x.shape[:-1])
        sizes = (r.numel(), x.shape[-1])
        _kernel().bias_norm_forward(*native.pointers(x, bias, log_scale, eps, y, r), *sizes)
        ctx.save_for_backward(x, bias, log_scale, r)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, gy: torch.Tensor):
        x, bias, log_scale, r = ctx.saved_tensors
        gy = gy.contiguous()  # bound to a name: a temporary would be freed before the call
        gx, gbias, glog = torch.empty_like(x), torch.empty_like(bias), torch.empty_like(log_scale)
        tensors = native.pointers(x, bias, log_scale, r, gy, gx, gbias, glog)
        _kernel().bias_norm_backward(*tensors, r.numel(), x.shape[-1])
        return gx, gbias, glog, None


def bias_norm(x, bias, log_scale, eps: float) -> torch.Tensor:
    if native.cpu_float32(x, bias, log_scale) and _kernel() is not None:
        x, bias, log_scale = x.contiguous(), bias.contiguous(), log_scale.contiguous()
        return _FusedBiasNorm.apply(x, bias, log_scale, _eps(eps))
    return reference(x, bias, log_scale, eps)
