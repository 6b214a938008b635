"""The backbones' resize, without transformers (the decoding job imports only this):

    x = to_pixels(frames)            # uint8 (B, T, H, W, 3) -> float32 (B*T, 3, H, W) in [0, 1]
    x = squash(x, 224)               # (N, 3, 224, 224): squashed, not cropped; antialiased
    small = squash_uint8(window, 64) # uint8 (T, H, W, 3) -> uint8 (T, 64, 64, 3), rounded

`features.backbones` re-exports all three; `Backbone.encode` uses the first two and
the decoded-frames cache (`features.frames`) stores `squash_uint8`'s frames.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_pixels(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> contiguous float32 (B*T, 3, H, W) in [0, 1]."""
    b, t, h, w, _ = frames.shape
    return frames.permute(0, 1, 4, 2, 3).reshape(b * t, 3, h, w).float() / 255


def squash(x: torch.Tensor, size: int) -> torch.Tensor:
    """float (N, 3, H, W) -> (N, 3, size, size): the backbones' resize (squashed, not
    cropped; antialiased bilinear). Every image is resized on its own, so the result of
    one frame does not depend on the others in the call."""
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def squash_uint8(frames: np.ndarray, size: int, chunk: int = 8) -> np.ndarray:
    """uint8 (T, H, W, 3) -> uint8 (T, size, size, 3): `squash` of the same float pixels
    that `Backbone.encode` computes, rounded to the nearest level (so it differs from
    encode's float resize by at most half a level, 1/510), `chunk` frames at a time (a
    720p float window is ~0.7 GB). Frames already at `size` are returned as they are,
    just as encode leaves them alone."""
    t, h, w, _ = frames.shape
    if (h, w) == (size, size):
        return np.ascontiguousarray(frames)
    out = np.empty((t, size, size, 3), np.uint8)
    with torch.inference_mode():
        for start in range(0, t, chunk):
            x = to_pixels(
                torch.from_numpy(np.ascontiguousarray(frames[start : start + chunk]))[None]
            )
            y = (squash(x, size) * 255).round_().clamp_(0, 255).to(torch.uint8)
            out[start : start + chunk] = y.permute(0, 2, 3, 1).numpy()
    return out
