"""Clip tables of the data sources, and where each clip's window lies."""

from __future__ import annotations

import os

import numpy as np
import pytest

from expsearch.data.sources import (
    DataError,
    nexar_competition,
    past_the_end,
    read_clip_table,
    read_clips,
    read_labels,
    step_times,
    valid_steps,
    window_end,
)

HEADER = "id,time_of_event,time_of_alert,target\n"


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
        ("id,time_of_event,time_of_alert,target\n1,,,2\n", "target = '2': must be 0 or 1"),
        ("id,time_of_event,time_of_alert,target\n1,,,0\n1,,,1\n", "id = '1': duplicate of row 1"),
    ],
)
def test_bad_labels_name_the_file(tmp_path, text, message):
    (tmp_path / "train.csv").write_text(text)
    with pytest.raises(DataError, match=message) as info:
        read_clips("nexar", tmp_path / "train.csv", tmp_path / "train")
    assert "train.csv" in str(info.value)


def _label_error(tmp_path, rows: str) -> str:
    (tmp_path / "train.csv").write_text(HEADER + rows)
    with pytest.raises(DataError) as info:
        read_labels(tmp_path / "train.csv", times=True)
    return str(info.value)


def test_a_bad_target_names_its_row_and_only_its_row(tmp_path):
    # One word in the column made pandas read every target as text, and every
    # valid row was blamed beside the bad one.
    message = _label_error(tmp_path, "00001,7.5,7.0,1\n00002,,,yes\n00003,,,0\n")
    assert message.startswith(f"{tmp_path / 'train.csv'}: 1 bad label value(s)")
    assert "row 2 (id '00002'): target = 'yes': must be 0 or 1" in message
    assert "00001" not in message and "00003" not in message


def test_an_unparsable_time_names_file_row_id_column_and_value(tmp_path):
    message = _label_error(tmp_path, "00001,7.5,7.0,1\n00002,12.o,11.5,1\n")
    assert str(tmp_path / "train.csv") in message
    assert "row 2 (id '00002'): time_of_event = '12.o': must be a number of seconds" in message
    assert "00001" not in message


def test_every_bad_value_is_reported_at_once(tmp_path):
    rows = "".join(f"{i:05d},,,2\n" for i in range(1, 8)) + "00008,,,0\n"
    message = _label_error(tmp_path, rows)
    assert "7 bad label value(s)" in message and "; and 2 more" in message
    assert "row 5 (id '00005')" in message and "row 6 " not in message


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("00002,7.5,-0.5,1\n", "row 2 (id '00002'): time_of_alert = '-0.5': must be >= 0 s"),
        ("00002,-1,,1\n", "row 2 (id '00002'): time_of_event = '-1': must be >= 0 s"),
        (
            "00002,6.0,6.5,1\n",
            "row 2 (id '00002'): time_of_alert = '6.5': later than time_of_event = '6.0'",
        ),
        ("00002,inf,7.0,1\n", "time_of_event = 'inf': must be a number of seconds"),
    ],
)
def test_impossible_times_are_refused(tmp_path, row, expected):
    message = _label_error(tmp_path, "00001,7.5,7.0,1\n" + row)
    assert expected in message and "00001" not in message


def test_an_alert_at_the_event_and_a_missing_event_are_fine(tmp_path):
    (tmp_path / "train.csv").write_text(HEADER + "00001,7.0,7.0,1\n00002,,6.5,1\n")
    table = read_labels(tmp_path / "train.csv", times=True)
    assert list(table["time_of_alert"]) == [7.0, 6.5] and np.isnan(table.loc[1, "time_of_event"])


def test_a_time_past_the_end_of_the_video_is_named():
    assert past_the_end(7.8, 7.2, duration_s=8.0) is None
    assert past_the_end(8.04, 7.2, duration_s=8.0) is None  # label rounding
    assert past_the_end(float("nan"), float("nan"), duration_s=8.0) is None
    assert past_the_end(9.5, 7.2, duration_s=8.0) == (
        "time_of_event = 9.5 s past the end of the video (8.000 s)"
    )
    assert past_the_end(12.0, 11.0, duration_s=8.0) == (
        "time_of_event = 12 s and time_of_alert = 11 s past the end of the video (8.000 s)"
    )


def test_video_paths_work_from_any_working_directory(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data/train.csv").write_text(HEADER + "00001,,,0\n")
    _touch(tmp_path / "data/videos/00001.mp4")
    monkeypatch.chdir(tmp_path)
    clips = read_clips("synthetic", "data/train.csv", "data/videos")  # relative, as params are
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    path = clips.loc[0, "path"]
    assert path == str(tmp_path / "data/videos/00001.mp4") and os.path.exists(path)


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
