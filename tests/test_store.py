"""Feature stores: round trip, disagreement between index and array, fusion."""

from __future__ import annotations

import json

import numpy as np
import pytest

from expsearch.features.fusion import fuse_stores
from expsearch.features.store import FEATURES, INDEX, StoreError, open_store, write_store


def _store(directory, ids, width, steps=6, weights="random", backbone="b", seed=0, valid=None):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(len(ids), steps, width)).astype(np.float32)
    valid = valid or [steps] * len(ids)
    for row, n in enumerate(valid):
        features[row, : steps - n] = 0
    index = {
        "backbone": backbone,
        "weights": weights,
        "fps": 5,
        "window_s": steps / 5,
        "steps": steps,
        "padding": "start",
        "labels_sha256": "abc",
        "clip_ids": list(ids),
        "valid_lengths": valid,
    }
    write_store(directory, features, index)
    return features


def test_round_trip_is_memory_mapped(tmp_path):
    features = _store(tmp_path / "s", ["a", "b", "c"], width=4)
    store = open_store(tmp_path / "s")
    assert isinstance(store.features, np.memmap)
    assert np.array_equal(store.features, features)
    assert store.ids == ["a", "b", "c"] and store.width == 4 and store.steps == 6
    assert list(store.rows(["c", "a"])) == [2, 0]
    with pytest.raises(StoreError, match="not in the store"):
        store.rows(["zz"])


def test_index_and_array_that_disagree_are_refused(tmp_path):
    _store(tmp_path / "s", ["a", "b", "c"], width=4)
    np.save(tmp_path / "s" / FEATURES, np.zeros((2, 6, 4), np.float32))
    with pytest.raises(
        StoreError, match=r"features.npy: index and array disagree: array shape \[2, 6, 4\]"
    ):
        open_store(tmp_path / "s")


def test_a_same_shape_modified_array_fails_the_hash(tmp_path):
    _store(tmp_path / "s", ["a", "b"], width=4)
    np.save(tmp_path / "s" / FEATURES, np.ones((2, 6, 4), np.float32))
    with pytest.raises(StoreError, match="SHA-256 differs"):
        open_store(tmp_path / "s")
    assert open_store(tmp_path / "s", verify=False).features.sum() == 2 * 6 * 4


def test_truncated_array_and_missing_index(tmp_path):
    _store(tmp_path / "s", ["a", "b"], width=4)
    path = tmp_path / "s" / FEATURES
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(StoreError, match=r"features\.npy"):
        open_store(tmp_path / "s")
    (tmp_path / "s" / INDEX).unlink()
    with pytest.raises(StoreError, match=r"index\.json: missing"):
        open_store(tmp_path / "s")


def test_ids_and_rows_must_agree_on_write(tmp_path):
    with pytest.raises(StoreError, match="2 ids"):
        write_store(
            tmp_path / "s",
            np.zeros((3, 2, 2)),
            {"clip_ids": ["a", "b"], "valid_lengths": [2, 2, 2]},
        )


def test_fusion_concatenates_common_clips(tmp_path):
    a = _store(tmp_path / "a", ["1", "2", "3"], width=4, backbone="vjepa2", valid=[6, 4, 6])
    b = _store(tmp_path / "b", ["3", "1"], width=3, backbone="dinov3_b", seed=1, valid=[5, 6])
    index = fuse_stores(
        [open_store(tmp_path / "a"), open_store(tmp_path / "b")], "fused", tmp_path / "f"
    )
    fused = open_store(tmp_path / "f")
    assert fused.ids == ["1", "3"] and fused.width == 7
    assert np.array_equal(fused.features[0], np.concatenate([a[0], b[1]], axis=1))
    assert list(fused.valid_lengths) == [6, 5]
    assert np.all(fused.features[1, :1] == 0)  # the shorter valid length wins; padding is zero
    assert [c["backbone"] for c in index["components"]] == ["vjepa2", "dinov3_b"]
    assert index["skipped"] == [{"id": "2", "reason": "missing from a component store"}]
    assert json.loads((tmp_path / "f" / INDEX).read_text())["weights"] == "random"


def test_fusion_refuses_mismatched_windows(tmp_path):
    _store(tmp_path / "a", ["1"], width=2)
    _store(tmp_path / "b", ["1"], width=2, steps=5)
    with pytest.raises(StoreError, match=r"has window_s=1\.0 but"):
        fuse_stores([open_store(tmp_path / "a"), open_store(tmp_path / "b")], "f", tmp_path / "f")
