"""Extract per-step backbone features of every clip into a feature store.

    index = extract_store(clips, "vjepa2", "results/features/vjepa2",
                          weights="random", fps=5, window_s=6.0, batch_size=8)

Each clip's window (`data.sources.window_end`, `step_times`) is decoded,
encoded by the frozen backbone in batches (on the GPU when there is one) and
written to the store. Interrupted runs resume: every finished batch is kept
as a chunk file in `OUT/.partial/`, and a rerun encodes only the clips not
yet done. A clip whose video is missing or cannot be decoded is skipped with
its id and reason (in the index and in `OUT/skipped.csv`), never silently
dropped, and never fatal for the rest.
"""

from __future__ import annotations

import shutil
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ..atomic import atomic_open, atomic_write_text
from ..clock import utc_now
from ..data.sources import step_times, valid_steps, window_end
from ..data.video import DecodeError, probe_video, read_frames_at
from ..version import code_version
from .backbones import build_backbone
from .store import SKIPPED, write_store

PARTIAL = ".partial"


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_window(
    row: Any, window_s: float, fps: float, frames_per_step: int
) -> tuple[np.ndarray, int]:
    """Decoded frames of one clip's window and its number of valid steps.
    Raises DecodeError (missing file, undecodable video)."""
    if not row.path:
        raise DecodeError(f"{row.id}: video file not found")
    info = probe_video(row.path)
    times = step_times(
        window_end(row.time_of_alert, info.duration_s), window_s, fps, frames_per_step
    )
    frames = read_frames_at(row.path, np.clip(times, 0.0, None))
    return frames, valid_steps(times, frames_per_step)


def _decoded(
    rows: list[Any], window_s: float, fps: float, k: int, workers: int, ahead: int
) -> Iterator:
    """(row, frames, valid, error) in order, decoding up to `ahead` clips in
    advance in threads (PyAV releases the GIL), so decoding overlaps with
    encoding while memory stays bounded (full-HD windows are ~170 MB a clip)."""

    def work(row):
        try:
            return row, *load_window(row, window_s, fps, k), None
        except DecodeError as exc:
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


def _load_chunks(partial: Path) -> tuple[dict[str, tuple[np.ndarray, int]], dict[str, str]]:
    done: dict[str, tuple[np.ndarray, int]] = {}
    skipped: dict[str, str] = {}
    for chunk in sorted(partial.glob("chunk-*.npz")):
        with np.load(chunk, allow_pickle=False) as data:
            for clip, feats, n_valid in zip(
                data["ids"], data["features"], data["valid"], strict=True
            ):
                done[str(clip)] = (feats, int(n_valid))
            for clip, reason in zip(data["skipped_ids"], data["skipped_reasons"], strict=True):
                skipped[str(clip)] = str(reason)
    return done, skipped


def _save_chunk(partial: Path, number: int, ids, features, valid, skipped: dict[str, str]) -> None:
    with atomic_open(partial / f"chunk-{number:06d}.npz", "wb") as handle:
        np.savez(
            handle,
            ids=np.array(ids, dtype=str),
            features=features,
            valid=np.array(valid, dtype=np.int64),
            skipped_ids=np.array(list(skipped), dtype=str),
            skipped_reasons=np.array(list(skipped.values()), dtype=str),
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
    progress: bool = True,
) -> dict[str, Any]:
    """Extract (or finish extracting) the store of one backbone; returns its index."""
    out_dir = Path(out_dir)
    partial = out_dir / PARTIAL
    partial.mkdir(parents=True, exist_ok=True)
    model = build_backbone(backbone, weights, device=resolve_device(device), seed=seed)
    steps = round(window_s * fps)
    done, skipped = _load_chunks(partial)
    rows = [
        row for row in clips.itertuples(index=False) if row.id not in done and row.id not in skipped
    ]
    bar = tqdm(
        total=len(clips),
        initial=len(clips) - len(rows),
        desc=f"features {backbone}",
        unit="clip",
        disable=not progress,
    )
    batch = _Batch(partial, model, steps, done, skipped, bar)
    k = model.frames_per_step
    decoded = _decoded(rows, window_s, fps, k, decode_workers, ahead=batch_size + decode_workers)
    for row, frames, n_valid, error in decoded:
        batch.add(row.id, frames, n_valid, error)
        if len(batch.ids) >= batch_size:
            batch.flush()
    batch.flush()
    bar.close()

    ids, features, skipped_rows = _in_table_order(clips, done, skipped, steps, model.width)
    index = _store_index(
        backbone,
        weights,
        model,
        fps=fps,
        window_s=window_s,
        seed=seed,
        labels_sha256=labels_sha256,
        width=int(features.shape[2]),
        clip_ids=ids,
        valid_lengths=[done[clip][1] for clip in ids],
        skipped=skipped_rows,
    )
    _write_outputs(out_dir, features, index, skipped_rows)
    note = f", {len(skipped_rows)} skipped (see {out_dir / SKIPPED})" if skipped_rows else ""
    print(f"features {backbone}: {len(ids)} of {len(clips)} clips extracted{note}", flush=True)
    return index


class _Batch:
    """The clips decoded since the last chunk. `flush` encodes them and saves
    them, with the clips skipped meanwhile, as the next chunk file, and adds
    both to `done` and `skipped`: a killed run keeps every flushed batch."""

    def __init__(self, partial: Path, model, steps: int, done: dict, skipped: dict, bar) -> None:
        self.partial, self.model, self.steps, self.bar = partial, model, steps, bar
        self.done, self.skipped = done, skipped
        self.number = len(list(partial.glob("chunk-*.npz")))  # of the next chunk file
        self._start()

    def _start(self) -> None:
        self.ids: list[str] = []
        self.frames: list[np.ndarray] = []
        self.valid: list[int] = []
        self.skipped_now: dict[str, str] = {}

    def add(self, clip: str, frames, n_valid: int, error: str | None) -> None:
        if error is not None:
            self.skipped_now[clip] = error
        else:
            self.ids.append(clip)
            self.frames.append(frames)
            self.valid.append(n_valid)

    def flush(self) -> None:
        if not self.ids and not self.skipped_now:
            return
        if self.ids:
            feats = _encode(self.model, self.frames, self.valid)
        else:  # only skipped clips: the chunk still records them
            feats = np.zeros((0, self.steps, self.model.width), np.float32)
        _save_chunk(self.partial, self.number, self.ids, feats, self.valid, self.skipped_now)
        for clip, f, n_valid in zip(self.ids, feats, self.valid, strict=True):
            self.done[clip] = (f, n_valid)
        self.skipped.update(self.skipped_now)
        self.bar.update(len(self.ids) + len(self.skipped_now))
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
    clip_ids: list[str],
    valid_lengths: list[int],
    skipped: list[dict[str, str]],
) -> dict[str, Any]:
    return {
        "backbone": backbone,
        "weights": weights,
        "hf_id": model.spec.hf_id,
        "pretrained_width": model.spec.width,
        "width": width,
        "input_size": model.input_size,
        "frames_per_step": model.frames_per_step,
        "fps": fps,
        "window_s": window_s,
        "steps": round(window_s * fps),
        "padding": "start",
        "seed": seed,
        "device": str(model.device),
        "code_version": code_version(),
        "labels_sha256": labels_sha256,
        "created": utc_now(),
        "clip_ids": clip_ids,
        "valid_lengths": valid_lengths,
        "skipped": skipped,
    }


def _write_outputs(out_dir: Path, features, index: dict[str, Any], skipped_rows) -> None:
    """The store, then the skipped-clips report; the partial chunks go last, so
    a run killed before the store is complete still resumes from them."""
    write_store(out_dir, features, index)
    atomic_write_text(
        out_dir / SKIPPED,
        pd.DataFrame(skipped_rows, columns=["id", "reason"]).to_csv(index=False),
    )
    shutil.rmtree(out_dir / PARTIAL)
