"""The synthetic dashcam generator: determinism, per-clip regeneration, the
Nexar CSV layout, labels visible in the decoded pixels, looming ~ 1/TTC,
the fleet variant, and resuming an interrupted run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu

from expsearch.data.sources import read_clips, step_times, window_end
from expsearch.data.synthetic import (
    SCENARIOS,
    VARIANTS,
    Camera,
    Difficulty,
    clip_rng,
    generate,
    make_clip,
    plan_scenarios,
    render_clip,
)
from expsearch.data.synthetic import dataset as synthetic  # holds write_video, patched below
from expsearch.data.video import probe_video, read_frames_at

SEED = 0
N = 40
CAMERA = VARIANTS["default"].camera


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """40 default clips, rendered by two worker processes."""
    root = tmp_path_factory.mktemp("synthetic")
    table = generate(root, n=N, seed=SEED, progress=False, workers=2)
    return root, table


def test_csv_layout(dataset):
    root, table = dataset
    lines = (root / "train.csv").read_text().splitlines()
    assert lines[0] == "id,time_of_event,time_of_alert,target"
    labels = pd.read_csv(root / "train.csv", dtype={"id": str})
    pd.testing.assert_frame_equal(labels, table, check_dtype=False)
    assert list(labels["id"]) == [f"{i:05d}" for i in range(N)]
    positives, negatives = labels[labels["target"] == 1], labels[labels["target"] == 0]
    assert len(positives) == round(N * VARIANTS["default"].positive_fraction)
    assert negatives[["time_of_event", "time_of_alert"]].isna().all().all()
    assert sum(line.endswith(",,,0") for line in lines) == len(negatives)
    event, alert = positives["time_of_event"], positives["time_of_alert"]
    assert event.between(7.0, 7.8).all() and (alert >= 6.0).all()
    assert (event - alert).between(0.5 - 1e-9, 1.0 + 1e-9).all()
    assert np.allclose(event, event.round(3)) and np.allclose(alert, alert.round(3))
    scenarios = pd.read_csv(root / "scenarios.csv", dtype={"id": str})
    assert list(scenarios.columns) == ["id", "scenario"]
    assert list(scenarios["id"]) == list(labels["id"])
    assert ((scenarios["scenario"] == "collision") == (labels["target"] == 1)).all()
    assert set(scenarios["scenario"]) == set(SCENARIOS)
    # the pipeline's reader finds every video
    clips = read_clips("synthetic", root / "train.csv", root / "videos")
    assert (clips["path"] != "").all()
    info = probe_video(clips["path"].iloc[0])
    assert (info.width, info.height, info.fps, info.n_frames) == (160, 96, 10.0, 80)
    assert info.duration_s == pytest.approx(8.0)


def test_scenario_plan():
    plan = plan_scenarios(10, seed=3)
    assert plan.count("collision") == 5 and plan == plan_scenarios(10, seed=3)
    assert plan != plan_scenarios(10, seed=4)
    assert plan_scenarios(10, seed=3, positive_fraction=0.2).count("collision") == 2
    fleet = plan_scenarios(100, seed=0, variant="fleet")
    assert fleet.count("collision") == 30 and fleet.count("near_miss") == 35


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"default.*fleet"):
        generate(tmp_path, n=2, variant="dashboard")
    with pytest.raises(ValueError, match="n must be"):
        generate(tmp_path, n=0)
    with pytest.raises(ValueError, match="unknown scenario"):
        render_clip(clip_rng(0, 0), "crash", CAMERA, Difficulty())
    with pytest.raises(ValueError, match="even"):
        Camera("odd", 161, 96, 10.0, 90.0)
    with pytest.raises(ValueError, match="lighting"):
        Difficulty(lighting=2.0)


def test_render_is_determined_by_the_seed():
    first = render_clip(clip_rng(7, 3), "near_miss", CAMERA, Difficulty())
    again = render_clip(clip_rng(7, 3), "near_miss", CAMERA, Difficulty())
    other = render_clip(clip_rng(8, 3), "near_miss", CAMERA, Difficulty())
    assert np.array_equal(first.frames, again.frames)
    assert np.array_equal(first.object_size, again.object_size)
    assert not np.array_equal(first.frames, other.frames)
    assert first.frames.shape == (80, 96, 160, 3) and first.frames.dtype == np.uint8


def _folder_bytes(root):
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_generate_is_determined_by_the_seed(tmp_path):
    generate(tmp_path / "a", n=3, seed=5, progress=False)
    generate(tmp_path / "b", n=3, seed=5, progress=False)
    a, b = _folder_bytes(tmp_path / "a"), _folder_bytes(tmp_path / "b")
    assert a == b and "train.csv" in a and "videos/00002.mp4" in a
    # new settings in the same folder: every video is made again, not resumed
    generate(tmp_path / "b", n=3, seed=6, progress=False)
    c = _folder_bytes(tmp_path / "b")
    assert all(a[name] != c[name] for name in a if name.startswith("videos/"))


def test_a_clip_regenerates_alone(dataset, tmp_path):
    root, table = dataset
    scenarios = pd.read_csv(root / "scenarios.csv", dtype={"id": str})["scenario"]
    for index in (int(np.argmax(table["target"])), int(np.argmin(table["target"]))):
        clip_id = table["id"][index]
        clip = make_clip(tmp_path / "again.mp4", SEED, index, scenarios[index], CAMERA)
        assert (tmp_path / "again.mp4").read_bytes() == (
            root / "videos" / f"{clip_id}.mp4"
        ).read_bytes()
        assert clip.target == table["target"][index]
        if clip.target:
            assert clip.time_of_event == table["time_of_event"][index]
            assert clip.time_of_alert == table["time_of_alert"][index]
        decoded = read_frames_at(root / "videos" / f"{clip_id}.mp4", np.arange(80) / CAMERA.fps)
        assert np.abs(decoded.astype(int) - clip.frames).mean() < 8


def _lane_area(frames: np.ndarray, camera: Camera, thr: float = 30.0) -> np.ndarray:
    """Per frame, the fraction of the ego lane ahead (a trapezoid from 4 m to the
    horizon, fixed by the camera geometry: 2.4 m wide, at least 6 px) whose pixels
    differ strongly from the asphalt, taken from the nearest rows of the first frame."""
    height, width = frames.shape[1:3]
    rows = np.arange(height) + 0.5
    below = rows - camera.horizon * height
    depth = camera.focal_px * camera.mount_height_m / np.maximum(below, 1e-3)
    keep = (below > -2) & (depth > 4.0) & (rows < height * (1 - camera.hood) - 1)
    half = np.maximum(camera.focal_px * 1.2 / np.where(below > 0, depth, np.inf), 3.0)
    mask = keep[:, None] & (np.abs(np.arange(width) + 0.5 - width / 2) < half[:, None])
    pixels = frames[:, mask].astype(np.float32)
    asphalt = np.median(pixels[0][-max(10, mask.sum() // 5) :], axis=0)
    return (np.abs(pixels - asphalt).max(-1) > thr).mean(1)


def test_labels_are_visible_in_the_pixels(dataset):
    """What the classifier sees (5 fps, 6 s ending at the alert or the video end):
    the area of the ego lane covered by something grows more over the last 2 s
    for collisions than for negatives, but near misses overlap with collisions."""
    root, table = dataset
    scenarios = pd.read_csv(root / "scenarios.csv", dtype={"id": str})["scenario"]
    growth = []
    for row in table.itertuples():
        path = root / "videos" / f"{row.id}.mp4"
        times = step_times(window_end(row.time_of_alert, probe_video(path).duration_s), 6.0, 5, 1)
        area = _lane_area(read_frames_at(path, np.clip(times, 0.0, None)), CAMERA)
        growth.append(area[-1] - area[-11])
    growth = np.array(growth)
    positive = table["target"].to_numpy() == 1
    test = mannwhitneyu(growth[positive], growth[~positive], alternative="greater")
    auc = test.statistic / (positive.sum() * (~positive).sum())
    assert test.pvalue < 0.01, f"AUC {auc:.2f}, p {test.pvalue:.2g}"
    near_miss = (scenarios == "near_miss").to_numpy()
    assert near_miss.sum() >= 3
    assert growth[near_miss].max() > growth[positive].min(), "near misses trivially separable"


def test_object_size_grows_like_one_over_time_to_contact():
    kinds = set()
    for index in range(6):
        # Full speed: the object is far compared with the bumper offset below.
        clip = render_clip(clip_rng(11, index), "collision", CAMERA, Difficulty(speed=1.0))
        kinds.add(clip.kind)
        ttc = clip.time_of_event - np.arange(len(clip.frames)) / clip.fps
        # Contact is at the front bumper, 2.2 m ahead of the camera: size ~ 1 / distance
        # departs from 1 / TTC only in the last few hundred milliseconds (and, at lower
        # speeds, earlier: the offset then weighs more against v * TTC).
        seen = (ttc >= 0.25) & (ttc <= 2.0) & (clip.object_size > 0)
        assert seen.sum() >= 15, clip.kind
        product = clip.object_size[seen] * ttc[seen]
        assert product.max() / product.min() < 2.0, clip.kind
        assert np.all(np.diff(clip.object_size[seen]) > 0), clip.kind
    assert len(kinds) >= 2


def test_fleet_variant(tmp_path):
    default, fleet = VARIANTS["default"], VARIANTS["fleet"]
    assert (fleet.camera.width, fleet.camera.height) != (
        default.camera.width,
        default.camera.height,
    )
    assert fleet.camera.fps != default.camera.fps and fleet.camera.fov_deg != default.camera.fov_deg
    assert fleet.positive_fraction != default.positive_fraction
    assert dict(fleet.negative_mix) != dict(default.negative_mix)
    for camera in (default.camera, fleet.camera):
        assert camera.width % 2 == 0 and camera.height % 2 == 0
    table = generate(tmp_path, n=2, seed=1, variant="fleet", progress=False)
    assert table["target"].sum() == round(2 * fleet.positive_fraction)
    info = probe_video(tmp_path / "videos" / "00000.mp4")
    assert (info.width, info.height, info.fps) == (192, 108, 15.0)
    assert info.n_frames == 120


def test_resume_rewrites_only_the_missing_video(dataset, monkeypatch):
    root, table = dataset
    videos = root / "videos"
    missing = videos / f"{table['id'][3]}.mp4"
    original = missing.read_bytes()
    labels = (root / "train.csv").read_bytes()
    missing.unlink()
    written = []

    def recording_write_video(path, *args, **kwargs):
        written.append(path)
        return write_video(path, *args, **kwargs)

    write_video = synthetic.write_video
    monkeypatch.setattr(synthetic, "write_video", recording_write_video)
    again = generate(root, n=N, seed=SEED, progress=False)
    assert written == [missing]
    assert missing.read_bytes() == original
    assert (root / "train.csv").read_bytes() == labels
    pd.testing.assert_frame_equal(again, table)
