"""Filling padded steps, skipped on the CPU when no step is padded:

    x = fill_padded(x, ~mask.unsqueeze(-1), 0.0)   # mask: bool (B, T), True = valid
    if not skip_padding(x, lengths < steps): ...   # other padding work, same rule

The embedded default's clips are never padded, and a `masked_fill` and its
backward are two passes over an activation that change nothing then (2-5 per
step, a few percent of a CPU step at width 64). On CUDA the fill always runs:
checking the mask would stall the device on every call.
"""

from __future__ import annotations

import torch


def skip_padding(x: torch.Tensor, padded: torch.Tensor) -> bool:
    """True when work on `x`'s padding can be skipped: `x` is on the CPU and no
    element of `padded` (bool, True = padded) is set."""
    return x.device.type == "cpu" and not bool(padded.any())


def fill_padded(x: torch.Tensor, padded: torch.Tensor, value: float) -> torch.Tensor:
    """`x.masked_fill(padded, value)`, or `x` itself when `skip_padding`."""
    return x if skip_padding(x, padded) else x.masked_fill(padded, value)
