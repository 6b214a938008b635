"""Train one config of the space on a task; pick the epoch by validation AP.

    settings = TrainSettings(seed=0, device="cpu")
    fit = fit_config(config, task, settings)          # never reads test
    val = fit.val                                      # Evaluation at the chosen epoch
    test = evaluate(fit.model, task.split("test", unseal=True), fit.seq_len, settings)

Every key of the config is read through a recorder; a key that building the
model, loss, optimiser, sampler and augmentation did not read stops the run
before any training (a silently ignored knob is what cost the paper 8,975
experiments). A non-finite training loss stops the run with error class
`nan` at the end of the epoch where it appeared (checking once per epoch
keeps the GPU free of per-step synchronisation).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..data.sources import DataError
from ..models.classifier import ClipClassifier
from ..space import ConfigError
from .batches import EpochSampler, augment
from .data import SplitData, Task, window
from .losses import make_loss
from .metrics import average_precision, mean_over_horizons, roc_auc
from .optim import make_optimizer


@dataclass(frozen=True)
class TrainSettings:
    """Settings of the trainer that are not points of the space (params.yaml `training`)."""

    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU | fp32 | bf16
    warmup_fraction: float = 0.05
    grad_clip_norm: float | None = 1.0
    eval_batch_size: int = 512
    horizons_s: tuple[float, ...] = (0.5, 1.0, 1.5)

    @classmethod
    def from_params(cls, training: Mapping[str, Any], **overrides: Any) -> TrainSettings:
        values = {**training, **overrides}
        values["horizons_s"] = tuple(float(h) for h in values.get("horizons_s", cls.horizons_s))
        return cls(**values)

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def autocast(self, device: torch.device):
        bf16 = self.precision == "bf16" or (self.precision == "auto" and device.type == "cuda")
        if not bf16:
            return nullcontext()
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


class TrainingFailure(RuntimeError):
    """A run that could not finish; `error_class` is one of nan, oom, data, config, crash."""

    def __init__(self, error_class: str, message: str):
        self.error_class = error_class
        super().__init__(message)


class RecordedConfig(Mapping[str, Any]):
    """A read-only view of a config that remembers which keys were read."""

    def __init__(self, config: Mapping[str, Any]):
        self._config, self.read = dict(config), set()

    def __getitem__(self, key: str) -> Any:
        value = self._config[key]
        self.read.add(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._config)

    def __len__(self) -> int:
        return len(self._config)

    def unread(self) -> list[str]:
        return sorted(set(self._config) - self.read)


@dataclass
class Evaluation:
    ap: float
    auc: float
    clips: int
    positives: int
    horizon_ap: dict[float, float] = field(default_factory=dict)
    horizon_map: float | None = None
    horizon_excluded: dict[float, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ap": _finite_or_none(self.ap),
            "auc": _finite_or_none(self.auc),
            "clips": self.clips,
            "positives": self.positives,
            "horizon_map": _finite_or_none(self.horizon_map),
            "horizon_ap": {f"{h:g}": _finite_or_none(ap) for h, ap in self.horizon_ap.items()},
            "horizon_excluded": {f"{h:g}": n for h, n in self.horizon_excluded.items()},
        }


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass
class FitResult:
    model: ClipClassifier
    seq_len: int
    best_epoch: int  # 1-based
    epochs_run: int
    history: list[dict[str, float]]
    val: Evaluation
    steps: int


@torch.no_grad()
def predict(
    model: ClipClassifier,
    features: torch.Tensor,
    lengths: torch.Tensor,
    seq_len: int,
    settings: TrainSettings,
) -> np.ndarray:
    """Scores (probabilities) of clips; the same forward pass as training."""
    model.eval()
    x, lengths = window(features, lengths, seq_len)
    scores = []
    with settings.autocast(x.device):
        for start in range(0, x.shape[0], settings.eval_batch_size):
            stop = start + settings.eval_batch_size
            scores.append(torch.sigmoid(model(x[start:stop], lengths[start:stop]).float()))
    return torch.cat(scores).cpu().numpy() if scores else np.zeros(0, np.float32)


def evaluate(
    model: ClipClassifier,
    split: SplitData,
    seq_len: int,
    settings: TrainSettings,
    *,
    horizons: bool = True,
) -> Evaluation:
    y = split.targets.cpu().numpy()
    scores = predict(model, split.features, split.lengths, seq_len, settings)
    result = Evaluation(
        ap=average_precision(y, scores),
        auc=roc_auc(y, scores),
        clips=len(split),
        positives=int(y.sum()),
    )
    if horizons and np.isfinite(split.end_to_event_s).any():
        for h in settings.horizons_s:
            x, lengths, targets, excluded = split.horizon_view(h)
            scores_h = predict(model, x, lengths, seq_len, settings)
            result.horizon_ap[h] = average_precision(targets.cpu().numpy(), scores_h)
            result.horizon_excluded[h] = excluded
        result.horizon_map = mean_over_horizons(result.horizon_ap)
    return result


def fit_config(
    config: Mapping[str, Any],
    task: Task,
    settings: TrainSettings,
    *,
    log: Callable[[str], None] | None = None,
) -> FitResult:
    """Train `config` on task.train, choosing the epoch with the best validation AP."""
    c = RecordedConfig(config)
    if c["backbone"] != task.backbone:
        raise DataError(
            f"config backbone {c['backbone']!r} but the task's store is {task.backbone!r}"
        )
    device = task.train.features.device
    torch.manual_seed(settings.seed)
    model = ClipClassifier(
        task.width,
        c["encoder"],
        c["pooling"],
        int(c["width"]),
        int(c["depth"]),
        float(c["dropout"]),
    ).to(device)
    loss_fn, _ = make_loss(c)
    sampler = EpochSampler(
        task.train.targets, float(c["oversample_ratio"]), int(c["batch_size"]), settings.seed
    )
    epochs, seq_len = int(c["epochs"]), int(c["seq_len"])
    optimizer, scheduler = make_optimizer(
        model,
        lr=float(c["learning_rate"]),
        weight_decay=float(c["weight_decay"]),
        schedule=c["scheduler"],
        total_steps=epochs * sampler.steps_per_epoch(),
        warmup_fraction=settings.warmup_fraction,
    )
    mixup_alpha, noise = float(c["mixup_alpha"]), float(c["feature_noise"])
    if c.unread():
        raise ConfigError(
            [(key, "not consumed by training (a silently ignored knob)") for key in c.unread()]
        )
    aug_rng = np.random.default_rng([settings.seed, 2])
    noise_gen = torch.Generator(device=device).manual_seed(settings.seed + 3)

    history, best_ap, best_epoch, best_state, step = [], -math.inf, 0, None, 0
    for epoch in range(1, epochs + 1):
        model.train()
        losses = []
        for indices in sampler.epoch():
            x, lengths, y = task.train.batch(indices, seq_len)
            x, lengths, y = augment(
                x,
                lengths,
                y,
                mixup_alpha=mixup_alpha,
                feature_noise=noise,
                rng=aug_rng,
                generator=noise_gen,
            )
            with settings.autocast(device):
                logits = model(x, lengths)
            loss = loss_fn(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.grad_clip_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip_norm)
            optimizer.step()
            scheduler.step()
            losses.append(loss.detach())
            step += 1
        losses = torch.stack(losses)
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            first = int((~finite).nonzero()[0])
            raise TrainingFailure(
                "nan",
                f"training loss became {losses[first].item()} at epoch {epoch}, batch {first + 1} "
                f"(learning rate {scheduler.get_last_lr()[0]:.3g})",
            )
        val = evaluate(model, task.val, seq_len, settings, horizons=False)
        history.append(
            {
                "epoch": epoch,
                "train_loss": float(losses.mean()),
                "val_ap": _finite_or_none(val.ap),
                "val_auc": _finite_or_none(val.auc),
            }
        )
        if log:
            log(f"epoch {epoch}/{epochs}  loss {float(losses.mean()):.4f}  val AP {val.ap:.4f}")
        # Strictly better only: on ties the earlier (less trained) epoch stays.
        score = val.ap if math.isfinite(val.ap) else -math.inf
        if best_state is None or score > best_ap:
            best_ap, best_epoch = score, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return FitResult(
        model=model,
        seq_len=seq_len,
        best_epoch=best_epoch,
        epochs_run=epochs,
        history=history,
        val=evaluate(model, task.val, seq_len, settings),
        steps=step,
    )
