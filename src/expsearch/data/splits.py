"""Leak-proof train/val/test splits by video id, and their hashed manifest.

    manifest = make_split(clips, fractions={"train": .8, "val": .1, "test": .1},
                          seed=0, labels_file="results/data/train.csv")
    write_manifest("results/split/manifest.json", manifest)
    manifest = load_manifest("results/split/manifest.json", labels_file=...)  # rechecks everything
    labels = manifest.labels(clips, "val")       # test labels need unseal=True

A manifest holds the ids of each split, the SHA-256 of the labels file it was
made from, and the SHA-256 of its own content. Loading it rechecks both hashes
and that no id is in two splits, and stops with SplitError on any mismatch:
evaluating on a split other than the one recorded (the paper's first bug,
8,730 experiments on a contaminated test set) cannot happen silently.
The test split is sealed: `labels(..., "test")` refuses unless the caller
says `unseal=True`, which only the final test evaluation does. A split that
would leave train, val or test empty (too few clips for the fractions) is
refused with the sizes and fractions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import atomic_write_text
from ..hashing import sha256_file
from .sources import read_clips

SPLITS = ("train", "val", "test")
MANIFEST_VERSION = 1


class SplitError(ValueError):
    """A manifest that does not match its labels, itself, or the rules."""


@dataclass(frozen=True)
class Manifest:
    splits: dict[str, tuple[str, ...]]  # train, val, test, plus any held-out sets
    labels_sha256: str
    seed: int
    fractions: dict[str, float]
    sealed: tuple[str, ...] = ("test",)  # splits whose labels model selection may not read

    def ids(self, split: str) -> tuple[str, ...]:
        if split not in self.splits:
            raise SplitError(f"unknown split {split!r}; the manifest has {list(self.splits)}")
        return self.splits[split]

    def split_of(self) -> dict[str, str]:
        return {clip: split for split, ids in self.splits.items() for clip in ids}

    def labels(self, clips: pd.DataFrame, split: str, *, unseal: bool = False) -> pd.Series:
        """Targets of one split, indexed by id. Sealed splits (test, held-out
        sets) need `unseal=True`: model selection must never read them."""
        if split in self.sealed and not unseal:
            raise SplitError(
                f"the {split} split is sealed: model selection may not read its labels "
                "(only the final test evaluation passes unseal=True)"
            )
        ids = list(self.ids(split))
        table = clips.set_index("id")
        missing = [clip for clip in ids if clip not in table.index]
        if missing:
            raise SplitError(f"{len(missing)} {split} id(s) not in the labels, e.g. {missing[:3]}")
        return table.loc[ids, "target"].astype(int)

    def content(self) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "labels_sha256": self.labels_sha256,
            "seed": self.seed,
            "fractions": self.fractions,
            "splits": {name: list(ids) for name, ids in self.splits.items()},
            "sealed": list(self.sealed),
        }

    def sha256(self) -> str:
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _allocate(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Largest-remainder rounding of n * fraction, so the counts sum to n."""
    raw = {name: n * frac for name, frac in fractions.items()}
    counts = {name: int(np.floor(value)) for name, value in raw.items()}
    by_remainder = sorted(raw, key=lambda name: (raw[name] - counts[name], name), reverse=True)
    for name in by_remainder[: n - sum(counts.values())]:
        counts[name] += 1
    return counts


def make_split(
    clips: pd.DataFrame,
    fractions: Mapping[str, float],
    seed: int,
    labels_file: str | Path,
    held_out: Mapping[str, Sequence[str]] | None = None,
) -> Manifest:
    """Stratified split of `clips` (columns id, target) by video id.
    `held_out` adds sealed sets kept apart from the start (e.g. the Nexar
    competition test clips), which must not share ids with `clips`."""
    if set(fractions) != set(SPLITS):
        raise SplitError(f"fractions must name exactly {list(SPLITS)}, got {list(fractions)}")
    if abs(sum(fractions.values()) - 1.0) > 1e-9 or min(fractions.values()) < 0:
        raise SplitError(f"fractions must be >= 0 and sum to 1, got {dict(fractions)}")
    if clips["id"].duplicated().any():
        dupes = clips.loc[clips["id"].duplicated(), "id"].tolist()
        raise SplitError(f"duplicate video ids in the labels: {dupes[:5]}")
    rng = np.random.default_rng(seed)
    splits: dict[str, list[str]] = {name: [] for name in SPLITS}
    for _target, group in sorted(clips.groupby("target"), key=lambda item: item[0]):
        ids = sorted(group["id"].astype(str))
        order = rng.permutation(len(ids))
        start = 0
        for name, count in _allocate(len(ids), {s: fractions[s] for s in SPLITS}).items():
            splits[name] += [ids[i] for i in order[start : start + count]]
            start += count
    _refuse_empty(splits, fractions, labels_file)
    for name, ids in (held_out or {}).items():
        if name in splits:
            raise SplitError(f"held-out set {name!r} clashes with a split name")
        overlap = set(ids) & set(clips["id"])
        if overlap:
            raise SplitError(
                f"held-out set {name!r} shares ids with the clips: {sorted(overlap)[:5]}"
            )
        splits[name] = list(ids)
    return Manifest(
        splits={name: tuple(sorted(ids)) for name, ids in splits.items()},
        labels_sha256=sha256_file(labels_file),
        seed=seed,
        fractions={name: float(fractions[name]) for name in SPLITS},
        sealed=("test", *sorted(held_out or {})),
    )


def _refuse_empty(
    splits: Mapping[str, Sequence[str]], fractions: Mapping[str, float], labels_file
) -> None:
    """An empty split would only surface later, as a model selected on nothing
    or a test score of nothing; with few clips, per-class rounding gets there
    even at non-zero fractions (6 + 6 clips at 0.8/0.1/0.1 give test 0)."""
    empty = [name for name in SPLITS if not splits[name]]
    if empty:
        sizes = ", ".join(f"{name} {len(splits[name])}" for name in SPLITS)
        asked = ", ".join(f"{name} {fractions[name]:g}" for name in SPLITS)
        raise SplitError(
            f"{labels_file}: the split of {sum(len(ids) for ids in splits.values())} clips "
            f"leaves {' and '.join(empty)} empty (sizes: {sizes}; fractions: {asked}); "
            "every split needs at least one clip: add clips or raise those fractions"
        )


def write_manifest(path: str | Path, manifest: Manifest) -> None:
    document = {**manifest.content(), "manifest_sha256": manifest.sha256()}
    atomic_write_text(path, json.dumps(document, indent=1) + "\n")


def load_manifest(path: str | Path, labels_file: str | Path | None = None) -> Manifest:
    """Read a manifest and recheck its own hash, the labels file's hash (when
    given) and that the splits are disjoint."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SplitError(f"{path}: cannot read the split manifest: {exc}") from None
    try:
        manifest = Manifest(
            splits={name: tuple(ids) for name, ids in document["splits"].items()},
            labels_sha256=document["labels_sha256"],
            seed=document["seed"],
            fractions=document["fractions"],
            sealed=tuple(document["sealed"]),
        )
        recorded = document["manifest_sha256"]
    except (KeyError, TypeError, AttributeError) as exc:
        raise SplitError(f"{path}: not a split manifest (missing {exc})") from None
    if manifest.sha256() != recorded:
        raise SplitError(f"{path}: the manifest was modified after it was written (hash mismatch)")
    seen: dict[str, str] = {}
    for name, ids in manifest.splits.items():
        for clip in ids:
            if clip in seen:
                raise SplitError(f"{path}: video {clip!r} is in both {seen[clip]!r} and {name!r}")
            seen[clip] = name
    if labels_file is not None and sha256_file(labels_file) != manifest.labels_sha256:
        raise SplitError(
            f"{path}: the labels file {labels_file} changed since the split was made "
            "(its SHA-256 differs); make the split again"
        )
    return manifest


def split_source(
    source: str,
    labels: str | Path,
    videos: str | Path,
    fractions: Mapping[str, float],
    seed: int,
    clips_out: str | Path,
    manifest_out: str | Path,
    competition: Mapping[str, str | Path] | None = None,
) -> Manifest:
    """Read a data source, split its clips and write the clip table and the
    manifest. Nexar competition clips become the sealed `competition` set."""
    clips = read_clips(source, labels, videos, competition)
    held = clips.loc[clips["pool"] == "competition", "id"].tolist()
    manifest = make_split(
        clips[clips["pool"] == "train"],
        fractions,
        seed=seed,
        labels_file=labels,
        held_out={"competition": held} if held else None,
    )
    atomic_write_text(clips_out, clips.to_csv(index=False))
    write_manifest(manifest_out, manifest)
    return manifest
