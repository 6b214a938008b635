"""The clip classifier: input projection -> temporal encoder -> pooling -> binary head.

    model = ClipClassifier(input_dim=1024, encoder="zipformer", pooling="attention",
                           width=256, depth=2, dropout=0.1)
    logits = model(features, lengths)   # features (B, T, D) as stored, lengths (B,)

Feature stores pad at the START of a window (the window ends at the alert).
The classifier moves each clip's valid steps to the front before anything
else, so every encoder sees valid steps as a prefix starting at t = 0: forward
scans, convolutions and downsampling windows then start at the same place
whatever the padding, and one code path serves training and evaluation (the
paper's fourth bug was an evaluation padding mismatch).
"""

from __future__ import annotations

import torch
from torch import nn

from .bimamba import BiMambaEncoder
from .dropout import Dropout
from .hybrid import HybridEncoder
from .pooling import POOLINGS, Pooling
from .retnet import RetNetEncoder
from .xlstm import XLSTMEncoder
from .zipformer import ZipformerEncoder

ENCODERS = {
    "zipformer": ZipformerEncoder,
    "retnet": RetNetEncoder,
    "bimamba": BiMambaEncoder,
    "hybrid": HybridEncoder,
    "xlstm": XLSTMEncoder,
}


def left_to_right(x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move the last `lengths[b]` steps of row b to its front; zero the rest.
    Returns the moved tensor and the mask (True = valid, a prefix)."""
    steps = x.shape[1]
    shortest, longest = torch.aminmax(lengths)
    if shortest < 1 or longest > steps:
        raise ValueError(f"lengths must be in [1, {steps}], got {lengths.tolist()}")
    t = torch.arange(steps, device=x.device)
    mask = t.unsqueeze(0) < lengths.unsqueeze(1)
    if shortest == steps:
        return x, mask  # no padding: nothing moves (the gather was 2-3 % of a step)
    source = (t.unsqueeze(0) + (steps - lengths).unsqueeze(1)).clamp(max=steps - 1)
    moved = x.gather(1, source.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    return moved * mask.unsqueeze(-1), mask


class ClipClassifier(nn.Module):
    def __init__(
        self, input_dim: int, encoder: str, pooling: str, width: int, depth: int, dropout: float
    ):
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {encoder!r}; expected one of {list(ENCODERS)}")
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; expected one of {list(POOLINGS)}")
        # Frozen-backbone features differ in scale between backbones: normalise first.
        self.project = nn.Sequential(
            nn.LayerNorm(input_dim), nn.Linear(input_dim, width), Dropout(dropout)
        )
        self.encoder = ENCODERS[encoder](width, depth, dropout)
        self.pool = Pooling(pooling, width)
        self.head = nn.Sequential(Dropout(dropout), nn.Linear(width, 1))

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x, mask = left_to_right(features, lengths)
        h = self.encoder(self.project(x), mask)
        return self.head(self.pool(h, mask)).squeeze(-1)
