"""The trainer's settings that are not points of the space (params.yaml `training`).

    settings = TrainSettings(seed=0, device="cpu")
    device = settings.torch_device()
    with settings.autocast(device): ...

Kept apart from the trainer, and torch imported only when a method needs it,
so that building settings (a proposal job, a params check) does not load torch.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass


@dataclass(frozen=True)
class TrainSettings:
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU | fp32 | bf16
    warmup_fraction: float = 0.05
    grad_clip_norm: float | None = 1.0
    eval_batch_size: int = 512
    horizons_s: tuple[float, ...] = (0.5, 1.0, 1.5)

    def torch_device(self):
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def autocast(self, device):
        import torch

        bf16 = self.precision == "bf16" or (self.precision == "auto" and device.type == "cuda")
        if not bf16:
            return nullcontext()
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
