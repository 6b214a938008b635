"""Depthwise 1-D convolution over short sequences as one batched matmul.

    conv = DepthwiseConv1d(channels, kernel, padding=kernel - 1)  # causal: keep the first T
    conv = DepthwiseConv1d(channels, kernel, padding=kernel // 2) # centred, odd kernel
    y = conv(x)            # x (B, C, T) -> (B, C, T): the first T outputs of nn.Conv1d's

Why: oneDNN's depthwise convolution took 2-3 ms per forward + backward on one
CPU thread at B=64, C=64-256, T=20 (more than the block's matmuls), while the
same map as a (T x T) Toeplitz matrix per channel is a bmm of a few hundred
microseconds. Sequences here are T <= 30 feature steps; beyond TOEPLITZ_MAX_STEPS
(where T^2 outgrows T * kernel) the native convolution is used. It is an
nn.Conv1d subclass, so parameters, their initialisation and state-dict keys are
nn.Conv1d's; only the arithmetic differs (sums in another order: ~1e-7).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TOEPLITZ_MAX_STEPS = 64


class DepthwiseConv1d(nn.Conv1d):
    def __init__(self, channels: int, kernel: int, padding: int):
        super().__init__(channels, channels, kernel, groups=channels, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = x.shape[-1]
        if steps > TOEPLITZ_MAX_STEPS:
            return super().forward(x)[..., :steps]
        kernel, left = self.kernel_size[0], self.padding[0]
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
