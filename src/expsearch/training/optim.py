"""AdamW with a warm-up then the config's schedule (cosine, linear or step).

    optimizer, scheduler = make_optimizer(model, lr=3e-4, weight_decay=0.01,
                                          schedule="cosine", total_steps=600, warmup_fraction=0.05)
    ...; optimizer.step(); scheduler.step()      # once per batch

The learning rate rises linearly over the first warmup_fraction of the steps
(at least one), then follows the schedule over the rest, as a fraction p in
[0, 1] of the post-warm-up steps: cosine 0.5 (1 + cos(pi p)), linear 1 - p,
step 0.1 ** (milestones passed) with milestones at p = 0.5 and 0.75.
Weight decay (decoupled, as AdamW) applies to matrices only; biases and
normalisation gains are not decayed. The optimiser is torch's fused AdamW
(one kernel per parameter group, on CPU and CUDA): on a CPU the default
per-tensor loop cost a third of a width-64 RetNet's training step.

Each group is one flat parameter: the model's parameters become views of it
(data and gradient), so the optimiser step, the gradient clip
(`clip_grad_norm`) and zeroing touch two tensors, not a few dozen; at width 64
their per-tensor bookkeeping was a few percent of a step. `zero_grad` zeroes
the gradients in place (the views must stay), and `step` refuses gradients
that are no longer the views (a `model.zero_grad(set_to_none=True)` in
between would otherwise leave every update silently zero).
"""

from __future__ import annotations

import math

import torch
from torch import nn

SCHEDULES = ("cosine", "linear", "step")
STEP_MILESTONES = (0.5, 0.75)


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """The multiplier of the peak learning rate at optimiser step `step` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    p = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * p))
    if schedule == "linear":
        return 1.0 - p
    if schedule == "step":
        return 0.1 ** sum(p >= m for m in STEP_MILESTONES)
    raise ValueError(f"unknown scheduler {schedule!r}; expected one of {list(SCHEDULES)}")


def flatten(params: list[nn.Parameter]) -> nn.Parameter:
    """One parameter holding `params` side by side, each of them (and its gradient)
    now a view of it; values and autograd are unchanged."""
    flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
    flat.grad = torch.zeros_like(flat)
    offset = 0
    for p in params:
        size = p.numel()
        p.data = flat.data[offset : offset + size].view_as(p)
        p.grad = flat.grad[offset : offset + size].view_as(p)
        offset += size
    return flat


class FlatAdamW(torch.optim.AdamW):
    """Fused AdamW over groups of flat parameters (`flatten`); see the module docstring."""

    def __init__(self, groups: list[dict], lr: float):
        self.views = [p for group in groups for p in group["params"]]
        flat_groups = [
            {**group, "params": [flatten(group["params"])]} for group in groups if group["params"]
        ]
        self.grad_views = [p.grad for p in self.views]
        super().__init__(flat_groups, lr=lr, fused=True)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for flat in group["params"]:
                flat.grad.zero_()

    @torch.no_grad()
    def step(self, closure=None):
        if any(p.grad is not view for p, view in zip(self.views, self.grad_views, strict=True)):
            raise RuntimeError(
                "a parameter's gradient was replaced (set to None or assigned): FlatAdamW "
                "reads the gradients from its flat buffers; zero them with its zero_grad"
            )
        return super().step(closure)

    def clip_grad_norm(self, max_norm: float) -> torch.Tensor:
        """torch.nn.utils.clip_grad_norm_ over every parameter, on the flat gradients."""
        flats = [flat for group in self.param_groups for flat in group["params"]]
        return torch.nn.utils.clip_grad_norm_(flats, max_norm)


def make_optimizer(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    schedule: str,
    total_steps: int,
    warmup_fraction: float,
) -> tuple[FlatAdamW, torch.optim.lr_scheduler.LambdaLR]:
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown scheduler {schedule!r}; expected one of {list(SCHEDULES)}")
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    optimizer = FlatAdamW(groups, lr=lr)
    warmup = max(1, round(warmup_fraction * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup, schedule)
    )
    return optimizer, scheduler
