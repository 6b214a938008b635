"""The shared decoded-frames cache on real generated MP4s: its frame times, its
frames (the backbones' own resize, rounded), features equal to decoding per
backbone up to that rounding, bad clips skipped with the same reasons, resume
after an interruption, and caches that do not fit an extraction."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from expsearch.cli import main
from expsearch.data.sources import step_times, valid_steps
from expsearch.data.splits import split_source
from expsearch.data.synthetic import generate
from expsearch.features import extract as extract_module
from expsearch.features import frames as frames_module
from expsearch.features.backbones import BACKBONES, build_backbone, squash, squash_uint8, to_pixels
from expsearch.features.extract import ExtractionError, extract_store, load_window
from expsearch.features.frames import (
    FrameCacheError,
    decode_frames,
    decoded_rate,
    frame_files,
    frame_plan,
    open_frames,
    positions,
)
from expsearch.features.specs import input_size
from expsearch.features.store import open_store

from .conftest import ROOT
from .test_extract import _reasons

NAMES = list(BACKBONES)
FPS, WINDOW_S = 5.0, 6.0
# The one difference between the two paths is the cache's uint8 rounding of the
# resized frames (at most half a grey level). Measured on these clips, it moves a
# step's feature vector by a median 0.2-0.9 % and at most 2.1 % (convnext) of its
# norm, the same order as the bf16 autocast that every GPU extraction applies
# (0.4-0.7 % median against fp32 on the same frames).
TOLERANCE = 0.04


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, n=8, seed=3, progress=False)
    clips = pd.read_csv(root / "train.csv", dtype={"id": str})
    clips["path"] = [str(root / "videos" / f"{clip}.mp4") for clip in clips["id"]]
    clips["pool"] = "train"
    return root, clips[["id", "path", "target", "time_of_event", "time_of_alert", "pool"]]


@pytest.fixture(scope="module")
def cache(dataset, tmp_path_factory):
    """The cache of every backbone (random weights: 56 and 64 px) for the clips."""
    _, clips = dataset
    out = tmp_path_factory.mktemp("frames")
    decode_frames(clips, out, frame_plan(NAMES, "random"), fps=FPS, window_s=WINDOW_S,
                  progress=False)  # fmt: skip
    return out


def _extract(clips, out, backbone, **kw):
    return extract_store(clips, backbone, out, weights="random", batch_size=3, progress=False, **kw)


@pytest.mark.parametrize("end", [8.0, 7.3, 6.0, 2.0, 0.05, 12.345678])
@pytest.mark.parametrize(("fps", "window_s"), [(5.0, 6.0), (5.0, 4.0), (10.0, 3.0), (2.5, 6.0)])
def test_one_frame_per_step_times_are_the_odd_two_frame_times(end, fps, window_s):
    """The cache decodes at 2 frames per step; the frame models read every second
    frame from the second on, and get exactly the times they would compute."""
    one, two = step_times(end, window_s, fps, 1), step_times(end, window_s, fps, 2)
    assert np.array_equal(one, two[1::2])
    steps = round(window_s * fps)
    assert np.array_equal(positions(1, 2, steps), np.arange(1, 2 * steps, 2))
    assert np.array_equal(positions(2, 2, steps), np.arange(2 * steps))
    # Other multiples line up too (exactly for powers of two, to rounding otherwise).
    for k, decoded in [(1, 4), (2, 4), (1, 3), (3, 6), (2, 6)]:
        wanted = step_times(end, window_s, fps, k)
        np.testing.assert_allclose(
            step_times(end, window_s, fps, decoded)[positions(k, decoded, steps)], wanted,
            rtol=0, atol=1e-12,
        )  # fmt: skip
    # The valid steps differ per backbone (a 2-frame step needs its earlier frame too).
    assert valid_steps(one, 1) >= valid_steps(two, 2)


def test_the_plan_has_one_size_per_input_size_and_the_lcm_rate():
    assert frame_plan(NAMES, "random") == {56: [1], 64: [1, 2]}
    assert frame_plan(NAMES, "pretrained") == {224: [1], 256: [2]}
    assert frame_plan(["dinov2_b", "siglip2"], "pretrained") == {224: [1]}
    assert decoded_rate({224: [1], 256: [2]}) == 2 and decoded_rate({"64": ["1"]}) == 1
    files = frame_files("results/frames", {256: [2], 224: [1]})
    assert files == {
        "index": "results/frames/index.json",
        "frames": ["results/frames/frames-224.npy", "results/frames/frames-256.npy"],
        "skipped": "results/frames/skipped.csv",
    }
    for name in NAMES:  # the sizes come without building a model; they must agree
        assert build_backbone(name, "random").input_size == input_size(name, "random")


def test_cached_frames_are_the_backbones_resize_of_its_own_frames_rounded(dataset, cache):
    _, clips = dataset
    index = json.loads((cache / "index.json").read_text())
    assert index["frames_per_step"] == 2 and index["steps"] == 30
    assert index["sizes"]["56"]["positions"] == list(range(1, 60, 2))  # dinov2 only: odd
    assert index["sizes"]["64"]["positions"] == list(range(60))
    assert index["clip_ids"] == list(clips["id"]) and index["skipped"] == []
    row = next(clips.itertuples(index=False))
    for name, size in [("vjepa2", 64), ("siglip2", 64), ("dinov2_b", 56)]:
        k = BACKBONES[name].frames_per_step
        native, valid = load_window(row, WINDOW_S, FPS, k)
        cached, cached_valid = open_frames(cache).loader(
            clips, frames_per_step=k, size=size, fps=FPS, window_s=WINDOW_S
        )(row)
        assert cached_valid == valid and cached.shape == (30 * k, size, size, 3)
        assert np.array_equal(cached, squash_uint8(native, size))
        exact = squash(to_pixels(torch.from_numpy(native)[None]), size)  # what encode computes
        rounding = (torch.from_numpy(cached).permute(0, 3, 1, 2) / 255 - exact).abs().max()
        assert float(rounding) <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_features_from_the_cache_equal_decoding_per_backbone(
    dataset, cache, tmp_path, monkeypatch, name
):
    """Bit for bit when the per-backbone path gets the same rounding; within the
    rounding's TOLERANCE of today's per-backbone features."""
    _, clips = dataset
    _extract(clips, tmp_path / "shared", name, frames=cache)
    _extract(clips, tmp_path / "videos", name)
    size = input_size(name, "random")
    real_load = extract_module.load_window

    def rounded_load(*args):  # the videos' frames, resized and rounded as the cache does
        frames, valid = real_load(*args)
        return squash_uint8(frames, size), valid

    monkeypatch.setattr(extract_module, "load_window", rounded_load)
    _extract(clips, tmp_path / "rounded", name)
    shared, videos, rounded = (open_store(tmp_path / d) for d in ("shared", "videos", "rounded"))
    assert shared.index["decode"] == "shared" and videos.index["decode"] == "per_backbone"
    assert shared.ids == videos.ids == list(clips["id"])
    assert shared.valid_lengths.tolist() == videos.valid_lengths.tolist()
    assert np.array_equal(shared.features, rounded.features)
    difference = np.linalg.norm(shared.features - videos.features, axis=-1)
    assert (difference <= TOLERANCE * np.linalg.norm(videos.features, axis=-1) + 1e-6).all()


def test_bad_clips_are_skipped_by_every_extraction_with_the_same_reasons(dataset, tmp_path):
    root, clips = dataset
    bad = clips.copy()
    data = (root / "videos" / f"{bad.loc[0, 'id']}.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    bad.loc[0, "path"] = str(tmp_path / "cut.mp4")  # truncated
    bad.loc[1, "path"] = ""  # no video
    bad.loc[2, ["time_of_event", "time_of_alert"]] = [9.5, 9.0]  # past the end of 8 s
    bad.loc[3, ["time_of_event", "time_of_alert"]] = [float("nan"), -1.0]  # before the start
    # 0.05 s: one step for a frame model, none for vjepa2 (its steps start 0.1 s earlier)
    bad.loc[4, ["time_of_event", "time_of_alert"]] = [0.5, 0.05]
    decode_frames(bad, tmp_path / "frames", frame_plan(["vjepa2", "dinov2_b"], "random"),
                  fps=FPS, window_s=WINDOW_S, progress=False)  # fmt: skip
    cached = pd.read_csv(tmp_path / "frames" / "skipped.csv", dtype={"id": str})
    assert list(cached["id"]) == list(bad["id"][:4])  # the frame models still need clip 4
    for name in ("vjepa2", "dinov2_b"):
        _extract(bad, tmp_path / "shared" / name, name, frames=tmp_path / "frames",
                 max_skipped_fraction=0.7)  # fmt: skip
        _extract(bad, tmp_path / "videos" / name, name, max_skipped_fraction=0.7)
        shared, videos = _reasons(tmp_path / "shared" / name), _reasons(tmp_path / "videos" / name)
        assert shared == videos
        assert list(shared) == list(bad["id"][: 5 if name == "vjepa2" else 4])
        assert open_store(tmp_path / "shared" / name).ids == list(bad["id"][len(shared) :])
    assert "before the video starts" in _reasons(tmp_path / "shared" / "vjepa2")[bad.loc[4, "id"]]
    # The limit on skipped clips still holds, with the per-backbone message.
    errors = []
    for decode, frames in (("shared", tmp_path / "frames"), ("videos", None)):
        with pytest.raises(ExtractionError) as info:
            _extract(bad, tmp_path / "limit" / decode, "dinov2_b", frames=frames)
        errors.append(str(info.value).replace(str(tmp_path / "limit" / decode), "OUT"))
    assert errors[0] == errors[1] and "4 of 8 clips skipped (50%)" in errors[0]


def test_decoding_resumes_after_an_interruption(dataset, cache, tmp_path, monkeypatch):
    _, clips = dataset
    plan = frame_plan(NAMES, "random")
    decoded: list[str] = []
    real_read = frames_module.read_frames_at

    def dying(path, times):
        if len(decoded) == 5:
            raise KeyboardInterrupt  # killed while decoding the sixth clip
        decoded.append(path)
        return real_read(path, times)

    monkeypatch.setattr(frames_module, "read_frames_at", dying)
    with pytest.raises(KeyboardInterrupt):
        decode_frames(clips, tmp_path, plan, fps=FPS, window_s=WINDOW_S, workers=1,
                      flush_every=2, progress=False)  # fmt: skip
    assert not (tmp_path / "index.json").exists()  # not a cache until it is complete
    decoded.clear()

    def counting(path, times):
        decoded.append(path)
        return real_read(path, times)

    monkeypatch.setattr(frames_module, "read_frames_at", counting)
    decode_frames(clips, tmp_path, plan, fps=FPS, window_s=WINDOW_S, workers=1, flush_every=2,
                  progress=False)  # fmt: skip
    assert len(decoded) == len(clips) - 4  # two records of two clips were kept
    for name in ("frames-56.npy", "frames-64.npy"):
        assert np.array_equal(np.load(tmp_path / name), np.load(cache / name))
    assert not (tmp_path / ".partial").exists()
    # Another window starts over instead of mixing frames.
    decoded.clear()
    decode_frames(clips, tmp_path / "other", plan, fps=FPS, window_s=4.0, progress=False)
    assert len(decoded) == len(clips)


def test_a_cache_that_does_not_fit_is_refused_before_anything_is_written(dataset, cache, tmp_path):
    _, clips = dataset
    moved = clips.copy()
    moved.loc[0, "time_of_alert"] = 6.5  # another window end than the cache's
    with pytest.raises(FrameCacheError, match="other videos or label times"):
        _extract(moved, tmp_path / "a", "dinov2_b", frames=cache)
    with pytest.raises(FrameCacheError, match=r"window_s=6\.0, not 4\.0"):
        extract_store(clips, "dinov2_b", tmp_path / "b", window_s=4.0, frames=cache)
    small = tmp_path / "small"
    decode_frames(clips, small, frame_plan(["vjepa2"], "random"), fps=FPS, window_s=WINDOW_S,
                  progress=False)  # fmt: skip
    with pytest.raises(FrameCacheError, match="no frames at 56 px"):
        _extract(clips, tmp_path / "c", "dinov2_b", frames=small)
    with pytest.raises(FrameCacheError, match="no decoded-frames cache"):
        _extract(clips, tmp_path / "d", "dinov2_b", frames=tmp_path / "nowhere")
    assert not any((tmp_path / name).exists() for name in "abcd")
    # A frame model reads the 64 px frames of a vjepa2-only cache: its times are there.
    _extract(clips, tmp_path / "e", "siglip2", frames=small)
    assert open_store(tmp_path / "e").ids == list(clips["id"])


def test_the_frames_file_a_workflow_declares_is_the_one_read(dataset, cache, tmp_path):
    _, clips = dataset
    row = next(clips.itertuples(index=False))
    read = dict(clips=clips, frames_per_step=1, size=64, fps=FPS, window_s=WINDOW_S)
    declared = tmp_path / "elsewhere" / "frames-64.npy"
    declared.parent.mkdir()
    original = np.load(cache / "frames-64.npy")
    np.save(declared, np.zeros_like(original))  # same shape, other pixels
    frames, _ = open_frames(cache).loader(**read, array=declared)(row)
    assert not frames.any()  # the declared file, not the index's neighbour
    frames, _ = open_frames(cache).loader(**read)(row)
    assert frames.any()
    with pytest.raises(FrameCacheError, match=r"64 px frames in frames-64\.npy"):
        open_frames(cache).loader(**read, array=cache / "frames-56.npy")
    declared.write_bytes(b"not an array")
    with pytest.raises(FrameCacheError, match=r"elsewhere/frames-64\.npy: cannot read"):
        open_frames(cache).loader(**read, array=declared)


def test_an_extraction_does_not_resume_from_chunks_of_other_settings(
    dataset, cache, tmp_path, monkeypatch
):
    _, clips = dataset
    reference = tmp_path / "ref"
    _extract(clips, reference, "dinov2_b", frames=cache)
    real_encode = extract_module._encode
    calls = []

    def dying(*args):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real_encode(*args)

    monkeypatch.setattr(extract_module, "_encode", dying)
    with pytest.raises(KeyboardInterrupt):
        _extract(clips, tmp_path / "s", "dinov2_b", seed=1, frames=cache)  # another seed
    monkeypatch.setattr(extract_module, "_encode", real_encode)
    _extract(clips, tmp_path / "s", "dinov2_b", frames=cache)
    assert np.array_equal(open_store(tmp_path / "s").features, open_store(reference).features)


def test_the_cli_decodes_once_and_extracts_from_the_cache(dataset, tmp_path, capsys):
    root, _ = dataset
    split = tmp_path / "split"
    split_source("synthetic", root / "train.csv", root / "videos",
                 {"train": 0.5, "val": 0.25, "test": 0.25}, 0, split / "clips.csv",
                 split / "m.json")  # fmt: skip
    paths = ["--params", str(ROOT / "params.yaml"), "--clips", str(split / "clips.csv"),
             "--manifest", str(split / "m.json"), "--labels", str(root / "train.csv")]  # fmt: skip
    assert main(["features", "decode", *paths, "--out", str(tmp_path / "frames")]) == 0
    assert "frames: 8 of 8 clips at 56 px, 64 px" in capsys.readouterr().out
    store = tmp_path / "vjepa2"
    code = main(["features", "extract", *paths, "--backbone", "vjepa2", "--out", str(store),
                 "--frames", str(tmp_path / "frames")])  # fmt: skip
    assert code == 0 and open_store(store).index["decode"] == "shared"
    assert len(open_store(store).ids) == 8


def test_decoding_imports_no_transformers_and_keeps_torch_threads(dataset, tmp_path):
    """The decoding job needs the resize, not the models: transformers costs about
    3 s of its start. Its worker threads run torch single-threaded (torch's own
    pool on top oversubscribed the cores) and leave the caller's setting as it was."""
    _, clips = dataset
    table = tmp_path / "clips.csv"
    clips.to_csv(table, index=False)
    script = (
        "import sys, pandas as pd, torch\n"
        "from expsearch.features.frames import decode_frames\n"
        "torch.set_num_threads(3)\n"
        f"clips = pd.read_csv({str(table)!r}, dtype={{'id': str}})\n"
        f"decode_frames(clips, {str(tmp_path / 'frames')!r}, {{64: [1]}}, fps=5.0,\n"
        "              window_s=6.0, workers=2, progress=False)\n"
        "print('transformers' in sys.modules, torch.get_num_threads())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    assert done.stdout.split()[-2:] == ["False", "3"], done.stderr
    assert (tmp_path / "frames" / "index.json").is_file()
