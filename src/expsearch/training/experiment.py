"""One experiment from config to `metrics.json`, with failures classified.

    tasks = TaskCache({"vjepa2": "results/features/vjepa2/index.json", ...},
                      "results/split/manifest.json", "results/split/clips.csv",
                      device=settings.torch_device())
    metrics = run_experiment(raw_config, space, tasks, settings, out_dir="runs/abc")
    # out_dir/metrics.json (atomic); on failure also out_dir/trace.txt
    results = run_experiments([(config, out_dir), ...], space, tasks, settings)
    # streams=4: four at once on the device, one thread and CUDA stream each

The config is validated against the space, trained with validation-only
model selection, then the chosen model is evaluated once on the sealed test
split (and any held-out set). A failure never escapes as an exception: it is
recorded with an error class (config, data, nan, oom, crash), its message and
the traceback saved next to the metrics, so a shard can go on with its next
config and self-healing can read the trace. Several experiments in one
process share a TaskCache: each backbone's features are loaded once.
"""

from __future__ import annotations

import json
import resource
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..atomic import atomic_write_text
from ..clock import utc_now
from ..data.sources import DataError
from ..data.splits import SplitError
from ..features.store import StoreError
from ..space import ConfigError, Space
from ..version import code_version
from .concurrent import run_concurrently
from .data import Task, load_task
from .settings import TrainSettings
from .trainer import TrainingFailure, evaluate, fit_config

METRICS, TRACE = "metrics.json", "trace.txt"


class TaskCache:
    """Tasks by backbone, loaded on first use from the store of that name.
    `stores` maps a name to its store (folder or index.json); a backbone with
    no store is a data failure naming the stores there are."""

    def __init__(
        self,
        stores: Mapping[str, str | Path],
        manifest: str | Path,
        clips: str | Path,
        device: torch.device | str = "cpu",
    ):
        self.stores, self.manifest, self.clips = dict(stores), manifest, clips
        self.device = torch.device(device)
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()  # configs trained side by side share the cache

    def __call__(self, backbone: str) -> Task:
        with self._lock:
            if backbone not in self._tasks:
                if backbone not in self.stores:
                    raise StoreError(
                        f"no feature store for backbone {backbone!r}; stores: {sorted(self.stores)}"
                    )
                task = load_task(self.stores[backbone], self.manifest, self.clips, self.device)
                if self.device.type == "cuda":
                    # Copied on this thread's stream; other streams read it from now on.
                    torch.cuda.synchronize(self.device)
                self._tasks[backbone] = task
            return self._tasks[backbone]


def classify(error: BaseException) -> str:
    """The error class of an exception raised while running an experiment."""
    if isinstance(error, TrainingFailure):
        return error.error_class
    if isinstance(error, ConfigError):
        return "config"
    if isinstance(error, (StoreError, SplitError, DataError)):
        return "data"
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in str(error):
        return "oom"
    return "crash"


def _peak_memory_mb(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process_max_rss"


def run_experiment(
    raw_config: Mapping[str, Any],
    space: Space,
    tasks: Callable[[str], Task],
    settings: TrainSettings,
    out_dir: str | Path,
    *,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train and evaluate one config; write and return its metrics (never raises
    for a failed run: the failure is in the metrics)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = settings.torch_device()
    metrics: dict[str, Any] = {
        "status": "failed",
        "error_class": None,
        "error": None,
        "config": dict(raw_config),
        "fingerprint": None,
        "code_version": code_version(),
        "device": str(device),
        "settings": {**asdict(settings), "horizons_s": list(settings.horizons_s)},
        "started": utc_now(),
    }
    start = time.perf_counter()
    try:
        config = space.validate(raw_config)
        metrics["config"], metrics["fingerprint"] = config.to_dict(), config.fingerprint
        task = tasks(config["backbone"])
        metrics.update(
            manifest_sha256=task.manifest_sha256,
            store_sha256=task.store_sha256,
            missing_from_store=task.missing,
        )
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        fit = fit_config(config, task, settings, log=log)
        train_seconds = time.perf_counter() - start
        # Selection is over: the test split is read once, at the chosen epoch.
        held_out = {
            name: evaluate(fit.model, task.split(name, unseal=True), fit.seq_len, settings)
            for name in task.sealed_names()
        }
        test = held_out.pop("test", None)
        val_row, test_row = fit.val.to_dict(), test.to_dict() if test else {}
        metrics.update(
            status="ok",
            val_ap=val_row["ap"],
            test_ap=test_row.get("ap"),
            val_auc=val_row["auc"],
            test_auc=test_row.get("auc"),
            val_horizon_map=val_row["horizon_map"],
            test_horizon_map=test_row.get("horizon_map"),
            best_epoch=fit.best_epoch,
            epochs_run=fit.epochs_run,
            optimizer_steps=fit.steps,
            val=val_row,
            test=test_row or None,
            held_out={name: evaluation.to_dict() for name, evaluation in held_out.items()},
            history=fit.history,
            train_seconds=round(train_seconds, 3),
        )
    except Exception as error:  # every failure is recorded; none escapes
        metrics.update(error_class=classify(error), error=f"{type(error).__name__}: {error}")
        atomic_write_text(out_dir / TRACE, traceback.format_exc())
    else:
        (out_dir / TRACE).unlink(missing_ok=True)
    finally:
        if device.type == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()
    metrics["seconds"] = round(time.perf_counter() - start, 3)
    metrics["peak_memory_mb"], metrics["memory_measure"] = _peak_memory_mb(device)
    metrics["peak_memory_mb"] = round(metrics["peak_memory_mb"], 1)
    metrics["finished"] = utc_now()
    if metrics["status"] == "failed":
        metrics["trace"] = TRACE
    atomic_write_text(out_dir / METRICS, _to_json(metrics))
    return metrics


def _to_json(metrics: Mapping[str, Any]) -> str:
    return json.dumps(metrics, indent=1, allow_nan=False) + "\n"


def run_experiments(
    jobs: Iterable[tuple[Mapping[str, Any], str | Path]],
    space: Space,
    tasks: Callable[[str], Task],
    settings: TrainSettings,
    *,
    progress: bool = True,
    streams: int = 1,
) -> list[dict[str, Any]]:
    """Several experiments in one process, sharing `tasks` (features loaded once
    per backbone). `jobs` are (config, out_dir) pairs; failures are recorded
    in their metrics and the next job goes on. `streams` > 1 trains that many
    at once on the device (training.concurrent); results stay in job order."""
    jobs = list(jobs)
    with tqdm(total=len(jobs), desc="experiments", unit="config", disable=not progress) as bar:

        def one(job: tuple[Mapping[str, Any], str | Path]) -> dict[str, Any]:
            metrics = run_experiment(job[0], space, tasks, settings, job[1])
            bar.set_postfix_str(
                f"{metrics['fingerprint'] or '?'}: "
                + (
                    f"val AP {metrics['val_ap']:.3f}"
                    if metrics["status"] == "ok"
                    else metrics["error_class"]
                )
            )
            bar.update()
            return metrics

        return run_concurrently(jobs, one, streams=streams, device=settings.torch_device())
