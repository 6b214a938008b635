"""Split manifests: stratified by video id, hashed, rechecked, test sealed."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from expsearch.data.splits import SplitError, load_manifest, make_split, write_manifest

FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


@pytest.fixture
def labelled(tmp_path):
    clips = pd.DataFrame(
        {"id": [f"{i:05d}" for i in range(203)], "target": [int(i % 3 == 0) for i in range(203)]}
    )
    labels = tmp_path / "train.csv"
    clips.to_csv(labels, index=False)
    return clips, labels


def test_split_is_stratified_disjoint_complete_and_seeded(labelled):
    clips, labels = labelled
    manifest = make_split(clips, FRACTIONS, seed=1, labels_file=labels)
    ids = [clip for split in ("train", "val", "test") for clip in manifest.ids(split)]
    assert sorted(ids) == sorted(clips["id"]) and len(set(ids)) == len(ids)
    positives = clips.set_index("id")["target"]
    for split, fraction in FRACTIONS.items():
        chosen = positives.loc[list(manifest.ids(split))]
        assert abs(len(chosen) - fraction * len(clips)) <= 2
        assert abs(chosen.mean() - positives.mean()) < 0.05  # stratified
    assert make_split(clips, FRACTIONS, seed=1, labels_file=labels) == manifest
    assert make_split(clips, FRACTIONS, seed=2, labels_file=labels).splits != manifest.splits


def test_round_trip_rechecks_the_labels_hash(labelled, tmp_path):
    clips, labels = labelled
    path = tmp_path / "manifest.json"
    write_manifest(path, make_split(clips, FRACTIONS, seed=0, labels_file=labels))
    assert load_manifest(path, labels_file=labels).ids("val")
    labels.write_text(labels.read_text().replace("00003,1", "00003,0"))
    with pytest.raises(SplitError, match=r"labels file .* changed"):
        load_manifest(path, labels_file=labels)


def test_an_edited_manifest_is_refused(labelled, tmp_path):
    clips, labels = labelled
    path = tmp_path / "manifest.json"
    write_manifest(path, make_split(clips, FRACTIONS, seed=0, labels_file=labels))
    document = json.loads(path.read_text())
    document["splits"]["test"].append(document["splits"]["train"].pop())
    path.write_text(json.dumps(document))
    with pytest.raises(SplitError, match="modified after it was written"):
        load_manifest(path)


def test_overlap_between_splits_is_refused_even_with_a_valid_hash(labelled, tmp_path):
    clips, labels = labelled
    manifest = make_split(clips, FRACTIONS, seed=0, labels_file=labels)
    leaked = type(manifest)(
        splits={**manifest.splits, "val": (*manifest.ids("val"), manifest.ids("test")[0])},
        labels_sha256=manifest.labels_sha256,
        seed=0,
        fractions=manifest.fractions,
    )
    path = tmp_path / "manifest.json"
    write_manifest(path, leaked)  # hash is consistent, the content is not
    with pytest.raises(SplitError, match="is in both 'val' and 'test'"):
        load_manifest(path)


def test_the_test_split_is_sealed(labelled):
    clips, labels = labelled
    manifest = make_split(clips, FRACTIONS, seed=0, labels_file=labels)
    assert len(manifest.labels(clips, "val")) == len(manifest.ids("val"))
    with pytest.raises(SplitError, match="sealed"):
        manifest.labels(clips, "test")
    assert len(manifest.labels(clips, "test", unseal=True)) == len(manifest.ids("test"))


def test_held_out_sets_are_sealed_and_must_be_disjoint(labelled):
    clips, labels = labelled
    manifest = make_split(
        clips, FRACTIONS, seed=0, labels_file=labels, held_out={"competition": ["x1", "x2"]}
    )
    assert manifest.ids("competition") == ("x1", "x2") and "competition" in manifest.sealed
    with pytest.raises(SplitError, match="shares ids"):
        make_split(
            clips, FRACTIONS, seed=0, labels_file=labels, held_out={"competition": ["00001"]}
        )


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ({"train": 0.9, "val": 0.2, "test": 0.1}, "sum to 1"),
        ({"train": 0.9, "val": 0.1}, "exactly"),
    ],
)
def test_bad_fractions(labelled, fractions, message):
    clips, labels = labelled
    with pytest.raises(SplitError, match=message):
        make_split(clips, fractions, seed=0, labels_file=labels)


def test_unreadable_manifest(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text("{not json")
    with pytest.raises(SplitError, match="cannot read"):
        load_manifest(path)


def _balanced(tmp_path, n: int):
    clips = pd.DataFrame(
        {"id": [f"{i:05d}" for i in range(n)], "target": [i % 2 for i in range(n)]}
    )
    labels = tmp_path / "small.csv"
    clips.to_csv(labels, index=False)
    return clips, labels


def test_a_split_that_leaves_the_test_set_empty_is_refused(tmp_path):
    # 6 + 6 clips at 0.8/0.1/0.1: each class rounds to 5/1/0, so test gets nothing.
    clips, labels = _balanced(tmp_path, 12)
    with pytest.raises(SplitError) as info:
        make_split(clips, FRACTIONS, seed=0, labels_file=labels)
    assert str(info.value) == (
        f"{labels}: the split of 12 clips leaves test empty (sizes: train 10, val 2, test 0; "
        "fractions: train 0.8, val 0.1, test 0.1); every split needs at least one clip: "
        "add clips or raise those fractions"
    )
    manifest = make_split(clips, {"train": 0.6, "val": 0.2, "test": 0.2}, 0, labels)
    assert [len(manifest.ids(split)) for split in ("train", "val", "test")] == [8, 2, 2]


def test_a_split_that_leaves_validation_empty_is_refused(tmp_path):
    clips, labels = _balanced(tmp_path, 4)
    with pytest.raises(SplitError, match=r"leaves val and test empty \(sizes: train 4, val 0"):
        make_split(clips, FRACTIONS, seed=0, labels_file=labels)
