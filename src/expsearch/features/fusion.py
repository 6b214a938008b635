"""Multi-backbone fusion: concatenate the per-step features of several stores.

    fuse_stores([open_store(d) for d in dirs], "vjepa2_dinov3_siglip2", out_dir)

The paper's agents fused V-JEPA 2 (1,024) + DINOv3 (768) + SigLIP2 (768) into
2,560-dimensional steps. The fused store holds the clips present in every
component (in the first store's order), each step the concatenation of the
components' steps, and the shorter valid length. Components must share fps,
window and step count; the index names each component and its weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..version import code_version
from .store import FeatureStore, StoreError, write_store

MATCHING = ("fps", "window_s", "steps", "padding", "labels_sha256")


def fuse_stores(stores: Sequence[FeatureStore], name: str, out_dir: str | Path) -> dict[str, Any]:
    if len(stores) < 2:
        raise StoreError(f"fusion {name!r} needs at least two stores, got {len(stores)}")
    first = stores[0]
    for store in stores[1:]:
        for key in MATCHING:
            if store.index.get(key) != first.index.get(key):
                raise StoreError(
                    f"fusion {name!r}: {store.directory} has {key}={store.index.get(key)!r} but "
                    f"{first.directory} has {first.index.get(key)!r}"
                )
    common = set(first.ids).intersection(*(set(s.ids) for s in stores[1:]))
    ids = [clip for clip in first.ids if clip in common]
    rows = [store.rows(ids) for store in stores]
    parts = [np.asarray(store.features[r]) for store, r in zip(stores, rows, strict=True)]
    valid = np.min([store.valid_lengths[r] for store, r in zip(stores, rows, strict=True)], axis=0)
    features = np.concatenate(parts, axis=2)
    steps = features.shape[1]
    for row, n_valid in enumerate(valid):
        features[row, : steps - n_valid] = 0.0
    kinds = {store.index["weights"] for store in stores}
    index = {
        "backbone": name,
        "weights": kinds.pop() if len(kinds) == 1 else "mixed",
        "components": [
            {
                "backbone": s.index["backbone"],
                "weights": s.index["weights"],
                "checkpoint": s.index.get("checkpoint"),  # absent from stores of older code
                "width": s.width,
                "features_sha256": s.index["features_sha256"],
            }
            for s in stores
        ],
        "width": int(features.shape[2]),
        **{key: first.index.get(key) for key in MATCHING},
        "code_version": code_version(),
        "clip_ids": ids,
        "valid_lengths": [int(v) for v in valid],
        "skipped": [
            {"id": clip, "reason": "missing from a component store"}
            for clip in dict.fromkeys(clip for store in stores for clip in store.ids)
            if clip not in common
        ],
    }
    write_store(out_dir, features, index)
    return index
