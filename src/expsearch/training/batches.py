"""What one training epoch feeds the model: oversampled batches, mixup, feature noise.

    sampler = EpochSampler(train.targets, oversample_ratio=3.0, batch_size=64, seed=0)
    for indices in sampler.epoch():                 # index tensors on the data's device
        x, lengths, y = train.batch(indices, seq_len)
        x, lengths, y = augment(x, lengths, y, mixup_alpha=0.2, feature_noise=0.05, rng=rng)

Oversampling: every negative is drawn once per epoch and every positive
`ratio` times; a fractional part r draws each positive once more with
probability r, so the expected count is exactly `ratio`. The epoch is then
shuffled and cut into batches (the last one may be smaller).
Mixup (Zhang et al. 2018) blends each clip with another of the batch,
lambda ~ Beta(alpha, alpha) once per batch; windows are aligned at their end
(the alert), so a blend is valid where either clip is, and targets blend with
the same lambda. Feature noise adds N(0, sigma^2) to valid steps of the
standardised features. Both act on training batches only.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..models.padding import skip_padding


class EpochSampler:
    def __init__(self, targets: torch.Tensor, oversample_ratio: float, batch_size: int, seed: int):
        if oversample_ratio < 1:
            raise ValueError(f"oversample_ratio must be >= 1, not {oversample_ratio}")
        self.labels = targets.detach().cpu().numpy() > 0.5
        self.ratio = float(oversample_ratio)
        self.batch_size = int(batch_size)
        self.device = targets.device
        self.rng = np.random.default_rng([seed, 1])

    def draws(self) -> np.ndarray:
        """Row indices of one epoch, before shuffling."""
        positives = np.flatnonzero(self.labels)
        whole, fraction = divmod(self.ratio, 1.0)
        extra = positives[self.rng.random(positives.size) < fraction]
        return np.concatenate(
            [np.flatnonzero(~self.labels), np.repeat(positives, int(whole)), extra]
        )

    def steps_per_epoch(self) -> int:
        """Batches per epoch (expected; the fractional oversampling varies it by a little)."""
        expected = (~self.labels).sum() + self.ratio * self.labels.sum()
        return max(1, int(np.ceil(expected / self.batch_size)))

    def epoch(self) -> Iterator[torch.Tensor]:
        order = torch.as_tensor(self.rng.permutation(self.draws()), device=self.device)
        yield from order.split(self.batch_size)


def augment(
    x: torch.Tensor,
    lengths: torch.Tensor,
    y: torch.Tensor,
    *,
    mixup_alpha: float,
    feature_noise: float,
    rng: np.random.Generator,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    steps = x.shape[1]
    if mixup_alpha > 0 and x.shape[0] > 1:
        lam = float(rng.beta(mixup_alpha, mixup_alpha))
        partner = torch.as_tensor(rng.permutation(x.shape[0]), device=x.device)
        x = lam * x + (1 - lam) * x[partner]
        y = lam * y + (1 - lam) * y[partner]
        lengths = torch.maximum(lengths, lengths[partner])
    if feature_noise > 0:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        noise.mul_(feature_noise)
        # Only valid steps get noise; an unpadded batch on the CPU (the embedded
        # clips never are padded) skips the mask, a pass that multiplies by ones.
        if not skip_padding(x, lengths < steps):
            valid = torch.arange(steps, device=x.device).unsqueeze(0) >= (
                steps - lengths
            ).unsqueeze(1)
            noise.mul_(valid.unsqueeze(-1))
        x = x + noise
    return x, lengths, y
