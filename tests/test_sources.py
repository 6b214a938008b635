"""Clip tables of the data sources, and where each clip's window lies."""

from __future__ import annotations

import numpy as np
import pytest

from expsearch.data.sources import (
    DataError,
    nexar_competition,
    read_clip_table,
    read_clips,
    step_times,
    valid_steps,
    window_end,
)


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_nexar_layout_with_competition_test_set(tmp_path):
    (tmp_path / "train.csv").write_text(
        "id,time_of_event,time_of_alert,target\n00001,20.1,19.5,1\n00002,,,0\n42,,,0\n"
    )
    _touch(tmp_path / "train/00001.mp4")
    _touch(tmp_path / "train/00042.mp4")  # numeric id 42 -> zero-padded file name
    (tmp_path / "solution.csv").write_text("id,target,group,Usage\n00100,1,x,Public\n")
    _touch(tmp_path / "test/00100.mp4")
    competition = nexar_competition(tmp_path)
    assert competition == {
        "videos": str(tmp_path / "test"),
        "labels": str(tmp_path / "solution.csv"),
    }
    clips = read_clips("nexar", tmp_path / "train.csv", tmp_path / "train", competition)
    assert list(clips["id"]) == ["00001", "00002", "42", "00100"]
    assert list(clips["pool"]) == ["train", "train", "train", "competition"]
    assert clips.loc[1, "path"] == ""  # missing video: kept, extraction reports it
    assert clips.loc[2, "path"].endswith("00042.mp4")
    assert clips.loc[0, "time_of_alert"] == 19.5 and np.isnan(clips.loc[1, "time_of_alert"])


def test_folder_source_needs_only_id_and_target(tmp_path):
    (tmp_path / "labels.csv").write_text("id,target\nclipA,1\nclipB,0\n")
    _touch(tmp_path / "vids/clipA.mov")
    clips = read_clips("folder", tmp_path / "labels.csv", tmp_path / "vids")
    assert clips.loc[0, "path"].endswith("clipA.mov") and clips["time_of_alert"].isna().all()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,target\n1,0\n", "missing column"),
        ("id,time_of_event,time_of_alert,target\n1,,,2\n", "target must be 0 or 1"),
        ("id,time_of_event,time_of_alert,target\n1,,,0\n1,,,1\n", "duplicate ids"),
    ],
)
def test_bad_labels_name_the_file(tmp_path, text, message):
    (tmp_path / "train.csv").write_text(text)
    with pytest.raises(DataError, match=message) as info:
        read_clips("nexar", tmp_path / "train.csv", tmp_path / "train")
    assert "train.csv" in str(info.value)


def test_competition_clips_are_nexar_only_and_found_only_when_complete(tmp_path):
    (tmp_path / "labels.csv").write_text("id,target\nclipA,1\n")
    (tmp_path / "test").mkdir()
    assert nexar_competition(tmp_path) == {}  # no solution.csv: no competition set
    (tmp_path / "solution.csv").write_text("id,target\n00100,1\n")
    with pytest.raises(DataError, match="Nexar set"):
        read_clips("folder", tmp_path / "labels.csv", tmp_path, nexar_competition(tmp_path))


def test_unknown_source(tmp_path):
    with pytest.raises(DataError, match="unknown data source"):
        read_clips("kinetics", tmp_path / "l.csv", tmp_path / "v")


def test_clip_table_round_trip(tmp_path):
    (tmp_path / "train.csv").write_text("id,time_of_event,time_of_alert,target\n007,,,0\n")
    clips = read_clips("synthetic", tmp_path / "train.csv", tmp_path / "videos")
    clips.to_csv(tmp_path / "clips.csv", index=False)
    back = read_clip_table(tmp_path / "clips.csv")
    assert back.loc[0, "id"] == "007" and back.loc[0, "path"] == ""


def test_window_ends_at_the_alert_or_the_video_end():
    assert window_end(19.5, 40.0) == 19.5
    assert window_end(float("nan"), 40.0) == 40.0
    assert window_end(45.0, 40.0) == 40.0


def test_step_times_and_padding():
    times = step_times(end_s=7.0, window_s=6.0, fps=5, frames_per_step=1)
    assert len(times) == 30 and times[-1] == 7.0 and np.allclose(np.diff(times), 0.2)
    assert valid_steps(times, 1) == 30
    early = step_times(end_s=2.0, window_s=6.0, fps=5, frames_per_step=1)
    assert valid_steps(early, 1) == 11  # 0.0, 0.2, ..., 2.0
    video = step_times(end_s=7.0, window_s=6.0, fps=5, frames_per_step=2)
    assert len(video) == 60 and np.allclose(np.diff(video), 0.1) and video[-1] == 7.0
    assert valid_steps(step_times(2.0, 6.0, 5, 2), 2) == 10
