"""The backbone registry: each backbone's checkpoint, width, frames per step and input size.

    from expsearch.features.specs import BACKBONES, input_size
    BACKBONES["vjepa2"].frames_per_step     # 2
    input_size("dinov2_b", "pretrained")    # 224: the square side its frames are squashed to
    input_size("dinov2_b", "random")        # 56: the tiny random-weight config's side
    input_size("dinov2_b", "pretrained", "ckpt/my-dinov2")  # what that folder's files say

Kept apart from `backbones` (which builds the models) because it imports neither torch
nor transformers: the workflow reads it when it builds the DAG (the decoded-frames cache
has one file per distinct input size, see `features.frames`), and every Snakemake start
and every cluster job parses the workflow again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .preprocessing import checkpoint_input_size

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)  # SigLIP normalises [0,1] RGB to [-1,1]


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    hf_id: str  # Hugging Face model id of the pretrained checkpoint (transformers, not timm)
    width: int  # feature width with pretrained weights
    frames_per_step: int  # frames consumed per output step: 2 for vjepa2, 1 for frame models
    input_size: int  # square input resolution the pretrained model expects
    mean: tuple[float, float, float]  # normalisation of [0,1] RGB
    std: tuple[float, float, float]
    model_class: str  # transformers class, used for both pretrained and random weights
    config_class: str  # its config class, for the tiny random-weight config
    video: bool = False  # True: one forward over the whole clip; False: frame by frame
    tiny: Mapping[str, Any] = field(default_factory=dict, hash=False)  # tiny config kwargs


# fmt: off
# Columns: name, pretrained id, pretrained width, frames per step, pretrained input size,
# normalisation, transformers classes, then the tiny random-weight config.
BACKBONES: dict[str, BackboneSpec] = {spec.name: spec for spec in [
    BackboneSpec(
        "vjepa2", "facebook/vjepa2-vitl-fpc64-256", 1024, 2, 256, IMAGENET_MEAN, IMAGENET_STD,
        "VJEPA2Model", "VJEPA2Config", video=True,
        # The predictor is never run (skip_predictor=True) but is always built: keep it small.
        tiny=dict(crop_size=64, frames_per_clip=16, hidden_size=64, num_hidden_layers=2,
                  num_attention_heads=4, pred_hidden_size=32, pred_num_hidden_layers=1,
                  pred_num_attention_heads=4, num_pooler_layers=1),
    ),
    BackboneSpec(
        "dinov2_b", "facebook/dinov2-base", 768, 1, 224, IMAGENET_MEAN, IMAGENET_STD,
        "Dinov2Model", "Dinov2Config",
        # Patch 14, so 56 px (4 x 4 patches) rather than 64.
        tiny=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=56,
                  patch_size=14),
    ),
    BackboneSpec(
        "dinov3_b", "facebook/dinov3-vitb16-pretrain-lvd1689m", 768, 1, 224,
        IMAGENET_MEAN, IMAGENET_STD, "DINOv3ViTModel", "DINOv3ViTConfig",
        tiny=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                  num_attention_heads=4, image_size=64, patch_size=16, num_register_tokens=4),
    ),
    BackboneSpec(
        "dinov3_l", "facebook/dinov3-vitl16-pretrain-lvd1689m", 1024, 1, 224,
        IMAGENET_MEAN, IMAGENET_STD, "DINOv3ViTModel", "DINOv3ViTConfig",
        # Wider than dinov3_b's tiny config so that the two stay distinct models.
        tiny=dict(hidden_size=96, intermediate_size=384, num_hidden_layers=2,
                  num_attention_heads=4, image_size=64, patch_size=16, num_register_tokens=4),
    ),
    # The fixed-resolution SigLIP 2 checkpoints ("-patch16-224", ...) are stored as SigLIP v1
    # models (model_type "siglip", Conv2d patch embedding, learned 14 x 14 position table) and
    # load with SiglipVisionModel on plain pixel_values. Only the "-naflex" checkpoints are
    # Siglip2VisionModel, whose nn.Linear patch embedding takes pre-patchified pixels plus
    # pixel_attention_mask and spatial_shapes. Evidence: the installed modeling_siglip2.py
    # (Siglip2VisionEmbeddings), transformers' convert_siglip2_to_hf.py (converts only
    # "siglip2-base-patch-16-naflex"), the SigLIP 2 docs ("FixRes ... backwards compatible
    # with SigLIP"), and transformers issue #36845: Siglip2VisionModel.from_pretrained on
    # google/siglip2-so400m-patch14-384 warns "You are using a model of type
    # siglip_vision_model to instantiate a model of type siglip2_vision_model" and then fails
    # to load the state dict.
    BackboneSpec(
        "siglip2", "google/siglip2-base-patch16-224", 768, 1, 224, HALF, HALF,
        "SiglipVisionModel", "SiglipVisionConfig",
        tiny=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                  num_attention_heads=4, image_size=64, patch_size=16),
    ),
    # ConvNeXt-B pretrained on ImageNet-22k only (no 1k fine-tuning, so less tied to the 1k
    # classes): the transformers port of the ConvNeXt authors' weights, the same network as
    # timm "convnext_base.fb_in22k". Pooled width = last stage width = 1024.
    BackboneSpec(
        "convnext", "facebook/convnext-base-224-22k", 1024, 1, 224, IMAGENET_MEAN, IMAGENET_STD,
        "ConvNextModel", "ConvNextConfig",
        tiny=dict(hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 2, 1], image_size=64),
    ),
]}
# fmt: on


def input_size(name: str, weights: str, checkpoint: str | Path | None = None) -> int:
    """The square side (pixels) that backbone `name` with `weights` squashes frames to:
    the registry checkpoint's `input_size`; for `checkpoint`, the folder of another
    pretrained checkpoint, what its own files say (`preprocessing.checkpoint_input_size`:
    a JSON read); or the tiny config's own (V-JEPA 2 ties its RoPE grid to crop_size,
    the ViTs their position tables to image_size)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {list(BACKBONES)}")
    if weights not in ("pretrained", "random"):
        raise ValueError(f"weights must be 'pretrained' or 'random', got {weights!r}")
    if checkpoint is not None and weights != "pretrained":
        raise ValueError(f"{name}: a checkpoint ({checkpoint}) needs weights='pretrained'")
    spec = BACKBONES[name]
    if checkpoint is not None:
        return checkpoint_input_size(checkpoint)
    if weights == "pretrained":
        return spec.input_size
    return int(spec.tiny.get("crop_size") or spec.tiny["image_size"])
