"""Backbone registry and per-step encoding, with tiny random-weight models (no downloads)."""

from __future__ import annotations

import huggingface_hub
import pytest
import torch

from expsearch.features import backbones
from expsearch.features.backbones import BACKBONES, build_backbone

NAMES = list(BACKBONES)


def _clip(shape=(2, 8, 48, 80, 3), seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)


@pytest.fixture(scope="module")
def built() -> dict:
    """One seed-0 random backbone per name, shared by the read-only tests."""
    return {name: build_backbone(name, "random", seed=0) for name in NAMES}


def test_registry_lists_the_six_backbones_with_their_checkpoints():
    expected = {
        "vjepa2": ("facebook/vjepa2-vitl-fpc64-256", 1024, 2, 256),
        "dinov2_b": ("facebook/dinov2-base", 768, 1, 224),
        "dinov3_b": ("facebook/dinov3-vitb16-pretrain-lvd1689m", 768, 1, 224),
        "dinov3_l": ("facebook/dinov3-vitl16-pretrain-lvd1689m", 1024, 1, 224),
        "siglip2": ("google/siglip2-base-patch16-224", 768, 1, 224),
        "convnext": ("facebook/convnext-base-224-22k", 1024, 1, 224),
    }
    assert list(expected) == NAMES
    for name, spec in BACKBONES.items():
        assert spec.name == name
        assert (spec.hf_id, spec.width, spec.frames_per_step, spec.input_size) == expected[name]
    assert BACKBONES["siglip2"].model_class == "SiglipVisionModel"  # fixed-res, not NaFlex


@pytest.mark.parametrize("name", NAMES)
def test_random_backbone_gives_one_float_vector_per_step(built, name):
    bb = built[name]
    feats = bb.encode(_clip())
    assert bb.weights == "random"
    assert feats.dtype == torch.float32 and feats.device.type == "cpu"
    assert feats.shape == (2, 8 // bb.frames_per_step, bb.width)
    assert torch.isfinite(feats).all()
    assert 32 <= bb.width <= 128 and bb.input_size <= 64  # tiny config, not the real size


@pytest.mark.parametrize("name", NAMES)
def test_random_weights_depend_only_on_the_seed(built, name):
    clip = _clip()
    same = build_backbone(name, "random", seed=0).encode(clip)
    other = build_backbone(name, "random", seed=1).encode(clip)
    assert torch.equal(same, built[name].encode(clip))
    assert not torch.allclose(same, other, atol=1e-3)


def test_building_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_backbone("dinov2_b", "random", seed=7)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("name", NAMES)
def test_a_clip_encodes_the_same_alone_and_in_a_batch(built, name):
    a, b = _clip((1, 8, 48, 80, 3), seed=1), _clip((1, 8, 48, 80, 3), seed=2)
    alone = built[name].encode(a)
    batched = built[name].encode(torch.cat([b, a, b]))
    torch.testing.assert_close(batched[1:2], alone, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_features_change_with_the_frames(built, name):
    clip = _clip()
    changed = clip.clone()
    changed[:, :, 10:30, 20:60] = 255 - changed[:, :, 10:30, 20:60]
    assert not torch.allclose(built[name].encode(clip), built[name].encode(changed), atol=1e-4)


def test_chunked_encoding_equals_one_pass(built, monkeypatch):
    clip = _clip((3, 8, 48, 80, 3))
    whole = built["siglip2"].encode(clip)
    monkeypatch.setattr(backbones, "CHUNK_FRAMES", 8)  # one clip per forward pass
    torch.testing.assert_close(built["siglip2"].encode(clip), whole, atol=1e-5, rtol=0)


def test_vjepa2_steps_follow_time():
    """With the transformer layers removed, each output token depends on its own tubelet only,
    so changing frames 4..7 must change steps 2 and 3 and leave steps 0 and 1 exactly alone.
    If the tokens were ordered (h, w, t), every "step" would mix all times and change."""
    bb = build_backbone("vjepa2", "random")
    bb.model.encoder.layer = torch.nn.ModuleList()
    clip = _clip((1, 8, 64, 64, 3))
    later = clip.clone()
    later[:, 4:] = _clip((1, 4, 64, 64, 3), seed=5)
    before, after = bb.encode(clip), bb.encode(later)
    assert before.shape == (1, 4, bb.width)
    torch.testing.assert_close(after[:, :2], before[:, :2], atol=1e-6, rtol=0)
    assert (after[:, 2:] - before[:, 2:]).abs().amax(-1).min() > 1e-3


def test_vjepa2_patch_tokens_are_ordered_t_h_w():
    """The reshape in Backbone._video assumes token n = (t * g + i) * g + j for tubelet t,
    patch row i, column j: check it against the Conv3d applied to each tubelet by hand."""
    bb = build_backbone("vjepa2", "random")
    cfg, g = bb.model.config, bb.input_size // bb.model.config.patch_size
    p, k = cfg.patch_size, cfg.tubelet_size
    video = torch.randn(1, 6, 3, bb.input_size, bb.input_size)  # (B, T, C, H, W)
    with torch.no_grad():
        tokens = bb.model.encoder.embeddings(video).view(1, 6 // k, g, g, -1)
        proj = bb.model.encoder.embeddings.patch_embeddings.proj
        for t, i, j in [(0, 0, 1), (1, 2, 0), (2, 3, 3), (2, 0, 2)]:
            cube = video[0, t * k : (t + 1) * k, :, i * p : (i + 1) * p, j * p : (j + 1) * p]
            expected = (proj.weight * cube.permute(1, 0, 2, 3)).sum((1, 2, 3, 4)) + proj.bias
            torch.testing.assert_close(tokens[0, t, i, j], expected, atol=1e-4, rtol=1e-4)


def test_encode_rejects_bad_frames(built):
    with pytest.raises(ValueError, match="multiple of 2"):
        built["vjepa2"].encode(_clip((1, 7, 32, 32, 3)))
    with pytest.raises(ValueError, match="uint8"):
        built["dinov2_b"].encode(_clip().float())


def test_unknown_name_and_weights_are_refused():
    with pytest.raises(
        ValueError, match=r"vjepa2.*dinov2_b.*dinov3_b.*dinov3_l.*siglip2.*convnext"
    ):
        build_backbone("resnet50")
    with pytest.raises(ValueError, match="'pretrained' or 'random'"):
        build_backbone("dinov2_b", weights="imagenet")


def test_pretrained_really_loads_the_checkpoint(monkeypatch, tmp_path):
    """Offline and with an empty cache the pretrained path must fail, not fall back to random.
    huggingface_hub reads these settings at import, so patch its constants too."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(OSError, match="dinov2-base"):
        build_backbone("dinov2_b", "pretrained")
