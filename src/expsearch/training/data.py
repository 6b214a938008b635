"""A training task: one backbone's cached features, split by the manifest, on the device.

    task = load_task("results/features/vjepa2", "results/split/manifest.json",
                     "results/split/clips.csv", device=torch.device("cuda"))
    x, lengths, y = task.train.batch(indices, seq_len=20)
    test = task.split("test", unseal=True)       # only the final evaluation does this

Every split is one tensor (clips, steps, width) that stays on the device, so
a batch is an index into it and never a DataLoader copy. Features are
standardised per dimension with the training split's mean and std over valid
steps (padding stays zero), so `feature_noise` is in units of the feature's
own spread whatever the backbone.

Sequence length: a store window has `steps` steps ending at the alert (or the
video end); `seq_len = N` feeds the encoder the LAST N of them, the N steps
just before the window end; padding, when a clip is shorter, stays in front.

Horizons (the Nexar challenge scores predictions 0.5, 1.0, 1.5 s before the
event): `horizon_view(h)` drops, for each positive with an event time, the
steps that end later than h seconds before its event (they are shifted out at
the end, padding enters in front); clips whose window already ends earlier
are used as stored, and positives with nothing left are excluded and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.sources import DataError, read_clip_table
from ..data.splits import SPLITS, Manifest, load_manifest
from ..features.store import FeatureStore, StoreError, open_store


@dataclass
class SplitData:
    """One split on the device: features (N, T, D), lengths (N,), targets (N,)."""

    name: str
    ids: list[str]
    features: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor
    # Seconds from the window end to the event (NaN: negative or no event time).
    end_to_event_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    fps: float = 5.0

    def __len__(self) -> int:
        return len(self.ids)

    def batch(
        self, indices: torch.Tensor, seq_len: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, lengths = window(self.features[indices], self.lengths[indices], seq_len)
        return x, lengths, self.targets[indices]

    def horizon_view(
        self, horizon_s: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """Features, lengths and targets with no information later than
        `horizon_s` before each positive's event; and how many positives were
        excluded because nothing of their window is left."""
        late = np.nan_to_num(horizon_s - self.end_to_event_s, nan=0.0)
        drop = np.maximum(0, np.ceil(late * self.fps - 1e-6)).astype(np.int64)
        lengths = self.lengths.cpu().numpy()
        keep_np = lengths - drop >= 1
        keep = torch.as_tensor(keep_np, device=self.features.device)
        drop_t = torch.as_tensor(drop[keep_np], device=self.features.device)
        x, lengths_t = shift_out(self.features[keep], self.lengths[keep], drop_t)
        return x, lengths_t, self.targets[keep], int((~keep_np).sum())


def window(
    features: torch.Tensor, lengths: torch.Tensor, seq_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The last `seq_len` steps of left-padded windows, with their valid lengths."""
    if seq_len > features.shape[1]:
        raise DataError(f"seq_len {seq_len} is longer than the stored window ({features.shape[1]})")
    return features[:, -seq_len:], lengths.clamp(max=seq_len)


def shift_out(
    features: torch.Tensor, lengths: torch.Tensor, drop: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Remove the last drop[b] steps of row b, moving the rest right (padding enters at the start)."""
    steps = features.shape[1]
    t = torch.arange(steps, device=features.device).unsqueeze(0)
    source = (t - drop.unsqueeze(1)).clamp(min=0)
    moved = features.gather(1, source.unsqueeze(-1).expand(-1, -1, features.shape[-1]))
    return moved * (t >= drop.unsqueeze(1)).unsqueeze(-1), lengths - drop


@dataclass
class Task:
    """Features of one backbone split by a manifest; test stays sealed until asked."""

    backbone: str
    width: int
    steps: int
    train: SplitData
    val: SplitData
    _sealed: dict[str, SplitData]
    manifest_sha256: str = ""
    store_sha256: str = ""
    missing: dict[str, int] = field(default_factory=dict)  # clips of a split absent from the store

    def sealed_names(self) -> list[str]:
        """The sealed splits (test, held-out sets) that the final evaluation reads."""
        return list(self._sealed)

    def split(self, name: str, *, unseal: bool = False) -> SplitData:
        if name == "train":
            return self.train
        if name == "val":
            return self.val
        if name not in self._sealed:
            raise DataError(
                f"unknown split {name!r}; the task has train, val, {list(self._sealed)}"
            )
        if not unseal:
            raise DataError(f"the {name} split is sealed: only the final evaluation may read it")
        return self._sealed[name]


def _valid_steps(lengths: np.ndarray, steps: int) -> np.ndarray:
    """(clips, steps) bool: True on the last lengths[i] steps (stores pad at the start)."""
    return np.arange(steps)[None, :] >= (steps - lengths)[:, None]


def read_features(
    store: FeatureStore, ids: Sequence[str], name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Features (in the order of `ids`) and valid lengths of one split, checked."""
    rows = store.rows(ids)
    order = np.argsort(rows)  # read the memory map in file order
    features = np.empty((len(rows), store.steps, store.width), dtype=np.float32)
    features[order] = store.features[rows[order]]
    lengths = store.valid_lengths[rows]
    if (lengths < 1).any():
        bad = [clip for clip, n in zip(ids, lengths, strict=True) if n < 1][:3]
        raise DataError(f"{store.directory}: clips with no valid feature step, e.g. {bad}")
    if not np.isfinite(features).all():
        raise DataError(f"{store.directory}: the {name} features contain NaN or inf")
    return features, lengths


def training_scale(features: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    steps = features[_valid_steps(lengths, features.shape[1])]  # (valid steps, D)
    if steps.shape[0] == 0:
        raise DataError("the training split has no valid feature steps")
    mean, std = steps.mean(0), steps.std(0)
    return mean, np.where(std > 1e-6, std, 1.0)


def split_data(
    name: str,
    ids: Sequence[str],
    raw: tuple[np.ndarray, np.ndarray],
    clips: pd.DataFrame,
    targets: pd.Series,
    scale: tuple[np.ndarray, np.ndarray],
    fps: float,
    device: torch.device,
) -> SplitData:
    features, lengths = raw
    mean, std = scale
    valid = _valid_steps(lengths, features.shape[1])[..., None]
    features = np.where(valid, (features - mean) / std, 0.0).astype(np.float32)
    table = clips.set_index("id").loc[list(ids)]
    # Windows end at the alert (see data.sources.window_end); no alert, no horizon shift.
    end_to_event = table["time_of_event"].to_numpy(float) - table["time_of_alert"].to_numpy(float)
    end_to_event[targets.loc[list(ids)].to_numpy() == 0] = np.nan  # horizons move positives only
    return SplitData(
        name=name,
        ids=list(ids),
        features=torch.as_tensor(features, device=device),
        lengths=torch.as_tensor(lengths, dtype=torch.long, device=device),
        targets=torch.as_tensor(np.array(targets.loc[list(ids)], dtype=np.float32), device=device),
        end_to_event_s=end_to_event,
        fps=fps,
    )


def check_labels(store: FeatureStore, manifest: Manifest, manifest_path: str | Path) -> None:
    """A store extracted for other labels than the manifest's is an error naming both."""
    recorded = store.index.get("labels_sha256", "")
    if recorded and recorded != manifest.labels_sha256:
        raise StoreError(
            f"{store.directory}: features were extracted for labels {recorded[:12]}…, but the "
            f"manifest {manifest_path} is for labels {manifest.labels_sha256[:12]}…; "
            "extract again or use the matching split"
        )


def load_task(
    store_dir: str | Path,
    manifest_path: str | Path,
    clips_path: str | Path,
    device: torch.device | str = "cpu",
    *,
    verify: bool = True,
) -> Task:
    """Open a store and a manifest, check that they belong together, and put
    train and val (and, sealed, test and any held-out set) on the device."""
    device = torch.device(device)
    store = open_store(store_dir, verify=verify)
    manifest: Manifest = load_manifest(manifest_path)
    clips = read_clip_table(clips_path)
    check_labels(store, manifest, manifest_path)
    in_store = set(store.ids)
    present, missing = {}, {}
    for name in manifest.splits:
        ids = manifest.ids(name)
        present[name] = [clip for clip in ids if clip in in_store]
        missing[name] = len(ids) - len(present[name])
    for name in ("train", "val"):
        if not present[name]:
            raise DataError(f"{store.directory}: no clip of the {name} split is in the store")
    raw = {name: read_features(store, ids, name) for name, ids in present.items() if ids}
    scale = training_scale(*raw["train"])  # training statistics serve every split
    fps = float(store.index.get("fps", 5.0))

    def build(name: str, unseal: bool = False) -> SplitData:
        targets = manifest.labels(clips, name, unseal=unseal)
        return split_data(name, present[name], raw[name], clips, targets, scale, fps, device)

    sealed = {
        name: build(name, unseal=True)
        for name in manifest.splits
        if name not in SPLITS[:2] and present[name]
    }
    return Task(
        backbone=str(store.index.get("backbone", store.directory.name)),
        width=store.width,
        steps=store.steps,
        train=build("train"),
        val=build("val"),
        _sealed=sealed,
        manifest_sha256=manifest.sha256(),
        store_sha256=str(store.index.get("features_sha256", "")),
        missing={name: n for name, n in missing.items() if n},
    )
