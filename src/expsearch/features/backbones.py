"""Frozen video/image backbones: a clip's frames -> one feature vector per time step.

    bb = build_backbone("dinov2_b")                              # tiny random model, CPU
    bb = build_backbone("vjepa2", "pretrained", device="cuda")   # Hugging Face checkpoint
    feats = bb.encode(frames)  # uint8 (B, T, H, W, 3) -> float32 (B, T // k, bb.width)

where k = bb.frames_per_step. Frames of any size are resized (squashed, not cropped) to
bb.input_size square, scaled to [0,1] and normalised as the weights expect; on CUDA the
forward pass runs under bf16 autocast.

`BACKBONES` holds the paper's six backbones. Each one is built from its real
transformers class in one of two ways:

- weights="pretrained": `XModel.from_pretrained(spec.hf_id)` (the cluster path; needs the
  checkpoint in the Hugging Face cache or network access).
- weights="random": the same class built from a tiny config (width 64-96, 2 transformer
  layers or 4 small ConvNeXt stages, 56-64 px) with weights seeded by `seed`; no file is
  read and nothing is downloaded. Tests and laptop runs use it: every code path of the
  real model class runs, at a fraction of the cost.

Frame models (DINOv2, DINOv3, SigLIP 2, ConvNeXt) encode every frame on its own and return
their pooled vector, so `frames_per_step = 1`. V-JEPA 2 is a video model whose 3D-conv
tubelets span 2 frames: its patch tokens are averaged over space per tubelet, so one output
step consumes 2 frames (`frames_per_step = 2`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
import transformers

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)  # SigLIP normalises [0,1] RGB to [-1,1]

# Images per forward pass (whole clips are kept together): bounds GPU memory for long
# windows while still batching the short clips of a laptop run into one call.
CHUNK_FRAMES = 256


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


def _width(config) -> int:
    sizes = getattr(config, "hidden_sizes", None)  # ConvNeXt: per-stage widths
    return int(sizes[-1] if sizes else config.hidden_size)


def _native_size(config) -> int:
    # V-JEPA 2 ties its RoPE grid to crop_size; the ViTs' position tables to image_size.
    return int(getattr(config, "crop_size", None) or config.image_size)


class Backbone:
    """A frozen backbone in eval mode, with the preprocessing its weights expect."""

    def __init__(self, spec: BackboneSpec, model, weights: str, input_size: int, device):
        self.spec = spec
        self.model = model
        self.weights = weights
        self.width = _width(model.config)
        self.input_size = input_size
        self.frames_per_step = spec.frames_per_step
        self.device = torch.device(device)
        self.mean = torch.tensor(spec.mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(spec.std, device=self.device).view(1, 3, 1, 1)

    def __repr__(self) -> str:
        return (
            f"Backbone({self.spec.name!r}, weights={self.weights!r}, width={self.width}, "
            f"input_size={self.input_size}, frames_per_step={self.frames_per_step}, "
            f"device={str(self.device)!r})"
        )

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: uint8 (B, T, H, W, 3) RGB, any H, W, T a multiple of frames_per_step.
        Returns float32 (B, T // frames_per_step, width) on the CPU."""
        if frames.dtype != torch.uint8 or frames.ndim != 5 or frames.shape[-1] != 3:
            raise ValueError(
                f"expected uint8 (B, T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}"
            )
        b, t = frames.shape[:2]
        if t == 0 or t % self.frames_per_step:
            raise ValueError(f"T={t} is not a positive multiple of {self.frames_per_step}")
        per_chunk = max(1, CHUNK_FRAMES // t)  # clips are independent, so chunking is exact
        return torch.cat([self._encode(frames[i : i + per_chunk]) for i in range(0, b, per_chunk)])

    @torch.inference_mode()
    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        b, t, h, w, _ = frames.shape
        s = self.input_size
        # Move uint8 (4x smaller than float) and resize on the device.
        x = frames.to(self.device).permute(0, 1, 4, 2, 3).reshape(b * t, 3, h, w).float() / 255
        if (h, w) != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        x = (x - self.mean) / self.std
        with torch.autocast("cuda", torch.bfloat16, enabled=self.device.type == "cuda"):
            if self.spec.video:
                out = self._video(x.reshape(b, t, 3, s, s))
            else:
                out = self.model(pixel_values=x).pooler_output.view(b, t, -1)
        return out.float().cpu()

    def _video(self, x: torch.Tensor) -> torch.Tensor:
        # Tokens come from Conv3d(...).flatten(2), i.e. in (t, h, w) order, one per tubelet of
        # `tubelet_size` frames x patch x patch pixels: average each tubelet's grid over space.
        cfg = self.model.config
        tokens = self.model(pixel_values_videos=x, skip_predictor=True).last_hidden_state
        g = self.input_size // cfg.patch_size
        return tokens.view(x.shape[0], x.shape[1] // cfg.tubelet_size, g, g, -1).mean((2, 3))


def build_backbone(
    name: str, weights: str = "random", device: str | torch.device = "cpu", seed: int = 0
) -> Backbone:
    """The named backbone, frozen and in eval mode on `device`.

    weights="pretrained" loads `spec.hf_id` (raises if it cannot be had; never falls back to
    random weights). weights="random" builds the tiny config with `torch.manual_seed(seed)`,
    without touching the global RNG state or the network."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {list(BACKBONES)}")
    if weights not in ("pretrained", "random"):
        raise ValueError(f"weights must be 'pretrained' or 'random', got {weights!r}")
    spec = BACKBONES[name]
    model_class = getattr(transformers, spec.model_class)
    if weights == "pretrained":
        try:  # float32 weights: autocast gives bf16 on CUDA, and the CPU path stays float32
            model = model_class.from_pretrained(spec.hf_id, dtype=torch.float32)
        except OSError as exc:  # name the checkpoint: the hub's message often does not
            raise OSError(f"{name}: cannot load pretrained {spec.hf_id!r}: {exc}") from exc
        if _width(model.config) != spec.width:
            raise RuntimeError(
                f"{spec.hf_id}: width {_width(model.config)}, registry says {spec.width}"
            )
        input_size = spec.input_size
    else:
        config = getattr(transformers, spec.config_class)(**spec.tiny)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = model_class(config)
        input_size = _native_size(config)
    cfg = model.config
    # V-JEPA 2's RoPE positions assume crop_size inputs, and one output step is one tubelet.
    if spec.video and (cfg.crop_size != input_size or cfg.tubelet_size != spec.frames_per_step):
        raise RuntimeError(f"{name}: crop_size/tubelet_size do not match the registry")
    model.eval().requires_grad_(False).to(device)
    return Backbone(spec, model, weights, input_size, device)
