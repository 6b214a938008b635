"""Dropout whose CPU masks cost a fraction of torch's, with the same semantics.

    drop = Dropout(0.1)      # drop-in for nn.Dropout in every encoder and the classifier
    y = drop(x)              # training: zero each element with probability p, scale by 1/(1-p)

Why: on a CPU, `nn.Dropout` draws its mask with `bernoulli_`, which costs about
10 ns per element on one thread, more than the matmuls of a width-64 model:
in a one-thread step profile it was 14-40 % of a training step. Here a CPU
mask is written in one pass by a C kernel (`models/dropout.c`, built by
`models/native.py`) from a counter-based generator (`models/dropout.h`,
which the fused FFN kernel `models/act_dropout.c` shares): splitmix64 of the
module's seed and draw count, each 64-bit draw giving four 16-bit ones. An
element is kept when its draw is >= round(p * 65536), so p is applied to
within 1/65536, and the kept elements are scaled by exactly 1 / (1 - p), as
torch does. Without a C compiler (or with EXPSEARCH_NATIVE=0) NumPy computes
the same masks, bit for bit, more slowly. The output is x times that float
mask: autograd saves the mask and the backward is a single multiply.

On other devices (CUDA) the mask is `bernoulli_` with the module's own
torch.Generator on that device, not the global one that `F.dropout` draws
from: configs trained side by side in one process (training.concurrent)
then draw exactly the masks they would draw alone, as they do on the CPU.

Determinism: each module's seed is a draw from torch's global generator at
construction, so `torch.manual_seed(s)` before building a model fixes its
weights and every mask, as it did with `nn.Dropout`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import native

LEVELS = 65536  # resolution of p: draws are 16-bit
GOLDEN, MIX_1, MIX_2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _kernel():
    return native.kernel("dropout", dropout_mask=(2, 4))


def numpy_mask(n: int, seed: int, first: int, threshold: int, scale: float) -> np.ndarray:
    """The C kernel's mask with NumPy (uint64 arithmetic wraps as C's does)."""
    groups = np.arange(first + 1, first + 1 + (n + 3) // 4, dtype=np.uint64)
    z = np.uint64(seed) + groups * np.uint64(GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX_1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX_2)
    z ^= z >> np.uint64(31)
    draws = (z[:, None] >> np.arange(0, 64, 16, dtype=np.uint64)) & np.uint64(0xFFFF)
    keep = draws.reshape(-1)[:n] >= threshold
    return np.where(keep, np.float32(scale), np.float32(0.0))


class Dropout(nn.Module):
    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = float(p)
        self.threshold = round(self.p * LEVELS)
        self.scale = torch.tensor([1.0 / (1.0 - self.p)] if self.p < 1 else [0.0])
        self.seed = int(torch.randint(0, 2**62, ()))
        self.draws = 0  # 64-bit draws used on the CPU so far
        self.generators: dict[torch.device, torch.Generator] = {}  # per device, made on first use

    def reserve(self, n: int) -> int:
        """Take the draws of an n-element mask from this module's CPU stream: returns the
        first draw's index, for a kernel that makes the mask itself (`cpu_mask`, and
        `act_dropout.act_dropout`, which makes it again in its backward)."""
        first = self.draws
        self.draws += (n + 3) // 4
        return first

    def cpu_mask(self, shape: torch.Size) -> torch.Tensor:
        """The next float32 mask (0 or 1/(1-p) per element) of this module's CPU stream."""
        n = shape.numel()
        lib = _kernel()
        first = self.reserve(n)
        if lib is None:
            mask = torch.from_numpy(numpy_mask(n, self.seed, first, self.threshold,
                                               float(self.scale)))  # fmt: skip
        else:
            mask = torch.empty(n)
            lib.dropout_mask(*native.pointers(mask, self.scale), n, self.seed, first,
                             self.threshold)  # fmt: skip
        return mask.view(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return F.dropout(x, self.p, training=True)
        if x.device.type != "cpu":
            if x.device not in self.generators:
                generator = torch.Generator(device=x.device).manual_seed(self.seed)
                self.generators[x.device] = generator
            keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generators[x.device])
            return x * keep.mul_(1.0 / (1.0 - self.p))
        return x * self.cpu_mask(x.shape).to(x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p}"
