"""A tiny on-disk training task for the training tests: stores, clip table, manifest.

Positives carry a weak signal (a ramp along one feature direction over the
last steps, as a looming object would) on top of noise, so a model can
learn it but not from any single step; some clips are shorter than the
window (start padding). Every backbone of the default space gets a store
with its own random projection of the same clips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from expsearch.data.splits import make_split, write_manifest
from expsearch.features.store import write_store

BACKBONES = ("vjepa2", "dinov3_b", "dinov3_l", "dinov2_b", "siglip2", "convnext")
STEPS, WIDTH, FPS = 30, 8, 5.0


def clip_table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    target = (np.arange(n) % 2).astype(int)
    event = np.where(target == 1, rng.uniform(7.2, 7.8, n).round(3), np.nan)
    alert = np.where(target == 1, (event - rng.uniform(0.5, 1.0, n)).round(3), np.nan)
    return pd.DataFrame(
        {
            "id": [f"{i:05d}" for i in range(n)],
            "path": "",
            "target": target,
            "time_of_event": event,
            "time_of_alert": alert,
            "pool": "train",
        }
    )


def clip_features(clips: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, STEPS, WIDTH) features in the store layout and their valid lengths."""
    rng = np.random.default_rng(seed)
    n = len(clips)
    features = rng.normal(size=(n, STEPS, WIDTH)).astype(np.float32)
    ramp = np.clip((np.arange(STEPS) - (STEPS - 12)) / 12, 0, None)  # the last 12 steps
    features[:, :, 0] += 1.5 * clips["target"].to_numpy()[:, None] * ramp[None, :]
    lengths = np.where(np.arange(n) % 5 == 0, rng.integers(12, STEPS, n), STEPS)
    for row, valid in enumerate(lengths):
        features[row, : STEPS - valid] = 0.0
    return features, lengths


def write_task(root: Path, n: int = 200, seed: int = 0) -> dict[str, Path]:
    """Write stores for every backbone, clips.csv, labels and manifest under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    clips = clip_table(n, seed)
    labels = root / "train.csv"
    clips[["id", "time_of_event", "time_of_alert", "target"]].to_csv(labels, index=False)
    clips.to_csv(root / "clips.csv", index=False)
    manifest = make_split(clips, {"train": 0.8, "val": 0.1, "test": 0.1}, seed, labels)
    write_manifest(root / "manifest.json", manifest)
    features, lengths = clip_features(clips, seed)
    for k, backbone in enumerate(BACKBONES):
        mix = np.random.default_rng([seed, k]).normal(size=(WIDTH, WIDTH)).astype(np.float32)
        write_store(
            root / "features" / backbone,
            features @ (np.eye(WIDTH, dtype=np.float32) + 0.3 * mix),
            {
                "backbone": backbone,
                "fps": FPS,
                "clip_ids": clips["id"].tolist(),
                "valid_lengths": lengths.tolist(),
                "labels_sha256": manifest.labels_sha256,
            },
        )
    return {
        "root": root,
        "features": root / "features",
        "clips": root / "clips.csv",
        "manifest": root / "manifest.json",
        "labels": labels,
    }
