"""Pooling of encoder outputs into one clip vector, honouring the padding mask.

    pool = Pooling("attention", width)
    z = pool(h, mask)      # h (B, T, width), mask (B, T) True = valid -> (B, width)

attention: z = sum_t softmax(q^T W_K h_t / sqrt(d)) h_t with a learned query q
(paper Appendix D.5); mean and max over the valid steps; last: the last valid
step (valid steps are a prefix, so index length - 1: the step nearest the
alert). Padded steps never contribute.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .padding import fill_padded, skip_padding

POOLINGS = ("attention", "mean", "last", "max")


class Pooling(nn.Module):
    def __init__(self, kind: str, width: int):
        super().__init__()
        if kind not in POOLINGS:
            raise ValueError(f"unknown pooling {kind!r}; expected one of {list(POOLINGS)}")
        self.kind = kind
        if kind == "attention":
            self.query = nn.Parameter(torch.randn(width) / math.sqrt(width))
            self.key = nn.Linear(width, width, bias=False)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        valid = mask.unsqueeze(-1)
        if self.kind == "mean":
            if skip_padding(h, ~mask):
                return h.sum(1) / h.shape[1]
            return (h * valid).sum(1) / valid.sum(1).clamp(min=1)
        if self.kind == "max":
            return fill_padded(h, ~valid, float("-inf")).amax(1)
        if self.kind == "last":
            last = mask.sum(1) - 1
            return h[torch.arange(h.shape[0], device=h.device), last]
        scores = self.key(h) @ self.query / math.sqrt(h.shape[-1])
        weights = fill_padded(scores, ~mask, float("-inf")).softmax(dim=1)
        return (weights.unsqueeze(-1) * h).sum(1)
