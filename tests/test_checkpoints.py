"""Pretrained checkpoints from where users keep them: a local folder, or the Hugging Face
cache offline. Each backbone's tiny random model of the real class is saved with a
matching processor config, loaded back by folder and by hub id, and must give the saved
model's features (so its weights were loaded); missing checkpoints, processor configs
that disagree with the extractor and stray params entries fail, naming what and where."""

from __future__ import annotations

import json
import shutil
import types
from pathlib import Path

import huggingface_hub
import numpy as np
import pandas as pd
import pytest
import torch

from expsearch.features import extract as extract_module
from expsearch.features.backbones import BACKBONES, build_backbone
from expsearch.features.checkpoints import (
    CheckpointError,
    check_checkpoints,
    check_clip_lengths,
    find_checkpoints,
    input_sizes,
    resolve_checkpoint,
)
from expsearch.features.extract import check_clip_length, extract_store
from expsearch.features.frames import frame_plan
from expsearch.features.preprocessing import PreprocessingError, check_preprocessing
from expsearch.features.specs import IMAGENET_MEAN, IMAGENET_STD, input_size
from expsearch.params import ParamsError, check_params
from expsearch.settings import feature_settings

from .checkpoint_files import REVISION, cache_with, save_checkpoint

NAMES = list(BACKBONES)


def _clip(name: str) -> torch.Tensor:
    gen = torch.Generator().manual_seed(7)
    return torch.randint(0, 256, (1, 2, 40, 72, 3), dtype=torch.uint8, generator=gen)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict:
    """name -> (checkpoint folder, seed-0 features of a clip, seed-1 features)."""
    root = tmp_path_factory.mktemp("checkpoints")
    out = {}
    for name in NAMES:
        folder = root / name
        model = save_checkpoint(name, folder)
        clip = _clip(name)
        other = build_backbone(name, "random", seed=1).encode(clip)
        out[name] = (folder, model.encode(clip), other)
    return out


def _hub_settings(monkeypatch, cache: Path, offline: bool = True) -> None:
    """huggingface_hub reads these when imported (and transformers asks it), so set the
    environment for child processes and its constants for this one."""
    cache.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", offline)


def _no_network(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError(f"tried to download {args}")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)


def _assert_loaded(bb, name: str, saved: dict, checkpoint: str) -> None:
    _, expected, other = saved[name]
    assert bb.weights == "pretrained" and bb.checkpoint == checkpoint
    assert bb.input_size == input_size(name, "random") and bb.width == expected.shape[-1]
    got = bb.encode(_clip(name))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(got, other, atol=1e-3)  # another seed: the weights matter


@pytest.mark.parametrize("name", NAMES)
def test_a_local_folder_loads_the_saved_weights(saved, name):
    folder = saved[name][0]
    _assert_loaded(
        build_backbone(name, "pretrained", checkpoint=str(folder)), name, saved, str(folder)
    )


@pytest.mark.parametrize("name", NAMES)
def test_a_hub_id_loads_from_the_offline_cache(saved, name, tmp_path, monkeypatch):
    repo_id = f"tiny-org/{name}-tiny"
    cache_with(tmp_path / "hub", repo_id, saved[name][0])
    _hub_settings(monkeypatch, tmp_path / "hub")
    _no_network(monkeypatch)
    found = check_checkpoints([name], {name: repo_id})[name]
    assert (
        found.folder == tmp_path / "hub" / f"models--tiny-org--{name}-tiny" / "snapshots" / REVISION
    )
    assert input_sizes([name], "pretrained", {name: repo_id}) == {name: input_size(name, "random")}
    _assert_loaded(build_backbone(name, "pretrained", checkpoint=repo_id), name, saved, repo_id)


def test_a_missing_folder_names_the_backbone_the_folder_and_how_to_fetch(saved, tmp_path):
    missing = tmp_path / "nowhere" / "dinov2-base"
    with pytest.raises(CheckpointError) as info:
        build_backbone("dinov2_b", "pretrained", checkpoint=str(missing))
    message = str(info.value)
    assert "dinov2_b" in message and str(missing) in message and "does not exist" in message
    assert f"hf download facebook/dinov2-base --local-dir {missing}" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=r"dinov2_b: .*empty.* has no config\.json"):
        resolve_checkpoint("dinov2_b", str(empty))
    config_only = tmp_path / "config_only"
    config_only.mkdir()
    shutil.copy(saved["dinov2_b"][0] / "config.json", config_only)
    with pytest.raises(CheckpointError, match=r"config_only.* but no weights"):
        resolve_checkpoint("dinov2_b", str(config_only))


def test_offline_a_hub_id_missing_from_the_cache_fails_before_loading(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    _hub_settings(monkeypatch, cache)
    _no_network(monkeypatch)
    checkpoints = {"siglip2": "someone/siglip-finetune"}
    with pytest.raises(CheckpointError) as info:
        input_sizes(["dinov2_b", "siglip2"], "pretrained", checkpoints)
    message = str(info.value)
    # Every missing checkpoint in one error: the registry's default and the configured one.
    assert "dinov2_b: checkpoint 'facebook/dinov2-base'" in message
    assert "siglip2: checkpoint 'someone/siglip-finetune'" in message
    assert str(cache) in message and "HF_HUB_OFFLINE=1" in message
    assert "`hf download someone/siglip-finetune`" in message
    assert "`hf download someone/siglip-finetune --local-dir <folder>`" in message
    assert "features.checkpoints.siglip2" in message
    # Random weights look for nothing.
    assert input_sizes(["dinov2_b"], "random", checkpoints={}) == {"dinov2_b": 56}


def test_offline_a_cached_id_without_its_weights_fails(saved, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    cache_with(cache, "tiny-org/convnext", saved["convnext"][0])
    (cache / "models--tiny-org--convnext" / "snapshots" / REVISION / "model.safetensors").unlink()
    _hub_settings(monkeypatch, cache)
    with pytest.raises(
        CheckpointError, match=r"convnext: .*'tiny-org/convnext'.* without its weights"
    ):
        resolve_checkpoint("convnext", "tiny-org/convnext")


def test_online_the_registry_id_may_be_downloaded_later(tmp_path, monkeypatch):
    _hub_settings(monkeypatch, tmp_path / "hub", offline=False)
    _no_network(monkeypatch)  # its input size is the registry's: nothing to fetch now
    found = resolve_checkpoint("vjepa2")
    assert found.registry and found.folder is None and found.input_size == 256
    assert input_sizes(["vjepa2", "dinov2_b"], "pretrained") == {"vjepa2": 256, "dinov2_b": 224}


def test_online_another_id_that_cannot_be_fetched_names_it(tmp_path, monkeypatch):
    _hub_settings(monkeypatch, tmp_path / "hub", offline=False)

    def no_network(repo_id, filename, **kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint("dinov3_b", "someone/dinov3-finetune")
    message = str(info.value)
    assert "dinov3_b" in message and "'someone/dinov3-finetune'" in message
    assert "connection refused" in message and "HF_HUB_OFFLINE=1" in message


def test_a_processor_with_another_normalisation_is_refused(saved, tmp_path):
    folder = tmp_path / "dinov2"
    shutil.copytree(saved["dinov2_b"][0], folder)
    processor = folder / "preprocessor_config.json"
    config = json.loads(processor.read_text())
    config["image_mean"] = [0.5, 0.5, 0.5]
    processor.write_text(json.dumps(config))
    with pytest.raises(PreprocessingError) as info:
        build_backbone("dinov2_b", "pretrained", checkpoint=str(folder))
    message = str(info.value)
    assert "dinov2_b" in message and str(processor) in message
    assert "image_mean is [0.5, 0.5, 0.5]" in message and str(list(IMAGENET_MEAN)) in message


def test_a_processor_of_another_size_is_refused(saved, tmp_path):
    folder = saved["dinov2_b"][0]
    with pytest.raises(PreprocessingError) as info:
        check_preprocessing("dinov2_b", folder, input_size=64, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    message = str(info.value)
    assert "feeds 56 px (crop_size), the extractor 64 px" in message
    assert str(folder / "preprocessor_config.json") in message
    # V-JEPA 2's RoPE grid is its config's crop_size: a processor cropping elsewhere is refused.
    vjepa = tmp_path / "vjepa2"
    shutil.copytree(saved["vjepa2"][0], vjepa)
    processor = vjepa / "video_preprocessor_config.json"
    config = json.loads(processor.read_text())
    config["crop_size"] = {"height": 32, "width": 32}
    processor.write_text(json.dumps(config))
    with pytest.raises(RuntimeError, match=r"crop_size 64 .* the extractor feeds 32 px"):
        build_backbone("vjepa2", "pretrained", checkpoint=str(vjepa))


def test_without_a_processor_config_nothing_is_checked(saved, tmp_path):
    folder = tmp_path / "siglip2"
    shutil.copytree(saved["siglip2"][0], folder)
    (folder / "preprocessor_config.json").unlink()
    assert (
        check_preprocessing("siglip2", folder, input_size=999, mean=(0,) * 3, std=(1,) * 3) is None
    )
    bb = build_backbone("siglip2", "pretrained", checkpoint=str(folder))
    assert bb.input_size == 64  # from config.json's image_size


def test_the_input_size_comes_from_the_processor_before_the_config(tmp_path):
    """DINOv2's config says 518 (its position table), its processor crops to 224."""
    (tmp_path / "config.json").write_text(json.dumps({"image_size": 518}))
    assert input_size("dinov2_b", "pretrained", tmp_path) == 518
    processor = {"crop_size": {"height": 224, "width": 224}, "do_center_crop": True,
                 "size": {"shortest_edge": 256}}  # fmt: skip
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(processor))
    assert input_size("dinov2_b", "pretrained", tmp_path) == 224
    plan = frame_plan(["vjepa2", "dinov2_b"], "pretrained", {"dinov2_b": 112})
    assert plan == {112: [1], 256: [2]}


def test_the_extraction_loads_the_checkpoint_and_records_it(saved, tmp_path, monkeypatch):
    folder, expected, _ = saved["siglip2"]
    frames = _clip("siglip2")[0].numpy()
    monkeypatch.setattr(extract_module, "load_window", lambda row, *args: (frames, 2))
    clips = pd.DataFrame({"id": ["a", "b"]})
    index = extract_store(clips, "siglip2", tmp_path / "store", weights="pretrained",
                          fps=1.0, window_s=2.0, device="cpu", checkpoint=str(folder),
                          progress=False)  # fmt: skip
    assert index["checkpoint"] == str(folder) and index["width"] == expected.shape[-1]
    stored = np.load(tmp_path / "store" / "features.npy")
    np.testing.assert_allclose(stored[0], expected[0].numpy(), atol=1e-5)


def test_the_job_passes_each_backbones_checkpoint(default_params, monkeypatch):
    from expsearch import jobs
    from expsearch.data import sources, splits

    seen = {}
    monkeypatch.setattr(
        splits, "load_manifest", lambda *a, **k: types.SimpleNamespace(labels_sha256="")
    )
    monkeypatch.setattr(sources, "read_clip_table", lambda path: pd.DataFrame())
    monkeypatch.setattr(extract_module, "extract_store", lambda *a, **k: seen.update(k) or {})
    features = dict(default_params["features"], checkpoints={"convnext": "/ckpt/convnext"})
    settings = feature_settings(dict(features, weights="pretrained"))
    data = types.SimpleNamespace(fps=5.0, window_s=6.0)
    paths = dict(clips="c", manifest="m", labels="l", out="o/index.json")
    jobs.extract_features("convnext", data, settings, **paths)
    assert seen["checkpoint"] == "/ckpt/convnext" and seen["weights"] == "pretrained"
    jobs.extract_features("siglip2", data, settings, **paths)
    assert seen["checkpoint"] is None  # not named: the registry's id
    jobs.extract_features("convnext", data, feature_settings(features), **paths)
    assert seen["checkpoint"] is None  # random weights take no checkpoint


def test_params_name_checkpoints_of_extracted_backbones_only(params):
    params["features"]["checkpoints"] = {"dinov2_b": "/data/ckpt/dinov2-base"}
    check_params(params)
    assert feature_settings(params["features"]).checkpoints == {
        "dinov2_b": "/data/ckpt/dinov2-base"
    }
    params["features"]["backbones"].remove("dinov2_b")
    params["space"]["dimensions"]["backbone"]["values"].remove("dinov2_b")
    with pytest.raises(ParamsError) as info:
        check_params(params)
    problems = dict(info.value.problems)
    assert "is not in features.backbones" in problems["features.checkpoints.dinov2_b"]
    params["features"]["checkpoints"] = {"eva02": "/data/ckpt/eva02"}
    with pytest.raises(ParamsError) as info:
        check_params(params)
    assert "unknown name" in dict(info.value.problems)["features.checkpoints.eva02"]


def test_the_cli_names_one_backbones_checkpoint(monkeypatch):
    from expsearch import cli, jobs

    from .conftest import ROOT

    seen = {}
    monkeypatch.setattr(
        jobs, "extract_features", lambda backbone, data, features, **paths: seen.update(f=features)
    )
    args = ["features", "extract", "--params", str(ROOT / "params.yaml"), "--backbone",
            "convnext", "--weights", "pretrained", "--clips", "c", "--manifest", "m",
            "--labels", "l", "--out", "o"]  # fmt: skip
    assert cli.main([*args, "--checkpoint", "/ckpt/convnext"]) == 0
    assert seen["f"].weights == "pretrained"
    assert seen["f"].checkpoints == {"convnext": "/ckpt/convnext"}
    assert cli.main(args) == 0
    assert seen["f"].checkpoints == {}  # params.yaml's features.checkpoints


def test_a_video_checkpoint_is_not_fed_longer_clips_than_it_was_trained_on(saved, tmp_path):
    folder = tmp_path / "vjepa2"
    shutil.copytree(saved["vjepa2"][0], folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["frames_per_clip"] == 64  # as facebook/vjepa2-vitl-fpc64-256
    config["frames_per_clip"] = 16
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(PreprocessingError) as info:
        extract_store(pd.DataFrame({"id": ["a"]}), "vjepa2", tmp_path / "store",
                      weights="pretrained", fps=5.0, window_s=2.0, device="cpu",
                      checkpoint=str(folder), progress=False)  # fmt: skip
    message = str(info.value)
    assert "trained on clips of 16 frames" in message and "would feed 20 (10 steps" in message
    assert str(folder) in message and not (tmp_path / "store").exists()
    bb = build_backbone("vjepa2", "pretrained", checkpoint=str(folder))
    check_clip_length(bb, 8, fps=5.0, window_s=1.6)  # 16 frames: what it was trained on
    check_clip_length(build_backbone("vjepa2", "random"), 30, fps=5.0, window_s=6.0)  # no claim


def test_a_folders_files_are_named_for_the_workflow_and_a_hub_ids_are_not(
    saved, tmp_path, monkeypatch
):
    """The files a folder checkpoint loads are its extraction's inputs; a hub id's
    cached snapshot is not declared (it moves with upstream commits)."""
    found = find_checkpoints(["dinov2_b"], "pretrained", {"dinov2_b": str(saved["dinov2_b"][0])})
    names = [path.name for path in found["dinov2_b"].files]
    assert names == ["config.json", "preprocessor_config.json", "model.safetensors"]
    assert find_checkpoints(["dinov2_b"], "random", {"dinov2_b": "/nowhere"}) == {}

    cache = tmp_path / "hub"
    _hub_settings(monkeypatch, cache)
    cache_with(cache, "our-lab/dinov2", saved["dinov2_b"][0])
    cached = resolve_checkpoint("dinov2_b", "our-lab/dinov2")
    assert cached.folder is not None and cached.files == ()


def test_sharded_weights_are_declared_shard_by_shard_and_a_missing_one_is_named(tmp_path):
    index = "model.safetensors.index.json"
    folder = tmp_path / "sharded"
    build_backbone("dinov2_b", "random", seed=0).model.save_pretrained(
        folder, max_shard_size="100KB"
    )
    shards = sorted(json.loads((folder / index).read_text())["weight_map"].values())
    shards = sorted(set(shards))
    assert len(shards) > 1
    files = resolve_checkpoint("dinov2_b", str(folder)).files
    assert [p.name for p in files] == ["config.json", index, *shards]
    (folder / shards[1]).unlink()
    with pytest.raises(
        CheckpointError, match=f"lacks 1 of the weight shards its index names \\({shards[1]}\\)"
    ):
        resolve_checkpoint("dinov2_b", str(folder))


def test_found_checkpoints_or_their_sources_not_both(saved):
    source = {"dinov2_b": str(saved["dinov2_b"][0])}
    found = find_checkpoints(["dinov2_b"], "pretrained", source)
    assert input_sizes(["dinov2_b"], "pretrained", found=found) == input_sizes(
        ["dinov2_b"], "pretrained", source
    )
    with pytest.raises(ValueError, match="not both"):
        input_sizes(["dinov2_b"], "pretrained", source, found=found)


def test_a_config_that_is_not_json_is_named(saved, tmp_path):
    folder = tmp_path / "vjepa2"
    shutil.copytree(saved["vjepa2"][0], folder)
    (folder / "config.json").write_text("{not json")
    found = {"vjepa2": resolve_checkpoint("vjepa2", str(folder))}
    with pytest.raises(PreprocessingError, match=f"{folder / 'config.json'}: cannot read it"):
        check_clip_lengths(found, fps=5.0, window_s=6.0)


def test_the_clip_length_is_checked_from_the_checkpoints_config(saved, tmp_path):
    """What the workflow checks when it builds the DAG, before a GPU job starts."""
    folder = tmp_path / "vjepa2"
    shutil.copytree(saved["vjepa2"][0], folder)
    found = find_checkpoints(["vjepa2", "dinov2_b"], "pretrained",
                             {"vjepa2": str(folder), "dinov2_b": str(saved["dinov2_b"][0])})  # fmt: skip
    assert found["vjepa2"].frames_per_clip == 64 and found["dinov2_b"].frames_per_clip is None
    check_clip_lengths(found, fps=5.0, window_s=6.0)  # 60 frames of 64
    with pytest.raises(PreprocessingError, match=r"trained on clips of 64 frames.*would feed 70"):
        check_clip_lengths(found, fps=5.0, window_s=7.0)
