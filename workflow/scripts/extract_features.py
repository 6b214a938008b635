"""Extract the feature store of one backbone for every clip."""

from pathlib import Path

from expsearch.data.sources import read_clip_table
from expsearch.data.splits import load_manifest
from expsearch.features.extract import extract_store

data, features = snakemake.params.data, snakemake.params.features
manifest = load_manifest(snakemake.input.manifest, labels_file=snakemake.input.labels)
extract_store(
    read_clip_table(snakemake.input.clips),
    snakemake.wildcards.backbone,
    Path(snakemake.output.index).parent,
    weights=features["weights"],
    fps=data["fps"],
    window_s=data["window_s"],
    batch_size=features["batch_size"],
    device=features["device"],
    seed=features["seed"],
    labels_sha256=manifest.labels_sha256,
    decode_workers=max(1, snakemake.threads),
)
