"""What a checkpoint's own files say about its input, and the check against the extractor.

    checkpoint_input_size("ckpt/dinov2-base")      # 224: the side its processor feeds
    check_preprocessing("dinov2_b", "ckpt/dinov2-base", input_size=224,
                        mean=IMAGENET_MEAN, std=IMAGENET_STD)   # raises PreprocessingError
    trained_frames("ckpt/vjepa2")                  # 64: the clip length it was trained on
    check_frames_per_clip("vjepa2", "ckpt/vjepa2", 64, steps=30, frames_per_step=2,
                          fps=5.0, window_s=6.0)   # 60 frames fed: fine

A Hugging Face checkpoint folder holds the model's `config.json` and, usually, the
processor config its authors fed it with: `preprocessor_config.json` (images) or
`video_preprocessor_config.json` (V-JEPA 2). The extractor does not run that processor
(it squashes frames to a square and normalises them itself, see `features.backbones`),
so a checkpoint whose processor disagrees with what the extractor does would get
inputs it was not trained on, silently. Only plain JSON is read here, so the workflow
can size the decoded-frames cache from a checkpoint while it builds the DAG, without
torch or transformers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

CONFIG = "config.json"
# Looked for in this order; a checkpoint ships one of them, if any.
PROCESSOR_FILES = ("video_preprocessor_config.json", "preprocessor_config.json")
# Processor configs round to a few decimals (0.485, 0.456, ...), and the CLIP-style
# statistics that some processors default to differ from ImageNet's by >= 0.003.
_TOLERANCE = 5e-4

__all__ = [
    "CONFIG",
    "PROCESSOR_FILES",
    "PreprocessingError",
    "check_frames_per_clip",
    "check_preprocessing",
    "checkpoint_input_size",
    "processor_config",
    "processor_size",
    "read_json",
    "trained_frames",
]


class PreprocessingError(ValueError):
    """A checkpoint's processor config that disagrees with the extractor; names the file."""


def read_json(path: Path) -> dict[str, Any]:
    """A checkpoint's JSON file; one that cannot be read is an error naming it."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PreprocessingError(f"{path}: cannot read it as JSON: {exc}") from exc


def processor_config(folder: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint's processor config file and its contents, or None without one."""
    for name in PROCESSOR_FILES:
        path = Path(folder) / name
        if path.is_file():
            return path, read_json(path)
    return None


def _side(value: Any, key: str, path: Path) -> int | None:
    """The square side of a processor size entry: an int, {height, width} or
    {shortest_edge} (ConvNeXt crops or warps to it; others keep the aspect ratio,
    so the side is the nearest the square squash gets to it)."""
    if isinstance(value, int):
        return value
    if not isinstance(value, Mapping):
        return None
    if "height" in value or "width" in value:
        if value.get("height") != value.get("width"):
            raise PreprocessingError(
                f"{path}: {key} {value} is not square; the extractor feeds square frames"
            )
        return int(value["height"])
    if "shortest_edge" in value:
        return int(value["shortest_edge"])
    return None


def processor_size(config: Mapping[str, Any], path: Path) -> tuple[str, int] | None:
    """(key, side) of the size the processor feeds the model: its crop when it
    center-crops (the default of the processors that have a crop_size), else its
    resize; None when it does not resize."""
    crop = config.get("crop_size")
    if crop is not None and config.get("do_center_crop", True):
        side = _side(crop, "crop_size", path)
        if side is not None:
            return "crop_size", side
    if config.get("do_resize", True) and config.get("size") is not None:
        side = _side(config["size"], "size", path)
        if side is not None:
            return "size", side
    return None


def checkpoint_input_size(folder: str | Path) -> int:
    """The square side a checkpoint folder is meant to be fed: its processor's size
    when it has a processor config that resizes, else its config.json's crop_size
    (V-JEPA 2) or image_size. The processor comes first because the config's size is
    not always the input's: DINOv2's config says 518 (its position table), its
    processor crops to 224."""
    found = processor_config(folder)
    if found is not None:
        sized = processor_size(found[1], found[0])
        if sized is not None:
            return sized[1]
    path = Path(folder) / CONFIG
    config = read_json(path)
    size = config.get("crop_size") or config.get("image_size")
    if not isinstance(size, int):
        raise PreprocessingError(
            f"{path}: no input size (crop_size or image_size) and no processor config "
            f"({' or '.join(PROCESSOR_FILES)}) that gives one"
        )
    return size


def _differs(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) != len(b) or any(
        abs(float(x) - float(y)) > _TOLERANCE for x, y in zip(a, b, strict=True)
    )


def check_preprocessing(
    name: str,
    folder: str | Path,
    *,
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> Path | None:
    """Raise PreprocessingError, naming both values and the file, when the
    checkpoint's processor config feeds the model another size than `input_size`
    or normalises with another mean or std than the extractor's. Returns the file
    checked, or None when the checkpoint has no processor config: then nothing is
    checked (the size came from its config.json, and its normalisation is unknown).

    Not compared: the resize method (the extractor squashes, processors usually
    resize the short side and crop). A video checkpoint's clip length is in its
    config.json, not here (`check_frames_per_clip`), and its tubelet size is checked
    against the model's config when it is built."""
    found = processor_config(folder)
    if found is None:
        return None
    path, config = found
    problems = []
    sized = processor_size(config, path)
    if sized is not None and sized[1] != input_size:
        key, side = sized
        problems.append(f"it feeds {side} px ({key}), the extractor {input_size} px")
    if config.get("do_normalize", True):
        theirs = {"image_mean": config.get("image_mean"), "image_std": config.get("image_std")}
    else:  # the processor leaves [0, 1] pixels as they are
        theirs = {"image_mean": [0.0, 0.0, 0.0], "image_std": [1.0, 1.0, 1.0]}
    for key, ours in (("image_mean", mean), ("image_std", std)):
        if theirs[key] is not None and _differs(theirs[key], ours):
            problems.append(f"its {key} is {theirs[key]}, the extractor's {list(ours)}")
    if problems:
        raise PreprocessingError(
            f"{name}: the checkpoint's processor config {path} disagrees with the "
            f"extractor: {'; '.join(problems)}. Features of a model fed other inputs "
            "than it was trained on are not comparable; use a checkpoint made for "
            "these inputs, or another backbone."
        )
    return path


def trained_frames(folder: str | Path) -> int | None:
    """The clip length a video checkpoint was trained on (its config.json's
    frames_per_clip), or None when its files do not say (image models)."""
    path = Path(folder) / CONFIG
    return read_json(path).get("frames_per_clip") if path.is_file() else None


def check_frames_per_clip(
    backbone: str,
    source: str | None,
    trained: int | None,
    *,
    steps: int,
    frames_per_step: int,
    fps: float,
    window_s: float,
) -> None:
    """A video checkpoint must not be fed longer clips than it was trained on (`trained`
    frames: 64 for vjepa2-vitl-fpc64): its positions past that were never seen.
    Shorter clips are within what it knows; `trained` None makes no claim. Raises
    PreprocessingError naming both lengths and where the fed one comes from."""
    fed = steps * frames_per_step
    if trained is None or fed <= trained:
        return
    raise PreprocessingError(
        f"{backbone}: the checkpoint {source!r} was trained on clips of {trained} frames "
        f"(its config's frames_per_clip), the extractor would feed {fed} ({steps} steps "
        f"of data.window_s {window_s} x data.fps {fps}, {frames_per_step} frames each); "
        "shorten data.window_s or use a checkpoint made for longer clips"
    )
