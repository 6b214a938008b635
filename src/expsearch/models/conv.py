"""Depthwise 1-D convolution over short sequences, without oneDNN's per-call cost.

    conv = DepthwiseConv1d(channels, kernel, padding=kernel - 1)  # causal: keep the first T
    conv = DepthwiseConv1d(channels, kernel, padding=kernel // 2) # centred, odd kernel
    y = conv(x)            # x (B, C, T) -> (B, C, T): the first T outputs of nn.Conv1d's

Why: oneDNN's depthwise convolution took 2-3 ms per forward + backward on one
CPU thread at B=64, C=64-256, T=20 (more than the block's matmuls) for well
under a MFLOP. Three paths compute the same map:
- CPU float32 with a C compiler: `depthwise_conv.c`, channels last. The encoders
  hold sequences as (B, T, C) and pass `x.transpose(1, 2)`, which the kernel reads
  in place; its output is a (B, T, C) tensor seen as (B, C, T), so the caller's
  transpose back is free too. (The Toeplitz bmm below, given such a transposed
  view, fell into per-channel copies: 5-6 ms for the two at B=64, C=128.)
- otherwise, up to TOEPLITZ_MAX_STEPS steps: a (T x T) Toeplitz matrix per channel
  and one batched matmul (one launch on a GPU instead of oneDNN/cuDNN's grouped conv);
- beyond that (where T^2 outgrows T * kernel) nn.Conv1d's own kernel.
It is an nn.Conv1d subclass, so parameters, their initialisation and state-dict
keys are nn.Conv1d's; only the order of the sums differs (~1e-7).
"""

from __future__ import annotations

import ctypes

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from . import native

TOEPLITZ_MAX_STEPS = 64


def _kernel() -> ctypes.CDLL | None:
    return native.kernel("depthwise_conv", conv_forward=(4, 7), conv_backward=(7, 7))


class ChannelsLastDepthwise(torch.autograd.Function):
    """x (B, T, C) -> y (B, T, C) through depthwise_conv.c, then SiLU if `silu`; weight is
    nn.Conv1d's (C, 1, K)."""

    @staticmethod
    def forward(ctx, x, weight, bias, left: int, silu: bool):
        stride = native.row_stride(x)
        if stride is None:
            x = x.contiguous()
            stride = x.shape[-1]
        taps = weight[:, 0, :].t().contiguous()  # (K, C): one contiguous row per tap
        bias = None if bias is None else bias.contiguous()
        y = x.new_empty(x.shape)
        sizes = (*x.shape, taps.shape[0], left, stride, int(silu))
        _kernel().conv_forward(*native.pointers(x, taps, bias, y), *sizes)
        ctx.save_for_backward(x, taps, bias)
        ctx.sizes = sizes
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        x, taps, bias = ctx.saved_tensors
        gy = gy.contiguous()
        gx, g_taps = x.new_zeros(x.shape), torch.zeros_like(taps)
        g_bias = None if bias is None else torch.zeros_like(bias)
        tensors = native.pointers(x, taps, bias, gy, gx, g_taps, g_bias)
        _kernel().conv_backward(*tensors, *ctx.sizes)
        return gx, g_taps.t().unsqueeze(1), g_bias, None, None


class DepthwiseConv1d(nn.Conv1d):
    def __init__(self, channels: int, kernel: int, padding: int):
        super().__init__(channels, channels, kernel, groups=channels, padding=padding)

    def forward(self, x: torch.Tensor, silu: bool = False) -> torch.Tensor:
        """x (B, C, T) -> (B, C, T); silu: SiLU of the output (in the kernel's pass)."""
        kernel, left = self.kernel_size[0], self.padding[0]
        if native.cpu_float32(x, self.weight) and _kernel() is not None:
            y = ChannelsLastDepthwise.apply(x.transpose(1, 2), self.weight, self.bias, left, silu)
            return y.transpose(1, 2)
        y = self._conv(x, kernel, left)
        return F.silu(y) if silu else y

    def _conv(self, x: torch.Tensor, kernel: int, left: int) -> torch.Tensor:
        steps = x.shape[-1]
        if steps > TOEPLITZ_MAX_STEPS:
            return super().forward(x)[..., :steps]
        # out[t] = sum_k w[k] x[t - left + k]: input step s feeds output t with tap s - t + left.
        t = torch.arange(steps, device=x.device)
        tap = t.unsqueeze(0) - t.unsqueeze(1) + left  # (t, s)
        inside = (tap >= 0) & (tap < kernel)
        toeplitz = self.weight[:, 0, tap.clamp(0, kernel - 1)] * inside  # (C, T_out, T_in)
        y = torch.einsum("bcs,cts->bct", x, toeplitz)
        return y if self.bias is None else y + self.bias.unsqueeze(-1)


def native_depthwise(conv: DepthwiseConv1d, x: torch.Tensor) -> torch.Tensor:
    """The same layer through nn.Conv1d's kernel (for tests and benchmarks)."""
    return F.conv1d(x, conv.weight, conv.bias, padding=conv.padding, groups=conv.groups)[
        ..., : x.shape[-1]
    ]
