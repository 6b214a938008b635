"""Cross-validated evaluation of a final config: every clip a test clip once.

    folds = fold_tasks("results/features/dinov3_b", "results/split/manifest.json",
                       "results/split/clips.csv", k=10, seed=0)
    runs = cross_validate([config_a, config_b], folds, settings)  # candidates x folds
    chosen = select_per_fold(runs)            # each fold: the best val AP, its test AP
    corrected_t(chosen.test_ap - probe_test_ap, test_fraction=1 / 10)

Why: the embedded task's val and test splits hold 80 clips each, and the
bootstrap SE of one model's AP over 80 clips (0.05-0.07) is larger than the
seed-to-seed spread (0.03-0.05), so one split cannot tell two configs apart
however many seeds are run. A campaign still ranks on its one val split (the
search's objective, as in the paper); a config to be reported is trained k
times instead, fold f its test split, fold f+1 its validation split (epoch
and candidate selection) and the other k-2 its training split, so with k = 10
the sizes of the default 80/10/10 split are kept and the mean over folds rests
on all clips. Each fold is a `Task` like `load_task` builds (standardised with
its own training statistics, test sealed), so `fit_config` and `evaluate` see
it exactly as a campaign's experiment does; fold f trains with seed
settings.seed + f.

Folds are stratified: each class is shuffled (numpy seed) and dealt round
robin, so fold sizes and positive counts differ by at most one.
`corrected_t` is Nadeau and Bengio's corrected resampled t-test (Machine
Learning 52, 2003): training sets of different folds overlap, so the
variance of the per-fold differences is inflated by 1/k + n_test/n_train.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..data.sources import DataError, read_clip_table
from ..data.splits import load_manifest
from ..features.store import open_store
from .data import Task, check_labels, read_features, split_data, training_scale
from .settings import TrainSettings
from .trainer import TrainingFailure, evaluate, fit_config


def assign_folds(targets: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold index (0..k-1) of each clip, stratified by its 0/1 target."""
    targets = np.asarray(targets)
    if k < 3:
        raise ValueError(f"cross-validation needs k >= 3 folds (test, val, train), got {k}")
    counts = {int(c): int((targets == c).sum()) for c in np.unique(targets)}
    if set(counts) != {0, 1} or min(counts.values()) < k:
        raise DataError(
            f"{k} stratified folds need at least {k} clips of each class; "
            f"the clips have {counts.get(1, 0)} positives and {counts.get(0, 0)} negatives"
        )
    rng = np.random.default_rng(seed)
    folds = np.empty(len(targets), dtype=np.int64)
    dealt = 0
    for cls in (0, 1):
        members = rng.permutation(np.flatnonzero(targets == cls))
        # Continue the deal where the other class stopped, so sizes stay within one.
        folds[members] = (dealt + np.arange(len(members))) % k
        dealt += len(members)
    return folds


def fold_tasks(
    store_dir: str | Path,
    manifest_path: str | Path,
    clips_path: str | Path,
    *,
    k: int = 10,
    seed: int = 0,
    device: str = "cpu",
) -> list[Task]:
    """k tasks over every clip of the manifest that the store holds: task f
    tests on fold f, validates on fold (f + 1) % k and trains on the rest."""
    store = open_store(store_dir)
    manifest = load_manifest(manifest_path)
    check_labels(store, manifest, manifest_path)
    clips = read_clip_table(clips_path)
    in_store = set(store.ids)
    labels = pd.concat([manifest.labels(clips, name, unseal=True) for name in manifest.splits])
    labels = labels[labels.index.isin(in_store)]
    ids = list(labels.index)
    folds = assign_folds(labels.to_numpy(), k, seed)
    features, lengths = read_features(store, ids, "cross-validation")
    fps = float(store.index.get("fps", 5.0))
    tasks = []
    for f in range(k):
        roles = {"test": folds == f, "val": folds == (f + 1) % k}
        roles["train"] = ~(roles["test"] | roles["val"])
        raw = {role: (features[mask], lengths[mask]) for role, mask in roles.items()}
        scale = training_scale(*raw["train"])  # this fold's training clips only
        data = {
            role: split_data(
                role, [clip for clip, keep in zip(ids, mask, strict=True) if keep],
                raw[role], clips, labels, scale, fps, device,
            )
            for role, mask in roles.items()
        }  # fmt: skip
        tasks.append(
            Task(
                backbone=str(store.index.get("backbone", store.directory.name)),
                width=store.width,
                steps=store.steps,
                train=data["train"],
                val=data["val"],
                _sealed={"test": data["test"]},
                manifest_sha256=f"{manifest.sha256()}:fold{f}of{k}:seed{seed}",
                store_sha256=str(store.index.get("features_sha256", "")),
            )
        )
    return tasks


@dataclass(frozen=True)
class FoldRun:
    """One candidate trained on one fold (a failed run: NaN APs and its error)."""

    candidate: int
    fold: int
    val_ap: float
    test_ap: float
    best_epoch: int = 0
    error: str | None = None


def cross_validate(
    candidates: Sequence[Mapping[str, Any]],
    folds_of: Callable[[str], Sequence[Task]],
    settings: TrainSettings,
    *,
    progress: Callable[[str], None] | None = None,
) -> list[FoldRun]:
    """Train every candidate config on every fold of its backbone's fold tasks
    (`folds_of(backbone)`; seed settings.seed + fold). A run that fails (a
    non-finite loss) is kept with NaN APs and its error, never selected."""
    runs = []
    for c, config in enumerate(candidates):
        for f, task in enumerate(folds_of(config["backbone"])):
            fold_settings = dataclasses.replace(settings, seed=settings.seed + f)
            try:
                fit = fit_config(config, task, fold_settings)
            except TrainingFailure as error:
                runs.append(FoldRun(c, f, math.nan, math.nan, error=str(error)))
                if progress:
                    progress(f"candidate {c}, fold {f + 1}: failed ({error})")
                continue
            test = task.split("test", unseal=True)
            result = evaluate(fit.model, test, fit.seq_len, fold_settings, horizons=False)
            runs.append(FoldRun(c, f, fit.val.ap, result.ap, fit.best_epoch))
            if progress:
                progress(f"candidate {c}, fold {f + 1}: val AP {fit.val.ap:.3f}")
    return runs


def select_per_fold(runs: Sequence[FoldRun]) -> list[FoldRun]:
    """In each fold, the candidate with the best validation AP (ties: the
    first candidate); its test AP is that fold's unbiased estimate."""
    by_fold: dict[int, FoldRun] = {}
    for run in sorted(runs, key=lambda r: (r.fold, r.candidate)):
        held = by_fold.get(run.fold)
        if held is None or _score(run.val_ap) > _score(held.val_ap):
            by_fold[run.fold] = run
    return [by_fold[f] for f in sorted(by_fold)]


def _score(ap: float) -> float:
    return ap if math.isfinite(ap) else -math.inf


def corrected_t(differences: Sequence[float], test_fraction: float) -> dict[str, float]:
    """Nadeau-Bengio corrected resampled t-test of per-fold differences (two-sided).
    test_fraction is n_test / n; the training sets hold the rest of it but the
    validation fold, so n_test / n_train = test_fraction / (1 - 2 test_fraction)."""
    d = np.asarray(differences, dtype=float)
    k = len(d)
    if k < 2:
        raise ValueError(f"a t-test needs at least 2 folds, got {k}")
    if not 0 < test_fraction < 0.5:
        raise ValueError(f"test_fraction must be in (0, 0.5), got {test_fraction}")
    ratio = test_fraction / (1 - 2 * test_fraction)
    variance = d.var(ddof=1)
    if variance == 0:  # every fold the same difference: certain if it is not zero
        t = math.copysign(math.inf, d.mean()) if d.mean() else 0.0
        return {"mean": float(d.mean()), "t": t, "p": 0.0 if d.mean() else 1.0}
    t = d.mean() / math.sqrt((1 / k + ratio) * variance)
    return {"mean": float(d.mean()), "t": float(t), "p": float(2 * stats.t.sf(abs(t), k - 1))}


def summary(runs: Sequence[FoldRun], k: int) -> dict[str, Any]:
    """Per-fold selection and what it scores: mean, sd and standard error of
    the selected test AP over the folds, each candidate's means, failures."""
    chosen = select_per_fold(runs)
    test = np.array([r.test_ap for r in chosen], dtype=float)
    sd = float(np.nanstd(test, ddof=1)) if len(test) > 1 else 0.0
    candidates = sorted({r.candidate for r in runs})
    return {
        "folds": k,
        "test_ap": float(np.nanmean(test)),
        "test_ap_sd": sd,
        "test_ap_se": sd / math.sqrt(len(test)),
        "chosen": [dataclasses.asdict(r) for r in chosen],
        "candidates": [
            {
                "candidate": c,
                "val_ap": _finite_mean([r.val_ap for r in runs if r.candidate == c]),
                "test_ap": _finite_mean([r.test_ap for r in runs if r.candidate == c]),
                "failed": sum(r.error is not None for r in runs if r.candidate == c),
            }
            for c in candidates
        ],
    }


def _finite_mean(values: Sequence[float]) -> float | None:
    """Mean of the finite values; None (JSON null) when no run of them finished."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else None
