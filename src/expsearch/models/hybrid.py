"""Hybrid Retention-Mamba temporal encoder (paper Appendix D.4).

    encoder = HybridEncoder(width=256, depth=2, dropout=0.1)
    h = encoder(x, mask)      # (B, T, width), mask (B, T) True = valid prefix

Layer 2k is a retention block (quadratic, distance-weighted), layer 2k+1 a
bidirectional Mamba block (linear, sequential state). Departure from a plain
layer count: `depth` counts (retention, Mamba) pairs, so even depth 1 has
both kinds of layer and differs from RetNet depth 1. Both blocks use the open-gate init
of their output gates (retnet.py explains it).
"""

from __future__ import annotations

import torch
from torch import nn

from .bimamba import BiMambaBlock
from .retnet import RetentionBlock


class HybridEncoder(nn.Module):
    def __init__(self, width: int, depth: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList()
        for _ in range(depth):
            self.layers.append(RetentionBlock(width, dropout))
            self.layers.append(BiMambaBlock(width, dropout))
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)
