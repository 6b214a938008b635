"""Feature extraction end to end on real generated MP4s: shapes, padding,
skipped videos and times with reasons, the limit on skipped clips, an
unknown backbone, resume after an interruption, fusion."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from expsearch.cli import EXIT_BAD_INPUT, main
from expsearch.data.splits import split_source
from expsearch.data.synthetic import generate
from expsearch.features import extract as extract_module
from expsearch.features.extract import ExtractionError, extract_store
from expsearch.features.fusion import fuse_stores
from expsearch.features.store import open_store

from .conftest import ROOT

FRACTIONS = {"train": 0.5, "val": 0.25, "test": 0.25}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, n=8, seed=3, progress=False)
    out = root / "split"
    split_source(
        "synthetic",
        root / "train.csv",
        root / "videos",
        FRACTIONS,
        0,
        out / "clips.csv",
        out / "m.json",
    )
    clips = pd.read_csv(out / "clips.csv", dtype={"id": str})
    clips["path"] = clips["path"].fillna("")
    return root, clips


def _extract(clips, out, backbone="dinov2_b", **kw):
    return extract_store(clips, backbone, out, weights="random", batch_size=3, progress=False, **kw)


@pytest.mark.parametrize("backbone", ["dinov2_b", "vjepa2"])
def test_store_shape_and_index(dataset, tmp_path, backbone):
    _, clips = dataset
    _extract(clips, tmp_path / backbone, backbone=backbone)
    store = open_store(tmp_path / backbone)
    assert store.features.shape[:2] == (len(clips), 30)  # 6 s x 5 fps, also for 2-frame tubelets
    assert store.ids == list(clips["id"])
    assert store.index["weights"] == "random" and store.index["backbone"] == backbone
    assert np.isfinite(store.features).all()
    positives = clips["target"] == 1
    # positive windows end at the alert (>= 6 s): no padding; negatives end at 8 s
    assert (store.valid_lengths >= 29).all() and positives.any()


def test_padding_is_zero_and_counted(dataset, tmp_path):
    _, clips = dataset
    short = clips.copy()
    short["time_of_alert"] = 2.0  # a window that starts 4 s before the video
    _extract(short, tmp_path / "s")
    store = open_store(tmp_path / "s")
    assert (store.valid_lengths == 11).all()
    assert np.all(store.features[:, :19] == 0) and np.any(store.features[:, 19:] != 0)


def test_bad_videos_are_skipped_with_their_reason(dataset, tmp_path):
    root, clips = dataset
    broken = clips.copy()
    source = root / "videos" / f"{broken.loc[0, 'id']}.mp4"
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    broken.loc[0, "path"] = str(truncated)
    broken.loc[1, "path"] = ""
    _extract(broken, tmp_path / "s", max_skipped_fraction=0.25)  # 2 of 8
    store = open_store(tmp_path / "s")
    assert store.ids == list(broken["id"][2:])
    reasons = {row["id"]: row["reason"] for row in store.index["skipped"]}
    assert set(reasons) == set(broken["id"][:2])
    assert "truncated.mp4" in reasons[broken.loc[0, "id"]]
    assert "not found" in reasons[broken.loc[1, "id"]]
    report = pd.read_csv(tmp_path / "s" / "skipped.csv", dtype={"id": str})
    assert list(report["id"]) == list(broken["id"][:2])


def test_resume_after_an_interruption_encodes_only_the_rest(dataset, tmp_path, monkeypatch):
    _, clips = dataset
    reference = tmp_path / "ref"
    _extract(clips, reference)

    encoded: list[int] = []
    real_encode = extract_module._encode

    def counting(model, frames, valid):
        if len(encoded) == 1:
            raise KeyboardInterrupt  # killed during the second batch
        encoded.append(len(frames))
        return real_encode(model, frames, valid)

    monkeypatch.setattr(extract_module, "_encode", counting)
    with pytest.raises(KeyboardInterrupt):
        _extract(clips, tmp_path / "s")
    assert not (tmp_path / "s" / "index.json").exists()
    assert encoded == [3]

    encoded.clear()
    monkeypatch.setattr(
        extract_module, "_encode", lambda *a: (encoded.append(len(a[1])), real_encode(*a))[1]
    )
    _extract(clips, tmp_path / "s")
    assert sum(encoded) == len(clips) - 3  # the first batch was not recomputed
    assert np.array_equal(open_store(tmp_path / "s").features, open_store(reference).features)
    assert not (tmp_path / "s" / ".partial").exists()


def test_fusion_of_extracted_stores(dataset, tmp_path):
    _, clips = dataset
    _extract(clips, tmp_path / "a", backbone="dinov2_b")
    _extract(clips, tmp_path / "b", backbone="siglip2")
    a, b = open_store(tmp_path / "a"), open_store(tmp_path / "b")
    fuse_stores([a, b], "fused", tmp_path / "f")
    fused = open_store(tmp_path / "f")
    assert fused.width == a.width + b.width and fused.ids == a.ids


def test_decoding_runs_only_a_bounded_number_of_clips_ahead(dataset, tmp_path, monkeypatch):
    """Full-HD windows are ~170 MB each: the decoder may not race ahead of a
    slow encoder (here 0.2 s per batch) and pile clips up in memory."""
    _, clips = dataset
    decoded, encoded, waiting = [], [0], []
    real_load, real_encode = extract_module.load_window, extract_module._encode

    def load(row, *args):
        decoded.append(row.id)
        return real_load(row, *args)

    def slow_encode(model, frames, valid):
        time.sleep(0.2)
        waiting.append(len(decoded) - encoded[0])  # decoded, not yet encoded (this batch too)
        encoded[0] += len(frames)
        return real_encode(model, frames, valid)

    monkeypatch.setattr(extract_module, "load_window", load)
    monkeypatch.setattr(extract_module, "_encode", slow_encode)
    extract_store(clips, "dinov2_b", tmp_path / "s", batch_size=1, decode_workers=1, progress=False)
    # batch (1) + look-ahead (batch + workers = 2) + the clip being decoded (1)
    assert max(waiting) <= 4 and len(decoded) == len(clips)


def _reasons(store_dir) -> dict[str, str]:
    report = pd.read_csv(store_dir / "skipped.csv", dtype={"id": str})
    return dict(zip(report["id"], report["reason"], strict=True))


def test_empty_non_video_and_truncated_files_are_skipped_each_with_its_reason(dataset, tmp_path):
    _, clips = dataset
    bad = clips.copy()
    data = Path(bad.loc[2, "path"]).read_bytes()
    files = {"empty.mp4": b"", "notes.mp4": b"not a video", "cut.mp4": data[: len(data) // 2]}
    for row, (name, content) in enumerate(files.items()):
        (tmp_path / name).write_bytes(content)
        bad.loc[row, "path"] = str(tmp_path / name)
    _extract(bad, tmp_path / "s", max_skipped_fraction=0.4)  # 3 of 8
    reasons = _reasons(tmp_path / "s")
    assert list(reasons) == list(bad["id"][:3])
    empty, notes, cut = reasons.values()
    assert empty == f"{tmp_path / 'empty.mp4'}: cannot open: empty file (0 bytes)"
    assert notes.startswith(f"{tmp_path / 'notes.mp4'}: cannot open: not a video: ")
    assert re.search(r"cut\.mp4: truncated: .*the file has \d+ of the \d+ bytes its index", cut)
    assert open_store(tmp_path / "s").ids == list(bad["id"][3:])  # the rest is all there


def test_times_past_the_end_of_the_video_are_skipped_with_the_reason(dataset, tmp_path):
    """Such clips were stored as if the times fitted (the window clamped to the
    end, or, for a window before the start, zero valid steps) and counted as
    extracted."""
    _, clips = dataset
    wrong = clips.copy()
    wrong.loc[0, ["time_of_event", "time_of_alert"]] = [9.5, 9.0]  # the videos last 8 s
    wrong.loc[1, ["time_of_event", "time_of_alert"]] = [float("nan"), -1.0]  # not from read_labels
    _extract(wrong, tmp_path / "s", max_skipped_fraction=0.25)
    reasons = _reasons(tmp_path / "s")
    first, second = wrong["id"][:2]
    assert reasons[first] == (
        f"{wrong.loc[0, 'path']}: time_of_event = 9.5 s and time_of_alert = 9 s "
        "past the end of the video (8.000 s)"
    )
    assert (
        reasons[second]
        == f"{wrong.loc[1, 'path']}: the window ends at -1 s, before the video starts"
    )
    store = open_store(tmp_path / "s")
    assert store.ids == list(wrong["id"][2:]) and (store.valid_lengths >= 29).all()
    assert [row["id"] for row in store.index["skipped"]] == [first, second]


def test_too_many_skipped_clips_fail_and_keep_what_was_done(dataset, tmp_path, monkeypatch):
    """Relative video paths read from another working directory used to give an
    empty store and exit 0. Now the run fails naming the count, the limit and
    the first reasons; skipped.csv says why for every clip; the encoded clips
    are kept, and a rerun with the paths fixed encodes only the others."""
    root, clips = dataset
    relative = clips.copy()
    relative.loc[:2, "path"] = [os.path.relpath(p, root) for p in clips["path"][:3]]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ExtractionError) as info:
        _extract(relative, tmp_path / "s")
    ids = list(clips["id"])
    first = f"{ids[0]}: {relative.loc[0, 'path']}: cannot open: file not found"
    assert str(info.value) == (
        "features dinov2_b: 3 of 8 clips skipped (38%), more than the limit of 0.2 "
        f"(features.max_skipped_fraction); no store written. Every skipped clip and why: "
        f"{tmp_path / 's' / 'skipped.csv'}. First reasons: {first}; "
        f"{ids[1]}: {relative.loc[1, 'path']}: cannot open: file not found; "
        f"{ids[2]}: {relative.loc[2, 'path']}: cannot open: file not found"
    )
    assert list(_reasons(tmp_path / "s")) == ids[:3]
    assert not (tmp_path / "s" / "index.json").exists()

    encoded: list[int] = []
    real_encode = extract_module._encode
    monkeypatch.setattr(
        extract_module, "_encode", lambda *a: (encoded.append(len(a[1])), real_encode(*a))[1]
    )
    _extract(clips, tmp_path / "s")
    assert sum(encoded) == 3 and open_store(tmp_path / "s").ids == ids
    assert _reasons(tmp_path / "s") == {}


def test_a_run_that_skips_every_clip_fails_whatever_the_limit(dataset, tmp_path):
    _, clips = dataset
    gone = clips.assign(path="")
    with pytest.raises(ExtractionError, match=r"8 of 8 clips skipped \(100%\), nothing to store"):
        _extract(gone, tmp_path / "s", max_skipped_fraction=1.0)
    assert len(_reasons(tmp_path / "s")) == 8


def test_an_unknown_backbone_leaves_nothing_behind(dataset, tmp_path, capsys):
    root, clips = dataset
    with pytest.raises(ValueError, match="unknown backbone 'vjepa3'"):
        _extract(clips, tmp_path / "lib" / "vjepa3", backbone="vjepa3")
    out = tmp_path / "cli" / "vjepa3"
    code = main(
        ["features", "extract", "--params", str(ROOT / "params.yaml"), "--backbone", "vjepa3",
         "--clips", str(root / "split" / "clips.csv"), "--manifest", str(root / "split" / "m.json"),
         "--labels", str(root / "train.csv"), "--out", str(out)]
    )  # fmt: skip
    assert code == EXIT_BAD_INPUT and "unknown backbone 'vjepa3'" in capsys.readouterr().err
    assert not (tmp_path / "lib").exists() and not (tmp_path / "cli").exists()
