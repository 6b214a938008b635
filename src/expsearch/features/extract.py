"""Extract per-step backbone features of every clip into a feature store.

    index = extract_store(clips, "vjepa2", "results/features/vjepa2",
                          weights="random", fps=5, window_s=6.0, batch_size=8)
    index = extract_store(..., weights="pretrained", checkpoint="/data/ckpt/vjepa2")
    index = extract_store(..., frames="results/frames/index.json")  # decoded once for all

Each clip's window (`data.sources.window_end`, `step_times`) is decoded,
encoded by the frozen backbone in batches (on the GPU when there is one) and
written to the store. With `frames`, the windows come from the shared
decoded-frames cache (`features.frames`), already at the backbone's input
size, instead of the videos; a clip that the cache skipped is skipped here
with the cache's reason. Interrupted runs resume: every finished batch is
kept as a chunk file in `OUT/.partial/`, and a rerun encodes only the clips
not yet done (skipped clips are tried again: their cause may have been fixed).
A clip whose video is missing or cannot be decoded, or whose label times
lie past the end of its video, is skipped with its id and reason (in the
index and in `OUT/skipped.csv`), never silently dropped. One bad clip is not
fatal for the rest, but many are: when more than `max_skipped_fraction` of
the clips (or all of them) are skipped, the run writes `skipped.csv`, keeps
its chunks and raises ExtractionError instead of writing a store. Chunks of
other settings (backbone, weights, checkpoint, seed, window, decode path) are discarded.
"""

from __future__ import annotations

import json
import shutil
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ..atomic import atomic_open, atomic_write_text
from ..clock import utc_now
from ..data.video import DecodeError, read_frames_at
from ..version import code_version
from .backbones import Backbone, build_backbone
from .frames import SkipClip, open_frames, window_of, window_times
from .preprocessing import check_frames_per_clip
from .store import SKIPPED, write_store

PARTIAL = ".partial"
_SHOWN = 3  # skip reasons quoted in an ExtractionError


def check_clip_length(model: Backbone, steps: int, *, fps: float, window_s: float) -> None:
    """`preprocessing.check_frames_per_clip` for a loaded model, from its config (the
    workflow checks the same from config.json when it builds the DAG)."""
    if model.weights != "pretrained":
        return
    check_frames_per_clip(
        model.spec.name,
        model.checkpoint,
        getattr(model.model.config, "frames_per_clip", None),
        steps=steps,
        frames_per_step=model.frames_per_step,
        fps=fps,
        window_s=window_s,
    )


class ExtractionError(ValueError):
    """An extraction that skipped too many clips to be worth a store."""


__all__ = ["ExtractionError", "SkipClip", "extract_store", "load_window", "resolve_device"]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_window(
    row: Any, window_s: float, fps: float, frames_per_step: int
) -> tuple[np.ndarray, int]:
    """Decoded frames of one clip's window and its number of valid steps.
    Raises DecodeError (missing file, undecodable video) or SkipClip (label
    times that do not fit the video)."""
    end = window_of(row)
    times, valid = window_times(row, end, window_s, fps, frames_per_step)
    return read_frames_at(row.path, np.clip(times, 0.0, None)), valid


def _decoded(rows: list[Any], load: Callable, workers: int, ahead: int) -> Iterator:
    """(row, frames, valid, error) in order, loading (decoding, or reading the
    frames cache) up to `ahead` clips in advance in threads (PyAV releases the
    GIL), so decoding overlaps with encoding while memory stays bounded
    (full-HD windows are ~170 MB a clip)."""

    def work(row):
        try:
            return row, *load(row), None
        except (DecodeError, SkipClip) as exc:
            return row, None, 0, str(exc)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for row in rows:
            pending.append(pool.submit(work, row))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _encode(backbone, frames: list[np.ndarray], valid: list[int]) -> np.ndarray:
    if len({f.shape for f in frames}) == 1:
        out = backbone.encode(torch.from_numpy(np.stack(frames)))
    else:  # clips of different sizes (folder source): encode one by one
        out = torch.cat([backbone.encode(torch.from_numpy(f[None])) for f in frames])
    out = out.numpy().astype(np.float32)
    steps = out.shape[1]
    for row, n_valid in enumerate(valid):
        out[row, : steps - n_valid] = 0.0  # padding at the start is exactly zero
    return out


def _start_partial(partial: Path, settings: dict[str, Any]) -> None:
    """Keep the chunks of an earlier run only if it had the same settings: a
    store must not mix seeds, weights or decode paths. (Chunks of runs from
    before settings were recorded are kept, as they always were.)"""
    record = partial / "settings.json"
    if record.exists() and json.loads(record.read_text()) != settings:
        stale = sorted(partial.glob("chunk-*.npz"))
        print(f"{partial}: discarding {len(stale)} chunk(s) of other settings", flush=True)
        for chunk in stale:
            chunk.unlink()
    partial.mkdir(parents=True, exist_ok=True)
    atomic_write_text(record, json.dumps(settings) + "\n")


def _load_chunks(partial: Path) -> dict[str, tuple[np.ndarray, int]]:
    """The clips finished by earlier runs (chunks of older versions also list
    skipped clips: those are tried again)."""
    done: dict[str, tuple[np.ndarray, int]] = {}
    for chunk in sorted(partial.glob("chunk-*.npz")):
        with np.load(chunk, allow_pickle=False) as data:
            for clip, feats, n_valid in zip(
                data["ids"], data["features"], data["valid"], strict=True
            ):
                done[str(clip)] = (feats, int(n_valid))
    return done


def _save_chunk(partial: Path, number: int, ids, features, valid) -> None:
    with atomic_open(partial / f"chunk-{number:06d}.npz", "wb") as handle:
        np.savez(
            handle,
            ids=np.array(ids, dtype=str),
            features=features,
            valid=np.array(valid, dtype=np.int64),
        )


def extract_store(
    clips: pd.DataFrame,
    backbone: str,
    out_dir: str | Path,
    *,
    weights: str = "random",
    fps: float = 5.0,
    window_s: float = 6.0,
    batch_size: int = 8,
    device: str = "auto",
    seed: int = 0,
    labels_sha256: str = "",
    decode_workers: int = 2,
    max_skipped_fraction: float = 0.2,
    frames: str | Path | None = None,
    frames_array: str | Path | None = None,
    checkpoint: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Extract (or finish extracting) the store of one backbone; returns its index.
    `frames`: the decoded-frames cache to read (its folder or index.json) instead
    of decoding the videos; `frames_array`: its file at this backbone's input size
    (default: the one the index names). `checkpoint`: with pretrained weights, the
    local folder or Hugging Face id to load (None: the registry's id). Raises
    ExtractionError, after writing skipped.csv, when more than `max_skipped_fraction`
    of the clips, or all of them, are skipped."""
    out_dir = Path(out_dir)
    partial = out_dir / PARTIAL
    # The model and the cache first: a wrong name, weights or cache leave no folders behind.
    model = build_backbone(
        backbone, weights, device=resolve_device(device), seed=seed, checkpoint=checkpoint
    )
    k = model.frames_per_step
    check_clip_length(model, round(window_s * fps), fps=fps, window_s=window_s)
    if frames is None:

        def load(row):  # by name at call time (tests replace load_window)
            return load_window(row, window_s, fps, k)

    else:
        load = open_frames(frames).loader(
            clips,
            frames_per_step=k,
            size=model.input_size,
            fps=fps,
            window_s=window_s,
            array=frames_array,
        )
    decode = "per_backbone" if frames is None else "shared"
    settings = {"backbone": backbone, "weights": weights, "seed": seed, "fps": fps,
                "window_s": window_s, "decode": decode}  # fmt: skip
    if model.checkpoint is not None:  # only then: random-weight chunks of older runs stay valid
        settings["checkpoint"] = model.checkpoint
    _start_partial(partial, settings)
    steps = round(window_s * fps)
    done = _load_chunks(partial)
    skipped: dict[str, str] = {}
    rows = [row for row in clips.itertuples(index=False) if row.id not in done]
    bar = tqdm(
        total=len(clips),
        initial=len(clips) - len(rows),
        desc=f"features {backbone}",
        unit="clip",
        disable=not progress,
    )
    batch = _Batch(partial, model, done, skipped, bar)
    decoded = _decoded(rows, load, decode_workers, ahead=batch_size + decode_workers)
    for row, frames, n_valid, error in decoded:
        batch.add(row.id, frames, n_valid, error)
        if len(batch.ids) >= batch_size:
            batch.flush()
    batch.flush()
    bar.close()

    ids, features, skipped_rows = _in_table_order(clips, done, skipped, steps, model.width)
    atomic_write_text(
        out_dir / SKIPPED,
        pd.DataFrame(skipped_rows, columns=["id", "reason"]).to_csv(index=False),
    )
    _check_skipped(backbone, len(clips), skipped_rows, max_skipped_fraction, out_dir / SKIPPED)
    index = _store_index(
        backbone,
        weights,
        model,
        fps=fps,
        window_s=window_s,
        seed=seed,
        labels_sha256=labels_sha256,
        width=int(features.shape[2]),
        decode=decode,
        clip_ids=ids,
        valid_lengths=[done[clip][1] for clip in ids],
        skipped=skipped_rows,
    )
    write_store(out_dir, features, index)
    # The chunks go last: a run killed before the store is complete resumes from them.
    shutil.rmtree(partial)
    note = f", {len(skipped_rows)} skipped (see {out_dir / SKIPPED})" if skipped_rows else ""
    print(f"features {backbone}: {len(ids)} of {len(clips)} clips extracted{note}", flush=True)
    return index


def _check_skipped(
    backbone: str, n_clips: int, skipped_rows: list[dict[str, str]], limit: float, report: Path
) -> None:
    """Many skipped clips usually share one cause (wrong paths, another data
    set's labels): a store of the rest would hide it until training."""
    n = len(skipped_rows)
    if n == 0 or (n < n_clips and n <= limit * n_clips):
        return
    reasons = "; ".join(f"{row['id']}: {row['reason']}" for row in skipped_rows[:_SHOWN])
    raise ExtractionError(
        f"features {backbone}: {n} of {n_clips} clips skipped ({n / n_clips:.0%}), "
        + (
            "nothing to store"
            if n == n_clips
            else f"more than the limit of {limit:g} (features.max_skipped_fraction)"
        )
        + f"; no store written. Every skipped clip and why: {report}. First reasons: {reasons}"
    )


class _Batch:
    """The clips decoded since the last chunk. `flush` encodes them, saves them
    as the next chunk file and adds them to `done`: a killed run keeps every
    flushed batch. Skipped clips go straight to `skipped`."""

    def __init__(self, partial: Path, model, done: dict, skipped: dict, bar) -> None:
        self.partial, self.model, self.bar = partial, model, bar
        self.done, self.skipped = done, skipped
        self.number = len(list(partial.glob("chunk-*.npz")))  # of the next chunk file
        self._start()

    def _start(self) -> None:
        self.ids: list[str] = []
        self.frames: list[np.ndarray] = []
        self.valid: list[int] = []

    def add(self, clip: str, frames, n_valid: int, error: str | None) -> None:
        if error is not None:
            self.skipped[clip] = error
            self.bar.update(1)
        else:
            self.ids.append(clip)
            self.frames.append(frames)
            self.valid.append(n_valid)

    def flush(self) -> None:
        if not self.ids:
            return
        feats = _encode(self.model, self.frames, self.valid)
        _save_chunk(self.partial, self.number, self.ids, feats, self.valid)
        for clip, f, n_valid in zip(self.ids, feats, self.valid, strict=True):
            self.done[clip] = (f, n_valid)
        self.bar.update(len(self.ids))
        self.number += 1
        self._start()


def _in_table_order(clips: pd.DataFrame, done: dict, skipped: dict, steps: int, width: int):
    """The extracted clips' ids and features, and the skipped clips' rows, in
    the order of the clip table (chunks hold them in the order they finished)."""
    ids = [clip for clip in clips["id"] if clip in done]
    features = (
        np.stack([done[clip][0] for clip in ids])
        if ids
        else np.zeros((0, steps, width), np.float32)
    )
    skipped_rows = [
        {"id": clip, "reason": skipped[clip]} for clip in clips["id"] if clip in skipped
    ]
    return ids, features, skipped_rows


def _store_index(
    backbone: str,
    weights: str,
    model,
    *,
    fps: float,
    window_s: float,
    seed: int,
    labels_sha256: str,
    width: int,
    decode: str,
    clip_ids: list[str],
    valid_lengths: list[int],
    skipped: list[dict[str, str]],
) -> dict[str, Any]:
    return {
        "backbone": backbone,
        "weights": weights,
        "hf_id": model.spec.hf_id,
        "checkpoint": model.checkpoint,  # the folder or hub id loaded; None: random weights
        "pretrained_width": model.spec.width,
        "width": width,
        "input_size": model.input_size,
        "frames_per_step": model.frames_per_step,
        "fps": fps,
        "window_s": window_s,
        "steps": round(window_s * fps),
        "padding": "start",
        "decode": decode,  # shared: frames from the decoded-frames cache (resized in uint8)
        "seed": seed,
        "device": str(model.device),
        "code_version": code_version(),
        "labels_sha256": labels_sha256,
        "created": utc_now(),
        "clip_ids": clip_ids,
        "valid_lengths": valid_lengths,
        "skipped": skipped,
    }
