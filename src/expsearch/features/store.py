"""Feature stores: per backbone, one memory-mappable array plus an index.

    write_store(directory, features, index)    # atomic; fills shape, dtype, hash
    store = open_store(directory)               # StoreError naming the file if bad
    store = open_store("results/features/vjepa2/index.json")  # the same: a store by its index
    stores = stores_by_name(index_paths)         # {"vjepa2": Path(".../vjepa2"), ...}
    store.features        # np.memmap (clips, steps, width), float32
    store.ids, store.valid_lengths, store.index # the index is a dict (see below)
    store.rows(["00042", ...])                  # row numbers of these clips

Layout of `directory`: `features.npy` and `index.json`; the folder's name is
the store's name (a backbone or a fusion). Anything that takes a store
accepts its folder or its index.json, so a workflow passes its declared
input file as it is. The index holds the
clip ids (row order), valid lengths (real steps per clip; padding, where a
window starts before the video, is at the start and zero), fps, window,
backbone name, weights ("pretrained" or "random"), Hugging Face id, input
size, code version, the labels hash, clips that were skipped and why, and the
SHA-256 of the array. Opening checks that index and array agree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_open, atomic_write_text
from ..hashing import sha256_file

FORMAT = 1
FEATURES, INDEX = "features.npy", "index.json"
SKIPPED = "skipped.csv"  # the clips an extraction skipped (bad video, times past its end), why


class StoreError(ValueError):
    """A feature store that cannot be used; the message names the file."""


def store_dir(path: str | Path) -> Path:
    """The folder of a store given as its folder, its index.json or its features.npy."""
    path = Path(path)
    return path.parent if path.name in (INDEX, FEATURES) else path


def store_files(root: str | Path, name: str) -> list[str]:
    """The two files of store `name` under `root`: what a job reading it declares."""
    return [f"{root}/{name}/{INDEX}", f"{root}/{name}/{FEATURES}"]


def skipped_file(root: str | Path, name: str) -> str:
    """The list of clips that the extraction of store `name` skipped, with reasons."""
    return f"{root}/{name}/{SKIPPED}"


def stores_by_name(paths: Iterable[str | Path]) -> dict[str, Path]:
    """Store folders by store name, from folders or index files (e.g. a rule's inputs)."""
    return {store_dir(path).name: store_dir(path) for path in paths}


def stores_under(root: str | Path) -> dict[str, Path]:
    """Every complete store (one with an index) directly under `root`, by name."""
    root = Path(root)
    found = root.glob(f"*/{INDEX}") if root.is_dir() else []
    return stores_by_name(sorted(found))


def write_store(directory: str | Path, features: np.ndarray, index: Mapping[str, Any]) -> Path:
    """Write array then index, each atomically; the index is written last, so
    a store is complete exactly when its index matches its array."""
    directory = store_dir(directory)
    features = np.ascontiguousarray(features, dtype=np.float32)
    ids, valid = list(index["clip_ids"]), list(index["valid_lengths"])
    if features.ndim != 3 or len(ids) != features.shape[0] or len(valid) != features.shape[0]:
        raise StoreError(
            f"{directory}: {len(ids)} ids and {len(valid)} valid lengths for an array of "
            f"shape {features.shape}"
        )
    with atomic_open(directory / FEATURES, "wb") as handle:
        np.save(handle, features, allow_pickle=False)
    full = {
        **index,
        "format": FORMAT,
        "shape": list(features.shape),
        "dtype": str(features.dtype),
        "features_sha256": sha256_file(directory / FEATURES),
    }
    atomic_write_text(directory / INDEX, json.dumps(full, indent=1) + "\n")
    return directory


@dataclass(frozen=True)
class FeatureStore:
    directory: Path
    index: dict[str, Any]
    features: np.ndarray

    @property
    def ids(self) -> list[str]:
        return self.index["clip_ids"]

    @property
    def valid_lengths(self) -> np.ndarray:
        return np.asarray(self.index["valid_lengths"], dtype=np.int64)

    @property
    def width(self) -> int:
        return int(self.features.shape[2])

    @property
    def steps(self) -> int:
        return int(self.features.shape[1])

    def rows(self, ids: Iterable[str]) -> np.ndarray:
        position = {clip: row for row, clip in enumerate(self.ids)}
        ids = list(ids)
        missing = [clip for clip in ids if clip not in position]
        if missing:
            raise StoreError(
                f"{self.directory}: {len(missing)} clip(s) not in the store, e.g. {missing[:3]}"
            )
        return np.array([position[clip] for clip in ids], dtype=np.int64)


def open_store(directory: str | Path, *, verify: bool = True) -> FeatureStore:
    """Open a store read-only (memory-mapped). With `verify`, the array's
    SHA-256 is checked against the index (one read of the file)."""
    directory = store_dir(directory)
    index_path, array_path = directory / INDEX, directory / FEATURES
    try:
        index = json.loads(index_path.read_text())
    except FileNotFoundError:
        raise StoreError(
            f"{index_path}: missing; the store is incomplete (extraction not finished?)"
        ) from None
    except json.JSONDecodeError as exc:
        raise StoreError(f"{index_path}: corrupt index: {exc}") from None
    try:
        features = np.load(array_path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise StoreError(f"{array_path}: missing") from None
    except (ValueError, OSError) as exc:
        raise StoreError(f"{array_path}: cannot read the feature array: {exc}") from None
    problems = []
    if index.get("format") != FORMAT:
        problems.append(f"format {index.get('format')!r}, expected {FORMAT}")
    if list(features.shape) != index.get("shape"):
        problems.append(
            f"array shape {list(features.shape)} but the index says {index.get('shape')}"
        )
    if str(features.dtype) != index.get("dtype"):
        problems.append(f"array dtype {features.dtype} but the index says {index.get('dtype')}")
    n = features.shape[0] if features.ndim == 3 else -1
    for key in ("clip_ids", "valid_lengths"):
        if len(index.get(key, [])) != n:
            problems.append(f"{len(index.get(key, []))} {key} for {n} rows")
    if not problems and any(v < 0 or v > features.shape[1] for v in index["valid_lengths"]):
        problems.append("a valid length lies outside [0, steps]")
    if not problems and verify and sha256_file(array_path) != index.get("features_sha256"):
        problems.append("the array's SHA-256 differs from the index (modified or partly written)")
    if problems:
        raise StoreError(f"{array_path}: index and array disagree: " + "; ".join(problems))
    return FeatureStore(directory=directory, index=index, features=features)
