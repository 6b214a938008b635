"""Clip tables from the data sources named by `data.source` in params.yaml.

    clips = read_clips("nexar", "data/nexar/train.csv", "data/nexar/train",
                       competition=nexar_competition("data/nexar"))
    # DataFrame: id, path, target, time_of_event, time_of_alert, pool

- `synthetic` and `nexar` share the Nexar layout: a labels CSV with
  `id, time_of_event, time_of_alert, target` and a folder of `<id>.mp4`.
  For `nexar`, test clips (`test/`) with labels in `solution.csv`
  (`id, target, ...`) are added as pool `competition` when both exist
  (`nexar_competition(root)` finds them; the caller passes them in).
- `folder`: any folder of videos plus a CSV of `id, target`; event and
  alert times are optional.

Where a clip's window ends is decided by `window_end` (documented there).
Video paths are absolute. A label row whose video file is missing keeps
`path` empty; extraction records it as skipped with the reason instead of
failing the whole run. Bad label values (a target other than 0/1, a time
that is not a number, negative, or an alert after the event) stop
`read_labels` with a DataError naming file, row, id, column and value; a
time past the end of its video (`past_the_end`) is found at extraction.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ["id", "path", "target", "time_of_event", "time_of_alert", "pool"]
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm")
SOURCES = ("synthetic", "nexar", "folder")


class DataError(ValueError):
    """Labels or videos that cannot be used; the message names the file."""


TIME_COLUMNS = ("time_of_event", "time_of_alert")
# Label times are often rounded (to 0.1 s or finer): an event this far past a video's
# end is rounding, further is a label that does not fit its video.
LENGTH_TOLERANCE_S = 0.05
_SHOWN = 5  # bad values quoted in one message; the count says how many there are


def read_labels(path: str | Path, *, times: bool) -> pd.DataFrame:
    """Read a labels CSV (ids kept as strings: Nexar ids have leading zeros).
    With `times`, the Nexar columns time_of_event and time_of_alert must exist.
    All bad values are reported at once, each with its row (counted from 1
    after the header), id, column and value; negative times and an alert
    after the event count as bad values."""
    path = Path(path)
    try:  # as text, so that a message quotes a bad value as the file has it
        table = pd.read_csv(path, dtype=str)
    except FileNotFoundError:
        raise DataError(f"{path}: labels file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot parse the labels CSV: {exc}") from None
    required = ["id", "target"] + (list(TIME_COLUMNS) if times else [])
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(table.columns)}")
    for column in TIME_COLUMNS:
        if column not in table.columns:
            table[column] = np.nan
    problems = _id_problems(table)
    target = pd.to_numeric(table["target"], errors="coerce")
    problems += _bad(table, ~target.isin([0, 1]), "target", "must be 0 or 1")
    parsed = {column: pd.to_numeric(table[column], errors="coerce") for column in TIME_COLUMNS}
    for column, values in parsed.items():
        unparsed = table[column].notna() & ~np.isfinite(values)
        problems += _bad(table, unparsed, column, "must be a number of seconds")
        problems += _bad(table, values < 0, column, "must be >= 0 s")
    problems += _bad(
        table,
        parsed["time_of_alert"] > parsed["time_of_event"],
        "time_of_alert",
        lambda row: f"later than time_of_event = {_quoted(table, 'time_of_event', row)}",
    )
    if problems:
        shown = "; ".join(text for _, text in sorted(problems)[:_SHOWN])
        more = f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        raise DataError(
            f"{path}: {len(problems)} bad label value(s) (rows counted from 1 after the "
            f"header): {shown}{more}"
        )
    return pd.DataFrame({"id": table["id"], "target": target.astype(int), **parsed})


def _quoted(table: pd.DataFrame, column: str, row: int) -> str:
    value = table[column].iat[row]
    return "empty" if pd.isna(value) else repr(value)


def _bad(table: pd.DataFrame, mask: pd.Series, column: str, why) -> list[tuple[int, str]]:
    """(row, 'row R (id I): COLUMN = VALUE: WHY') for every row of `mask`;
    `why` is a text or a function of the row."""
    return [
        (
            row,
            f"row {row + 1} (id {_quoted(table, 'id', row)}): {column} = "
            f"{_quoted(table, column, row)}: {why(row) if callable(why) else why}",
        )
        for row in np.flatnonzero(mask.to_numpy())
    ]


def _id_problems(table: pd.DataFrame) -> list[tuple[int, str]]:
    ids = table["id"]
    first = {clip: row for row, clip in reversed(list(enumerate(ids)))}
    return _bad(table, ids.isna(), "id", "every row needs an id") + _bad(
        table,
        ids.notna() & ids.duplicated(),
        "id",
        lambda row: f"duplicate of row {first[ids.iat[row]] + 1}",
    )


def find_video(folder: Path, clip_id: str) -> str:
    """The video of `clip_id` in `folder`, or "" if there is none. Numeric ids
    also match their 5-digit zero-padded name (Nexar files are `00042.mp4`)."""
    names = [clip_id] + ([f"{int(clip_id):05d}"] if clip_id.isdigit() else [])
    for name in names:
        for extension in VIDEO_EXTENSIONS:
            candidate = folder / f"{name}{extension}"
            if candidate.exists():
                return str(candidate)
    return ""


def _attach_videos(table: pd.DataFrame, folder: Path, pool: str) -> pd.DataFrame:
    table = table.copy()
    # Absolute: extraction may run in another working directory than the split.
    folder = folder.absolute()
    table["path"] = [find_video(folder, clip) for clip in table["id"]]
    table["pool"] = pool
    return table[COLUMNS]


def nexar_competition(root: str | Path) -> dict[str, str]:
    """The Nexar download's competition clips, where both parts exist:
    {"videos": <root>/test, "labels": <root>/solution.csv}, else {}."""
    root = Path(root)
    videos, labels = root / "test", root / "solution.csv"
    return (
        {"videos": str(videos), "labels": str(labels)}
        if videos.is_dir() and labels.exists()
        else {}
    )


def read_clips(
    source: str,
    labels: str | Path,
    videos: str | Path,
    competition: Mapping[str, str | Path] | None = None,
) -> pd.DataFrame:
    """All clips of a source, in label-file order; with `competition` (Nexar
    only: its `videos` folder and `labels` CSV) those clips too, as pool
    `competition`."""
    if source not in SOURCES:
        raise DataError(f"unknown data source {source!r}; expected one of {list(SOURCES)}")
    table = read_labels(labels, times=source != "folder")
    clips = _attach_videos(table, Path(videos), "train")
    if competition:
        if source != "nexar":
            raise DataError(f"competition clips are a Nexar set, not part of source {source!r}")
        held_out = read_labels(competition["labels"], times=False)
        held_out = _attach_videos(held_out, Path(competition["videos"]), "competition")
        clips = pd.concat([clips, held_out], ignore_index=True)
    return clips


def window_end(time_of_alert: float, duration_s: float) -> float:
    """Where a clip's feature window ends: at `time_of_alert` when the clip
    has one (positives: the window stops before the event, as in the Nexar
    challenge, whose test clips end before the event), otherwise at the end
    of the video (negatives and held-out test clips)."""
    if time_of_alert is not None and np.isfinite(time_of_alert):
        return float(min(time_of_alert, duration_s))
    return float(duration_s)


def past_the_end(time_of_event: float, time_of_alert: float, duration_s: float) -> str | None:
    """Why a clip's label times do not fit its video (a time later than its
    end, beyond LENGTH_TOLERANCE_S), or None. The labels reader cannot check
    this: it needs the video's length, which only extraction reads."""
    late = [
        f"{column} = {value:g} s"
        for column, value in (("time_of_event", time_of_event), ("time_of_alert", time_of_alert))
        if np.isfinite(value) and value > duration_s + LENGTH_TOLERANCE_S
    ]
    return f"{' and '.join(late)} past the end of the video ({duration_s:.3f} s)" if late else None


def step_times(end_s: float, window_s: float, fps: float, frames_per_step: int) -> np.ndarray:
    """Frame times (seconds) of a window of round(window_s * fps) steps ending
    at `end_s`; a backbone that consumes k frames per step gets k frames per
    step, at k * fps. Times before 0 are padding (see `valid_steps`)."""
    steps = round(window_s * fps)
    rate = fps * frames_per_step
    n = steps * frames_per_step
    return end_s - (n - 1 - np.arange(n)) / rate


def valid_steps(times: np.ndarray, frames_per_step: int) -> int:
    """Steps whose frames all lie inside the video (t >= 0); padding is at the start."""
    first_frames = times.reshape(-1, frames_per_step)[:, 0]
    return int((first_frames >= -1e-9).sum())


def read_clip_table(path: str | Path) -> pd.DataFrame:
    """Read back a clip table written by the split stage (results/split/clips.csv)."""
    table = pd.read_csv(path, dtype={"id": str, "path": str, "pool": str})
    missing = [column for column in COLUMNS if column not in table.columns]
    if missing:
        raise DataError(f"{path}: not a clip table (missing {missing})")
    table["path"] = table["path"].fillna("")
    return table[COLUMNS]
