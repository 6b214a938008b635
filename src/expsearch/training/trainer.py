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
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..data.sources import DataError
from ..memory import keep_freed_memory
from ..models.classifier import ClipClassifier
from ..space import ConfigError
from .batches import EpochSampler, augment
from .data import SplitData, Task, window
from .losses import make_loss
from .metrics import average_precision, mean_over_horizons, roc_auc
from .optim import FlatAdamW, make_optimizer
from .settings import TrainSettings

INIT_LOCK = threading.Lock()  # held while seeding torch and building a model


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
    keep_freed_memory()  # once per process: see expsearch/memory.py
    run = _prepare_run(RecordedConfig(config), task, settings)
    history: list[dict[str, float]] = []
    best = _BestEpoch()
    steps = 0
    for epoch in range(1, run.epochs + 1):
        losses = _train_one_epoch(run, task.train, settings)
        steps += len(losses)
        _stop_if_not_finite(losses, epoch, run.scheduler)
        val = evaluate(run.model, task.val, run.seq_len, settings, horizons=False)
        history.append(
            {
                "epoch": epoch,
                "train_loss": float(losses.mean()),
                "val_ap": _finite_or_none(val.ap),
                "val_auc": _finite_or_none(val.auc),
            }
        )
        if log:
            log(f"epoch {epoch}/{run.epochs}  loss {float(losses.mean()):.4f}  val AP {val.ap:.4f}")
        best.consider(epoch, val.ap, run.model)
    run.model.load_state_dict(best.state)
    return FitResult(
        model=run.model,
        seq_len=run.seq_len,
        best_epoch=best.epoch,
        epochs_run=run.epochs,
        history=history,
        val=evaluate(run.model, task.val, run.seq_len, settings),
        steps=steps,
    )


@dataclass
class _Run:
    """Everything one training run is made of, built from the config."""

    model: ClipClassifier
    device: torch.device
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    sampler: EpochSampler
    optimizer: FlatAdamW
    scheduler: Any
    epochs: int
    seq_len: int
    mixup_alpha: float
    feature_noise: float
    aug_rng: np.random.Generator  # mixup draws
    noise_gen: torch.Generator  # feature noise, on the device of the features


def _prepare_run(c: RecordedConfig, task: Task, settings: TrainSettings) -> _Run:
    """Model, loss, sampler, optimiser and augmentation of config `c`. Refuses a
    config with a key none of them read: a knob that would be silently ignored."""
    if c["backbone"] != task.backbone:
        raise DataError(
            f"config backbone {c['backbone']!r} but the task's store is {task.backbone!r}"
        )
    device = task.train.features.device
    # Seeding and building under one lock: configs trained side by side in
    # threads (training.concurrent) share torch's global generator.
    with INIT_LOCK:
        torch.manual_seed(settings.seed)  # the model's initial weights and dropout seeds
        model = ClipClassifier(
            task.width,
            c["encoder"],
            c["pooling"],
            int(c["width"]),
            int(c["depth"]),
            float(c["dropout"]),
        )
    model = model.to(device)
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
    return _Run(
        model=model,
        device=device,
        loss_fn=loss_fn,
        sampler=sampler,
        optimizer=optimizer,
        scheduler=scheduler,
        epochs=epochs,
        seq_len=seq_len,
        mixup_alpha=mixup_alpha,
        feature_noise=noise,
        aug_rng=np.random.default_rng([settings.seed, 2]),
        noise_gen=torch.Generator(device=device).manual_seed(settings.seed + 3),
    )


def _train_one_epoch(run: _Run, train: SplitData, settings: TrainSettings) -> torch.Tensor:
    """One pass of the sampler's batches; the loss of every batch, still on the device."""
    run.model.train()
    losses = []
    for indices in run.sampler.epoch():
        x, lengths, y = train.batch(indices, run.seq_len)
        x, lengths, y = augment(
            x,
            lengths,
            y,
            mixup_alpha=run.mixup_alpha,
            feature_noise=run.feature_noise,
            rng=run.aug_rng,
            generator=run.noise_gen,
        )
        with settings.autocast(run.device):
            logits = run.model(x, lengths)
        loss = run.loss_fn(logits.float(), y)
        run.optimizer.zero_grad()  # FlatAdamW: zeroed in place, the views stay
        loss.backward()
        if settings.grad_clip_norm:
            run.optimizer.clip_grad_norm(settings.grad_clip_norm)
        run.optimizer.step()
        run.scheduler.step()
        # Kept on the device: reading each loss back would synchronise every step.
        losses.append(loss.detach())
    return torch.stack(losses)


def _stop_if_not_finite(losses: torch.Tensor, epoch: int, scheduler) -> None:
    finite = torch.isfinite(losses)
    if not bool(finite.all()):
        first = int((~finite).nonzero()[0])
        raise TrainingFailure(
            "nan",
            f"training loss became {losses[first].item()} at epoch {epoch}, batch {first + 1} "
            f"(learning rate {scheduler.get_last_lr()[0]:.3g})",
        )


class _BestEpoch:
    """The epoch with the best validation AP so far, and a copy of its weights."""

    def __init__(self) -> None:
        self.ap, self.epoch, self.state = -math.inf, 0, None

    def consider(self, epoch: int, ap: float, model: torch.nn.Module) -> None:
        score = ap if math.isfinite(ap) else -math.inf
        # Strictly better only: on ties the earlier (less trained) epoch stays.
        if self.state is None or score > self.ap:
            self.ap, self.epoch = score, epoch
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
