"""Frozen video/image backbones: a clip's frames -> one feature vector per time step.

    bb = build_backbone("dinov2_b")                              # tiny random model, CPU
    bb = build_backbone("vjepa2", "pretrained", device="cuda")   # Hugging Face checkpoint
    bb = build_backbone("dinov2_b", "pretrained", checkpoint="/data/ckpt/dinov2-base")
    feats = bb.encode(frames)  # uint8 (B, T, H, W, 3) -> float32 (B, T // k, bb.width)

where k = bb.frames_per_step. Frames of any size are resized (squashed, not cropped) to
bb.input_size square (`squash`), scaled to [0,1] and normalised as the weights expect;
frames already at that size are used as they are. On CUDA the forward pass runs under
bf16 autocast. `squash_uint8` is the same resize rounded back to uint8: the shared
decoded-frames cache (`features.frames`) stores frames resized that way. The resize
lives in `features.resize`, which needs torch but not transformers, so that the
decoding job does not import transformers (about 3 s).

`BACKBONES` (defined in `features.specs`, which needs no torch) holds the paper's six
backbones. Each one is built from its real transformers class in one of two ways:

- weights="pretrained": `XModel.from_pretrained(checkpoint or spec.hf_id)` (the cluster
  path): `checkpoint` is a local folder or a hub id (`features.checkpoints`), found first
  by `features.checkpoints.resolve_checkpoint` (in the Hugging Face cache, or downloaded
  when online). Its processor config, when it ships one, must agree with what `encode`
  does (`features.preprocessing.check_preprocessing`).
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

import torch
import transformers

from .checkpoints import Checkpoint, CheckpointError, resolve_checkpoint, with_files
from .preprocessing import check_preprocessing
from .resize import squash, squash_uint8, to_pixels
from .specs import BACKBONES, HALF, IMAGENET_MEAN, IMAGENET_STD, BackboneSpec, input_size

__all__ = [
    "BACKBONES",
    "HALF",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Backbone",
    "BackboneSpec",
    "build_backbone",
    "input_size",
    "squash",
    "squash_uint8",
    "to_pixels",
]

# Images per forward pass (whole clips are kept together): bounds GPU memory for long
# windows while still batching the short clips of a laptop run into one call.
CHUNK_FRAMES = 256


def _width(config) -> int:
    sizes = getattr(config, "hidden_sizes", None)  # ConvNeXt: per-stage widths
    return int(sizes[-1] if sizes else config.hidden_size)


def _native_size(config) -> int:
    # V-JEPA 2 ties its RoPE grid to crop_size; the ViTs' position tables to image_size.
    return int(getattr(config, "crop_size", None) or config.image_size)


class Backbone:
    """A frozen backbone in eval mode, with the preprocessing its weights expect."""

    def __init__(
        self,
        spec: BackboneSpec,
        model,
        weights: str,
        input_size: int,
        device,
        checkpoint: str | None = None,
    ):
        self.spec = spec
        self.model = model
        self.weights = weights
        self.checkpoint = checkpoint  # the folder or hub id loaded (None: random weights)
        self.width = _width(model.config)
        self.input_size = input_size
        self.frames_per_step = spec.frames_per_step
        self.device = torch.device(device)
        self.mean = torch.tensor(spec.mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(spec.std, device=self.device).view(1, 3, 1, 1)

    def __repr__(self) -> str:
        return (
            f"Backbone({self.spec.name!r}, weights={self.weights!r}, "
            f"checkpoint={self.checkpoint!r}, width={self.width}, "
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
        x = to_pixels(frames.to(self.device))
        if (h, w) != (s, s):
            x = squash(x, s)
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
    name: str,
    weights: str = "random",
    device: str | torch.device = "cpu",
    seed: int = 0,
    checkpoint: str | None = None,
) -> Backbone:
    """The named backbone, frozen and in eval mode on `device`.

    weights="pretrained" loads `checkpoint` (a local folder or a Hugging Face id;
    None: `spec.hf_id`) and raises if it cannot be had; it never falls back to random
    weights. The registry's own id must have the registry's width; another checkpoint's
    width comes from its config and its input size from its files (`Checkpoint.input_size`).
    weights="random" builds the tiny config with `torch.manual_seed(seed)`, without
    touching the global RNG state or the network, and takes no checkpoint."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {list(BACKBONES)}")
    if weights not in ("pretrained", "random"):
        raise ValueError(f"weights must be 'pretrained' or 'random', got {weights!r}")
    spec = BACKBONES[name]
    if weights == "pretrained":
        found, model = _load_pretrained(spec, checkpoint)
        size = found.input_size
        source = found.source
    else:
        if checkpoint is not None:
            raise ValueError(f"{name}: checkpoint {checkpoint!r} needs weights='pretrained'")
        config = getattr(transformers, spec.config_class)(**spec.tiny)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = getattr(transformers, spec.model_class)(config)
        # The decoded-frames cache sizes its frames by specs.input_size, without a model.
        if _native_size(config) != input_size(name, weights):
            raise RuntimeError(f"{name}: tiny config size does not match specs.input_size")
        size, source = input_size(name, weights), None
    cfg = model.config
    # V-JEPA 2's RoPE positions assume crop_size inputs, and one output step is one tubelet.
    if spec.video and (cfg.crop_size != size or cfg.tubelet_size != spec.frames_per_step):
        raise RuntimeError(
            f"{name}: {source or 'the tiny config'} has crop_size {cfg.crop_size} and "
            f"tubelet_size {cfg.tubelet_size}, the extractor feeds {size} px and "
            f"{spec.frames_per_step} frames per step"
        )
    model.eval().requires_grad_(False).to(device)
    return Backbone(spec, model, weights, size, device, checkpoint=source)


def _load_pretrained(spec: BackboneSpec, checkpoint: str | None) -> tuple[Checkpoint, object]:
    """The checkpoint, found before anything is loaded (so that a missing one says
    where it was looked for and how to fetch it), and its model in float32 (autocast
    gives bf16 on CUDA, and the CPU path stays float32), checked against the registry
    (its own id only) and against its processor config."""
    found = resolve_checkpoint(spec.name, checkpoint)
    try:
        model = getattr(transformers, spec.model_class).from_pretrained(
            found.load_path, dtype=torch.float32
        )
    except OSError as exc:  # name the checkpoint: the hub's message often does not
        raise CheckpointError(
            f"{spec.name}: cannot load pretrained {found.source!r}: {exc}"
        ) from exc
    found = with_files(found)
    width = _width(model.config)
    if found.registry and width != spec.width:
        raise RuntimeError(f"{found.source}: width {width}, registry says {spec.width}")
    if found.folder is not None:
        check_preprocessing(
            spec.name, found.folder, input_size=found.input_size, mean=spec.mean, std=spec.std
        )
    return found, model
