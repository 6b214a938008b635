"""The loss dimension of the space: focal, BCE, label smoothing, on logits.

    loss_fn = make_loss({"loss": "focal", "focal_gamma": 3.0, "focal_alpha": 0.25})
    loss = loss_fn(logits, targets)          # targets in [0, 1] (mixup makes them soft)

Focal loss (paper Appendix D.6): FL = -alpha_y (1 - p_y)^gamma log(p_y), with
alpha_1 = alpha and alpha_0 = 1 - alpha; written for soft targets t as
t * FL(y=1) + (1 - t) * FL(y=0), which is the usual form at t in {0, 1}.
Label smoothing moves targets to t (1 - eps) + eps / 2 before BCE.
`make_loss` reads exactly the keys its loss uses and returns them, so the
trainer can prove that every config key was consumed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LOSSES = ("focal", "bce", "label_smoothing")


def focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float, alpha: float
) -> torch.Tensor:
    log_p = F.logsigmoid(logits)  # log p(y=1), stable for large |logits|
    log_q = F.logsigmoid(-logits)  # log p(y=0)
    positive = -alpha * (1 - log_p.exp()) ** gamma * log_p
    negative = -(1 - alpha) * (1 - log_q.exp()) ** gamma * log_q
    return (targets * positive + (1 - targets) * negative).mean()


def bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, targets)


def smoothed_bce_loss(logits: torch.Tensor, targets: torch.Tensor, epsilon: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, targets * (1 - epsilon) + epsilon / 2)


def make_loss(config: Mapping[str, Any]) -> tuple[LossFn, set[str]]:
    """The loss of a config, and the set of config keys it consumed."""
    kind = config["loss"]
    if kind == "focal":
        gamma, alpha = float(config["focal_gamma"]), float(config["focal_alpha"])
        return (lambda z, t: focal_loss(z, t, gamma, alpha)), {"loss", "focal_gamma", "focal_alpha"}
    if kind == "bce":
        return bce_loss, {"loss"}
    if kind == "label_smoothing":
        epsilon = float(config["smoothing_epsilon"])
        return (lambda z, t: smoothed_bce_loss(z, t, epsilon)), {"loss", "smoothing_epsilon"}
    raise ValueError(f"unknown loss {kind!r}; expected one of {list(LOSSES)}")
