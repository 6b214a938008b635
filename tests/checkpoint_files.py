"""Tiny pretrained checkpoints as users keep them, for the checkpoint and cluster tests.

    save_checkpoint("dinov2_b", folder, seed=0)   # save_pretrained: model + its processor
    cache_with(cache, "tiny-org/dinov2", folder)  # the same files in a Hugging Face cache

Each is the backbone's tiny random-weight model of the real transformers class, saved
with a processor config of the checkpoint's own kind that feeds what the extractor does
(so loading it passes the preprocessing check).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import transformers

from expsearch.features.backbones import BACKBONES, Backbone, build_backbone
from expsearch.features.specs import input_size

REVISION = "0123456789abcdef0123456789abcdef01234567"


def processor(name: str):
    """A processor of the checkpoint's own kind that feeds what the extractor does."""
    spec, side = BACKBONES[name], input_size(name, "random")
    norm = {"image_mean": list(spec.mean), "image_std": list(spec.std)}
    square = {"height": side, "width": side}
    if name == "vjepa2":
        return transformers.VJEPA2VideoProcessor(
            crop_size=square, size={"shortest_edge": side + 8}, **norm
        )
    if name == "dinov2_b":  # DINOv2's hub processor: resize the short side, then crop
        return transformers.BitImageProcessor(
            crop_size=square, size={"shortest_edge": side + 8}, do_center_crop=True, **norm
        )
    if name.startswith("dinov3"):
        return transformers.DINOv3ViTImageProcessor(size=square, **norm)
    if name == "siglip2":
        return transformers.SiglipImageProcessor(size=square, **norm)
    return transformers.ConvNextImageProcessor(size={"shortest_edge": side}, **norm)


def save_checkpoint(name: str, folder: Path, seed: int = 0) -> Backbone:
    """Backbone `name`'s tiny model (weights seeded by `seed`) and its processor,
    written to `folder` with save_pretrained; returns the model saved."""
    model = build_backbone(name, "random", seed=seed)
    if name == "vjepa2":  # the clip length of the registry's fpc64 checkpoint (no weight uses it)
        model.model.config.frames_per_clip = 64
    model.model.save_pretrained(folder)
    processor(name).save_pretrained(folder)
    return model


def cache_with(cache: Path, repo_id: str, folder: Path) -> Path:
    """`folder`'s files as huggingface_hub caches `repo_id`:
    models--<org>--<name>/snapshots/<rev>/ + refs/main; returns the snapshot."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / REVISION
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return snapshot
