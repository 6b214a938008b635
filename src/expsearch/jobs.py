"""One adapter per data and feature job: typed settings and explicit paths in.

    synthesize(settings.synthetic, root="results/data/synthetic")
    split_clips(data, labels=..., videos=..., clips=..., manifest=...)
    sizes = input_sizes(features.backbones, features.weights, features.checkpoints)
    decode_frames(frame_plan(features.backbones, features.weights, sizes),
                  fps=5, window_s=6.0, clips=..., manifest=..., labels=...,
                  out="results/frames/index.json", workers=8)
    extract_features("vjepa2", data, features, clips=..., manifest=..., labels=...,
                     out="results/features/vjepa2/index.json", workers=2,
                     frames="results/frames/index.json",   # or None: decode the videos
                     frames_array="results/frames/frames-64.npy")
    fuse_features("vjepa2_dinov2", ["results/features/vjepa2/index.json", ...], out=...)

The workflow scripts (workflow/scripts/) and the `expsearch` CLI call these
same functions, so a step runs the same way inside and outside Snakemake:
the script passes its rule's paths, the CLI the paths on its command line,
and both parse params.yaml into settings first (expsearch.settings). The
campaign's jobs need no adapter: their library steps (campaign.steps,
campaign.dataset) already take settings and paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # settings import the agents' SDKs; the workflow imports this module
    from .settings import DataSettings, FeatureSettings, SynthSettings


def synthetic_layout(root: str | Path) -> dict[str, str]:
    """The files `synthesize` writes under `root` (the generator's fixed Nexar layout)."""
    from .data.synthetic import synthetic_layout as layout

    return layout(root)


def synthesize(
    settings: SynthSettings,
    *,
    labels: str | Path,
    scenarios: str | Path,
    videos: str | Path,
    record: str | Path,
    progress: bool = True,
):
    """Render the synthetic set; its label table. The four paths must be the
    generator's layout (synthetic_layout) of one folder: it is checked here."""
    from .data.synthetic import generate

    root = Path(labels).parent
    given = {"labels": labels, "scenarios": scenarios, "videos": videos, "record": record}
    expected = synthetic_layout(root)
    wrong = {key: str(path) for key, path in given.items() if str(path) != expected[key]}
    if wrong:
        raise ValueError(f"the synthetic generator writes {expected}; these paths differ: {wrong}")
    return generate(
        root,
        n=settings.n,
        seed=settings.seed,
        variant=settings.variant,
        duration_s=settings.duration_s,
        difficulty=settings.difficulty,
        workers=settings.workers,
        progress=progress,
    )


def split_clips(
    data: DataSettings,
    *,
    labels: str | Path,
    videos: str | Path,
    clips: str | Path,
    manifest: str | Path,
    competition_videos: str | Path | None = None,
    competition_labels: str | Path | None = None,
):
    """The clip table and the hashed split manifest of the data source; with
    both competition paths (Nexar), its competition clips as a sealed set."""
    from .data.splits import split_source

    return split_source(
        data.source,
        labels,
        videos,
        fractions=data.fractions,
        seed=data.split_seed,
        clips_out=clips,
        manifest_out=manifest,
        competition=(
            {"videos": competition_videos, "labels": competition_labels}
            if competition_videos and competition_labels
            else None
        ),
    )


def decode_frames(
    plan: Mapping[Any, Sequence[int]],
    *,
    fps: float,
    window_s: float,
    clips: str | Path,
    manifest: str | Path,
    labels: str | Path,
    out: str | Path,
    workers: int = 2,
    progress: bool = True,
) -> dict[str, Any]:
    """The decoded-frames cache (`out`: its folder or index.json) of every clip of
    the table, for `plan` ({input size: frames per step}, `features.frames.frame_plan`):
    it takes only what the frames depend on, so that changing another features
    setting does not make the workflow decode again."""
    from .data.sources import read_clip_table
    from .data.splits import load_manifest
    from .features.frames import decode_frames as decode

    checked = load_manifest(manifest, labels_file=labels)
    return decode(
        read_clip_table(clips),
        out,
        plan,
        fps=fps,
        window_s=window_s,
        workers=max(1, workers),
        labels_sha256=checked.labels_sha256,
        progress=progress,
    )


def extract_features(
    backbone: str,
    data: DataSettings,
    features: FeatureSettings,
    *,
    clips: str | Path,
    manifest: str | Path,
    labels: str | Path,
    out: str | Path,
    workers: int = 2,
    frames: str | Path | None = None,
    frames_array: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """One backbone's store (`out`: its folder or index.json) for every clip of the
    table, from the decoded-frames cache `frames` (its folder or index.json; its
    array at this backbone's size `frames_array`, by default the one the index
    names) or, without one, from the videos. With pretrained weights the backbone
    loads its `features.checkpoints` entry (default: its registry id)."""
    from .data.sources import read_clip_table
    from .data.splits import load_manifest
    from .features.extract import extract_store
    from .features.store import store_dir

    checked = load_manifest(manifest, labels_file=labels)
    return extract_store(
        read_clip_table(clips),
        backbone,
        store_dir(out),
        weights=features.weights,
        fps=data.fps,
        window_s=data.window_s,
        batch_size=features.batch_size,
        device=features.device,
        seed=features.seed,
        labels_sha256=checked.labels_sha256,
        decode_workers=max(1, workers),
        max_skipped_fraction=features.max_skipped_fraction,
        frames=frames,
        frames_array=frames_array,
        # features.checkpoints apply to pretrained weights only (random ones are built here).
        checkpoint=features.checkpoints.get(backbone) if features.weights == "pretrained" else None,
        progress=progress,
    )


def fuse_features(name: str, stores: Sequence[str | Path], out: str | Path) -> dict[str, Any]:
    """The per-step concatenation of `stores`, written to `out`. Stores are given
    by their files (folder, index.json or features.npy; a store named twice
    counts once), in fusion order."""
    from .features.fusion import fuse_stores
    from .features.store import open_store, store_dir, stores_by_name

    parts = [open_store(path) for path in stores_by_name(stores).values()]
    return fuse_stores(parts, name, store_dir(out))


def space_summary(
    space: Any,
    *,
    json_out: str | Path,
    markdown_out: str | Path,
    sample_out: str | Path,
    n_sample: int,
    seed: int,
) -> dict[str, Any]:
    """The space's summary as JSON and Markdown, and `n_sample` seeded configs as YAML."""
    import json

    from .atomic import atomic_write_text
    from .space import summary_markdown
    from .yamlio import dump_yaml

    summary = space.summary()
    atomic_write_text(json_out, json.dumps(summary, indent=2) + "\n")
    atomic_write_text(markdown_out, summary_markdown(summary))
    sample = space.sample(n_sample, seed=seed)
    atomic_write_text(sample_out, dump_yaml([config.to_dict() for config in sample]))
    return summary
