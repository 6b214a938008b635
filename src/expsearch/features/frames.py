"""The shared decoded-frames cache: every clip's window decoded once, for all backbones.

    plan = frame_plan(["vjepa2", "dinov2_b"], "random")     # {56: [1], 64: [2]}
    plan = frame_plan(names, "pretrained", input_sizes(names, "pretrained", checkpoints))
    frame_files("results/frames", plan)  # index.json, [frames-56.npy, frames-64.npy], skipped.csv
    decode_frames(clips, "results/frames", plan, fps=5, window_s=6.0, workers=4)
    cache = open_frames("results/frames/index.json")
    load = cache.loader(clips, frames_per_step=1, size=56, fps=5, window_s=6.0)
    frames, valid = load(row)   # what extract.load_window gives, already at 56 x 56

Decoding costs about as much as encoding a clip with the backbones (on a GPU with
720p video, nearly all of it), and every backbone reads the same windows: so
`decode_frames` (the workflow's `decode_frames` job, on CPUs) decodes each window
once and `extract_store(..., frames=INDEX)` reads frames from here instead of the
videos.

What is stored. A backbone that takes k frames per step reads `step_times(end,
window_s, fps, k)`; for k dividing K those times are exactly every (K/k)-th of the
times at K, ending with the last (`positions`): for K = 2, the k = 1 times are the
odd-indexed ones. So a window is decoded once at K, the least common multiple of
the backbones' frames per step. Native frames would not fit (Nexar is 1280 x 720),
so for each distinct input size among the backbones the frames those backbones
need are stored squashed to that size as uint8 (`backbones.squash_uint8`: the
backbone's own resize, rounded), and `Backbone.encode`, given frames at its size,
resizes nothing. The rounding is the one difference from decoding per backbone:
at most half a grey level per pixel (1/510), well inside the video codec's own
error; tests/test_frames.py measures what it does to the features.

Layout of the cache folder (plain files on a shared file system, read by GPU jobs
on other nodes through memory maps):

- `frames-<size>.npy`: uint8 (clips, P, size, size, 3), row i = clip i of the clip
  table, P = the positions (in the window's K-rate times) that backbones of this
  size read. Rows of skipped clips are never written (zero, sparse on disk).
- `index.json`, written last: fps, window_s, steps, K (`frames_per_step`), per
  size its file, positions and shape, the clip ids, each clip's window end (the
  extraction derives every backbone's times and valid steps from it), and the
  skipped clips with their reasons (the same as a per-backbone extraction gives:
  missing or undecodable video, times past the end, a window wholly before the
  start) and `skipped.csv` beside it.

Each extraction skips a clip the cache skipped, with the same reason, and still
applies `features.max_skipped_fraction` itself. Decoding resumes: arrays are
filled in place in `<folder>/.partial/` and every `flush_every` clips a record of
the finished ones is written after the arrays are flushed, so a rerun decodes only
the rest (skipped clips are tried again). A partial of another plan, window or
clip table is discarded. At the end the arrays move into place and the index is
written.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..atomic import atomic_write_text
from ..clock import utc_now
from ..data.sources import past_the_end, step_times, valid_steps, window_end
from ..data.video import DecodeError, probe_video, read_frames_at
from ..hashing import sha256_text
from ..version import code_version
from .specs import BACKBONES, input_size
from .store import SKIPPED

FORMAT = 1
INDEX = "index.json"
PARTIAL = ".partial"
# Step times derived two ways (at k and at K) agree exactly for K/k a power of two
# and to rounding otherwise; read_frames_at treats times within 1e-6 s as equal.
_SAME_TIME_S = 1e-9


class SkipClip(Exception):
    """A clip that cannot be extracted; the message is the reason."""


class FrameCacheError(ValueError):
    """A decoded-frames cache that does not serve an extraction; names the file."""


# ---- the plan and the layout (light: the workflow calls these when it builds the DAG)


def frame_plan(
    backbones: Iterable[str], weights: str, sizes: Mapping[str, int] | None = None
) -> dict[int, list[int]]:
    """{input size: the distinct frames per step of the backbones of that size}.
    `sizes` ({backbone: input size}: `checkpoints.input_sizes`, which sizes a
    checkpoint other than the registry's from its own files) overrides
    `specs.input_size`, which sizes the backbones it does not name."""
    sizes = sizes or {}
    plan: dict[int, set[int]] = {}
    for name in backbones:
        size = sizes[name] if name in sizes else input_size(name, weights)
        plan.setdefault(size, set()).add(BACKBONES[name].frames_per_step)
    return {size: sorted(ks) for size, ks in sorted(plan.items())}


def _normal(plan: Mapping[Any, Sequence[Any]]) -> dict[int, list[int]]:
    # Keys may arrive as strings (JSON, Snakemake params).
    return {int(size): sorted({int(k) for k in ks}) for size, ks in sorted(plan.items())}


def decoded_rate(plan: Mapping[Any, Sequence[Any]]) -> int:
    """K: the frames per step a window is decoded at (the lcm over the plan)."""
    return math.lcm(*(k for ks in _normal(plan).values() for k in ks))


def positions(frames_per_step: int, decoded: int, steps: int) -> np.ndarray:
    """Where the times of `step_times(.., frames_per_step)` sit among those of
    `step_times(.., decoded)` (same end, window and fps): every r-th, r = decoded /
    frames_per_step, ending with the last one."""
    if decoded % frames_per_step:
        raise ValueError(f"{frames_per_step} frames per step do not divide {decoded}")
    r = decoded // frames_per_step
    return r * (np.arange(frames_per_step * steps) + 1) - 1


def size_positions(ks: Iterable[int], decoded: int, steps: int) -> np.ndarray:
    """The positions stored for one size: every position its backbones read."""
    return np.unique(np.concatenate([positions(k, decoded, steps) for k in ks]))


def frames_file(root: str | Path, size: int) -> str:
    return f"{root}/frames-{int(size)}.npy"


def frame_files(root: str | Path, plan: Mapping[Any, Sequence[Any]]) -> dict[str, Any]:
    """The cache's files under `root`: its index, one array per input size of the
    plan (in size order) and the list of skipped clips."""
    return {
        "index": f"{root}/{INDEX}",
        "frames": [frames_file(root, size) for size in _normal(plan)],
        "skipped": f"{root}/{SKIPPED}",
    }


# ---- a clip's window (shared with the per-backbone path in extract.load_window)


def window_of(row: Any) -> float:
    """Where a clip's window ends. Raises DecodeError (no file, unreadable video)
    or SkipClip (label times past the end of the video)."""
    if not row.path:
        raise DecodeError(f"{row.id}: video file not found")
    info = probe_video(row.path)
    problem = past_the_end(row.time_of_event, row.time_of_alert, info.duration_s)
    if problem:
        raise SkipClip(f"{row.path}: {problem}")
    return window_end(row.time_of_alert, info.duration_s)


def window_times(
    row: Any, end: float, window_s: float, fps: float, frames_per_step: int
) -> tuple[np.ndarray, int]:
    """A backbone's frame times and valid steps for a window ending at `end`;
    SkipClip when no step lies inside the video."""
    times = step_times(end, window_s, fps, frames_per_step)
    valid = valid_steps(times, frames_per_step)
    if valid == 0:  # a table not checked by read_labels
        raise SkipClip(f"{row.path}: the window ends at {end:g} s, before the video starts")
    return times, valid


# ---- writing the cache


def decode_frames(
    clips: pd.DataFrame,
    out_dir: str | Path,
    plan: Mapping[Any, Sequence[Any]],
    *,
    fps: float,
    window_s: float,
    workers: int = 2,
    labels_sha256: str = "",
    flush_every: int = 16,
    progress: bool = True,
) -> dict[str, Any]:
    """Decode every clip's window once into the cache at `out_dir` (its folder or
    index.json); returns the index. Bad clips are recorded, never fatal here: each
    extraction applies features.max_skipped_fraction."""
    import torch

    from .resize import squash_uint8  # torch: only the decoding job needs it

    out_dir = Path(out_dir)
    out_dir = out_dir.parent if out_dir.name == INDEX else out_dir
    plan = _normal(plan)
    if not plan or len(clips) == 0:
        raise ValueError("decode_frames needs a plan with at least one size and one clip")
    decoded, steps = decoded_rate(plan), round(window_s * fps)
    layout = {size: size_positions(ks, decoded, steps) for size, ks in plan.items()}
    all_ks = sorted({k for ks in plan.values() for k in ks})
    ids = [str(clip) for clip in clips["id"]]
    # An old index goes first: until the new one is written, the folder is no cache.
    (out_dir / INDEX).unlink(missing_ok=True)
    key = {
        "format": FORMAT,
        "fps": fps,
        "window_s": window_s,
        "frames_per_step": decoded,
        "sizes": {str(size): pos.tolist() for size, pos in layout.items()},
        "clips_sha256": _clips_sha256(clips),
    }
    partial = out_dir / PARTIAL
    arrays, ends = _open_partial(partial, key, layout, len(ids))

    def work(row) -> tuple[float, dict[int, np.ndarray]]:
        end = window_of(row)
        reasons = []
        for k in all_ks:  # decode if any backbone has a step inside the video
            try:
                window_times(row, end, window_s, fps, k)
            except SkipClip as exc:
                reasons.append(str(exc))
        if len(reasons) == len(all_ks):
            raise SkipClip(reasons[0])
        times = step_times(end, window_s, fps, decoded)
        frames = read_frames_at(row.path, np.clip(times, 0.0, None))
        return end, {size: squash_uint8(frames[pos], size) for size, pos in layout.items()}

    todo = [(i, row) for i, row in enumerate(clips.itertuples(index=False)) if ids[i] not in ends]
    skipped: dict[str, str] = {}
    fresh: dict[str, float] = {}
    bar = tqdm(
        total=len(ids), initial=len(ids) - len(todo), desc="frames", unit="clip",
        disable=not progress,
    )  # fmt: skip
    record = len(list(partial.glob("done-*.json")))
    # The worker threads are the parallelism: torch's own pool on top of them
    # oversubscribed the cores (800 clips on 2 cores: 45 s, against 34 s this way).
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for (i, _row), result, error in _ahead(todo, work, workers, ahead=2 * workers):
            if error is not None:
                skipped[ids[i]] = error
            else:
                end, resized = result
                for size, frames in resized.items():
                    arrays[size][i] = frames
                fresh[ids[i]] = end
            bar.update(1)
            if len(fresh) >= flush_every:
                record = _record(partial, record, arrays, fresh, ends)
    finally:
        torch.set_num_threads(torch_threads)
    _record(partial, record, arrays, fresh, ends)
    bar.close()

    for size in list(arrays):
        arrays.pop(size).flush()
        os.replace(partial / _name(size), out_dir / _name(size))
    skipped_rows = [{"id": clip, "reason": skipped[clip]} for clip in ids if clip in skipped]
    atomic_write_text(
        out_dir / SKIPPED, pd.DataFrame(skipped_rows, columns=["id", "reason"]).to_csv(index=False)
    )
    index = {
        "format": FORMAT,
        "fps": fps,
        "window_s": window_s,
        "steps": steps,
        "frames_per_step": decoded,
        "times": "step_times(window_end, window_s, fps, frames_per_step)",
        "resize": "backbones.squash_uint8 (the backbones' squash, rounded to uint8)",
        "sizes": {
            str(size): {
                "file": _name(size),
                "positions": pos.tolist(),
                "shape": [len(ids), len(pos), size, size, 3],
            }
            for size, pos in layout.items()
        },
        "clip_ids": ids,
        "clip_signatures": [_signature(row) for row in clips.itertuples(index=False)],
        "window_ends": [ends.get(clip) for clip in ids],
        "skipped": skipped_rows,
        "labels_sha256": labels_sha256,
        "code_version": code_version(),
        "created": utc_now(),
    }
    atomic_write_text(out_dir / INDEX, json.dumps(index, indent=1) + "\n")
    shutil.rmtree(partial)
    note = f", {len(skipped_rows)} skipped (see {out_dir / SKIPPED})" if skipped_rows else ""
    sizes = ", ".join(f"{size} px" for size in layout)
    print(f"frames: {len(ids) - len(skipped_rows)} of {len(ids)} clips at {sizes}{note}")
    return index


def _clips_sha256(clips: pd.DataFrame) -> str:
    """What the cache's windows depend on in the clip table: ids, videos, times."""
    return sha256_text(json.dumps([_signature(row) for row in clips.itertuples(index=False)]))


def _signature(row: Any) -> str:
    """A clip's video and label times: its window is stale when they change."""
    times = [None if pd.isna(t) else float(t) for t in (row.time_of_event, row.time_of_alert)]
    return sha256_text(json.dumps([str(row.id), str(row.path), *times]))[:16]


def _name(size: int) -> str:
    return Path(frames_file(".", size)).name


def _open_partial(partial: Path, key: dict, layout: dict[int, np.ndarray], n: int):
    """The arrays being filled and {clip: window end} of the clips already done,
    resumed from `partial` when it was started with the same key, else anew."""
    shapes = {size: (n, len(pos), size, size, 3) for size, pos in layout.items()}
    plan_file = partial / "plan.json"
    try:
        same = json.loads(plan_file.read_text()) == key and all(
            np.load(partial / _name(size), mmap_mode="r").shape == shape
            for size, shape in shapes.items()
        )
    except (OSError, ValueError):
        same = False
    if not same:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for size, shape in shapes.items():  # sparse files: untouched rows take no space
            np.lib.format.open_memmap(partial / _name(size), "w+", np.uint8, shape).flush()
        atomic_write_text(plan_file, json.dumps(key) + "\n")
    arrays = {
        size: np.lib.format.open_memmap(partial / _name(size), "r+") for size in shapes
    }  # fmt: skip
    ends: dict[str, float] = {}
    for done in sorted(partial.glob("done-*.json")):
        ends.update(json.loads(done.read_text()))
    return arrays, ends


def _record(partial: Path, number: int, arrays: dict, fresh: dict, ends: dict) -> int:
    """Flush the arrays, then record the clips written since the last record: a
    record is only ever written for frames already on disk."""
    if not fresh:
        return number
    for array in arrays.values():
        array.flush()
    atomic_write_text(partial / f"done-{number:06d}.json", json.dumps(fresh) + "\n")
    ends.update(fresh)
    fresh.clear()
    return number + 1


def _ahead(items: list, work: Callable, workers: int, ahead: int):
    """(item, result, error) in order, running `work(item[1])` up to `ahead` items in
    advance in threads (PyAV and torch release the GIL), so memory stays bounded (a
    720p window at 10 fps is ~170 MB). error is the reason of a DecodeError or SkipClip."""

    def run(item):
        try:
            return item, work(item[1]), None
        except (DecodeError, SkipClip) as exc:
            return item, None, str(exc)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: list = []
        for item in items:
            pending.append(pool.submit(run, item))
            if len(pending) > ahead:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


# ---- reading the cache


@dataclass(frozen=True)
class FrameCache:
    path: Path  # the index file
    index: dict[str, Any]

    @property
    def directory(self) -> Path:
        return self.path.parent

    def loader(
        self,
        clips: pd.DataFrame,
        *,
        frames_per_step: int,
        size: int,
        fps: float,
        window_s: float,
        array: str | Path | None = None,
    ) -> Callable[[Any], tuple[np.ndarray, int]]:
        """A function row -> (frames uint8 (steps * frames_per_step, size, size, 3),
        valid steps) for the rows of `clips`, raising SkipClip with the cache's reason
        (or, for a window before the video, the per-backbone one). Raises
        FrameCacheError now if the cache was made for other clips, window or sizes.
        `array`: the `size` px frames file, as a workflow declares it (`frames_file`);
        by default the one the index names, beside it."""
        index, where = self.index, self.path
        for name, value in (("fps", fps), ("window_s", window_s)):
            if float(index[name]) != float(value):
                raise FrameCacheError(f"{where}: decoded at {name}={index[name]}, not {value}")
        entry = index["sizes"].get(str(size))
        if entry is None:
            raise FrameCacheError(
                f"{where}: no frames at {size} px (it has {sorted(index['sizes'])}); "
                "decode again with this backbone in the plan"
            )
        decoded, steps = int(index["frames_per_step"]), int(index["steps"])
        if decoded % frames_per_step:
            raise FrameCacheError(
                f"{where}: decoded at {decoded} frames per step, which {frames_per_step} "
                "does not divide"
            )
        stored = np.asarray(entry["positions"])
        wanted = positions(frames_per_step, decoded, steps)
        at = np.searchsorted(stored, wanted)
        if at.max(initial=0) >= len(stored) or not np.array_equal(stored[at], wanted):
            raise FrameCacheError(
                f"{where}: the {size} px frames lack the times of {frames_per_step} frames per step"
            )
        row_of = {clip: i for i, clip in enumerate(index["clip_ids"])}
        missing = [clip for clip in clips["id"] if clip not in row_of]
        if missing:
            raise FrameCacheError(
                f"{where}: {len(missing)} clip(s) of the clip table are not in the cache "
                f"(first: {missing[:3]}); decode again for this clip table"
            )
        signatures = index["clip_signatures"]
        stale = [
            row.id
            for row in clips.itertuples(index=False)
            if _signature(row) != signatures[row_of[row.id]]
        ]
        if stale:  # other videos or label times: the window ends no longer hold
            raise FrameCacheError(
                f"{where}: {len(stale)} clip(s) have other videos or label times than when "
                f"decoded (first: {stale[:3]}); decode again"
            )
        array_path = Path(array) if array is not None else self.directory / entry["file"]
        if array_path.name != entry["file"]:
            raise FrameCacheError(
                f"{array_path}: the index holds the {size} px frames in {entry['file']}"
            )
        try:
            array = np.load(array_path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise FrameCacheError(
                f"{array_path}: cannot read the {size} px frames: {exc}"
            ) from None
        if list(array.shape) != entry["shape"] or array.dtype != np.uint8:
            raise FrameCacheError(
                f"{array_path}: shape {array.shape} {array.dtype}, "
                f"the index says {entry['shape']} uint8"
            )
        reasons = {row["id"]: row["reason"] for row in index["skipped"]}
        ends = index["window_ends"]
        whole = np.array_equal(at, np.arange(len(stored)))  # a slice reads less than a gather

        def load(row) -> tuple[np.ndarray, int]:
            if row.id in reasons:
                raise SkipClip(reasons[row.id])
            i = row_of[row.id]
            end = ends[i]
            times, valid = window_times(row, end, window_s, fps, frames_per_step)
            full = step_times(end, window_s, fps, decoded)[wanted]
            if np.abs(full - times).max() > _SAME_TIME_S:
                raise FrameCacheError(f"{where}: clip {row.id}: the times do not line up")
            # A copy: the clip's frames leave the memory map (and its file) behind.
            frames = np.array(array[i]) if whole else array[i, at]
            return frames, valid

        return load


def open_frames(path: str | Path) -> FrameCache:
    """The cache of `path` (its folder or index.json); FrameCacheError naming the
    file when there is none or it is of another format."""
    path = Path(path)
    path = path / INDEX if path.name != INDEX else path
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise FrameCacheError(f"{path}: no decoded-frames cache (run decode_frames)") from None
    except json.JSONDecodeError as exc:
        raise FrameCacheError(f"{path}: not a decoded-frames index: {exc}") from None
    if index.get("format") != FORMAT:
        raise FrameCacheError(f"{path}: format {index.get('format')!r}, expected {FORMAT}")
    return FrameCache(path, index)
