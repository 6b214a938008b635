"""AdamW with a warm-up then the config's schedule (cosine, linear or step).

    optimizer, scheduler = make_optimizer(model, lr=3e-4, weight_decay=0.01,
                                          schedule="cosine", total_steps=600, warmup_fraction=0.05)
    ...; optimizer.step(); scheduler.step()      # once per batch

The learning rate rises linearly over the first warmup_fraction of the steps
(at least one), then follows the schedule over the rest, as a fraction p in
[0, 1] of the post-warm-up steps: cosine 0.5 (1 + cos(pi p)), linear 1 - p,
step 0.1 ** (milestones passed) with milestones at p = 0.5 and 0.75.
Weight decay (decoupled, as AdamW) applies to matrices only; biases and
normalisation gains are not decayed. The update is torch's fused AdamW
kernel (one call per parameter group, on CPU and CUDA; on a CPU the default
per-tensor loop cost a third of a width-64 RetNet's training step), called
without torch.optim.Optimizer: that base class imports torch._dynamo on first
use, 1.7 s of every training job's start, and its per-step hooks cost more
than the update of two tensors. `Schedule` sets the rates as LambdaLR would.

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
from collections.abc import Callable

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


class FlatAdamW:
    """Fused AdamW over groups of flat parameters (`flatten`); see the module docstring.

    `param_groups` is a list of dicts as torch's optimisers keep it (params, lr,
    weight_decay), so a schedule or a test reads and sets the rate the same way."""

    def __init__(
        self,
        groups: list[dict],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        self.views = [p for group in groups for p in group["params"]]
        self.param_groups = [
            {**group, "params": [flatten(group["params"])], "lr": lr}
            for group in groups
            if group["params"]
        ]
        self.grad_views = [p.grad for p in self.views]
        self.betas, self.eps = betas, eps
        flats = [group["params"][0] for group in self.param_groups]
        # Adam's moments and step count per flat parameter; the count is a float32
        # tensor on the parameter's device, the form the fused kernel takes.
        self.state = [
            {
                "exp_avg": torch.zeros_like(flat),
                "exp_avg_sq": torch.zeros_like(flat),
                "step": torch.zeros((), dtype=torch.float32, device=flat.device),
            }
            for flat in flats
        ]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the flat gradients in place (`set_to_none` is ignored: the views must stay)."""
        for group in self.param_groups:
            group["params"][0].grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        if any(p.grad is not view for p, view in zip(self.views, self.grad_views, strict=True)):
            raise RuntimeError(
                "a parameter's gradient was replaced (set to None or assigned): FlatAdamW "
                "reads the gradients from its flat buffers; zero them with its zero_grad"
            )
        beta1, beta2 = self.betas
        for group, state in zip(self.param_groups, self.state, strict=True):
            flat = group["params"][0]
            state["step"].add_(1)
            # The kernel torch.optim.AdamW(fused=True) calls (module docstring: why directly).
            torch._fused_adamw_(
                [flat], [flat.grad], [state["exp_avg"]], [state["exp_avg_sq"]], [],
                [state["step"]], lr=group["lr"], beta1=beta1, beta2=beta2,
                weight_decay=group["weight_decay"], eps=self.eps, amsgrad=False,
                maximize=False, grad_scale=None, found_inf=None,
            )  # fmt: skip

    @torch.no_grad()
    def clip_grad_norm(self, max_norm: float) -> torch.Tensor:
        """Scale the gradients to a global 2-norm of at most `max_norm` (as
        torch.nn.utils.clip_grad_norm_ over every parameter); returns the norm before."""
        grads = [group["params"][0].grad for group in self.param_groups]
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))
        return total


class Schedule:
    """The learning rate of every group set to its peak rate times `factor(step)`:
    `factor(0)` from the start, `factor(n)` after n calls of `step` (as LambdaLR)."""

    def __init__(self, optimizer: FlatAdamW, factor: Callable[[int], float]):
        self.optimizer, self.factor, self.steps = optimizer, factor, 0
        self.peaks = [group["lr"] for group in optimizer.param_groups]
        self._apply()

    def step(self) -> None:
        self.steps += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def _apply(self) -> None:
        factor = self.factor(self.steps)
        for group, peak in zip(self.optimizer.param_groups, self.peaks, strict=True):
            group["lr"] = peak * factor


def make_optimizer(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    schedule: str,
    total_steps: int,
    warmup_fraction: float,
) -> tuple[FlatAdamW, Schedule]:
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown scheduler {schedule!r}; expected one of {list(SCHEDULES)}")
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    optimizer = FlatAdamW(groups, lr=lr)
    warmup = max(1, round(warmup_fraction * total_steps))
    scheduler = Schedule(optimizer, lambda step: lr_factor(step, total_steps, warmup, schedule))
    return optimizer, scheduler
