# Features: every clip's window decoded once for all backbones (a CPU job), one
# store per backbone (a GPU job on the cluster) reading those frames, then the
# named fusions that concatenate stores. With features.decode: per_backbone, each
# extraction decodes the videos itself and decode_frames is not run. Paths are
# in common.smk.


rule decode_frames:
    input:
        clips=CLIPS,
        manifest=MANIFEST,
        labels=LABELS,
        **VIDEO_INPUTS,
    output:
        index=FRAMES["index"],
        frames=FRAMES["frames"],
        skipped=FRAMES["skipped"],
    params:
        # Only what the frames depend on: other features settings do not decode again.
        plan=FRAME_PLAN,
        fps=DATA["fps"],
        window_s=DATA["window_s"],
    threads: FEATURES["decode_resources"]["cpus"]
    resources:
        slurm_partition=FEATURES["decode_resources"]["slurm_partition"],
        gpu=FEATURES["decode_resources"]["gpu"],
        mem_mb=FEATURES["decode_resources"]["mem_mb"],
        runtime=FEATURES["decode_resources"]["runtime"],
    log:
        f"{LOGS}/decode_frames.log",
    benchmark:
        f"{BENCHMARKS}/decode_frames.tsv"
    conda:
        ENV
    script:
        "../scripts/decode_frames.py"


rule extract_features:
    input:
        unpack(extraction_inputs),
        clips=CLIPS,
        manifest=MANIFEST,
        labels=LABELS,
    output:
        index=store_files(FEATURES["root"], "{backbone}")[0],
        features=store_files(FEATURES["root"], "{backbone}")[1],
        skipped=skipped_file(FEATURES["root"], "{backbone}"),
    wildcard_constraints:
        backbone="|".join(FEATURES["backbones"]),
    params:
        data=DATA,
        features=FEATURES,
    threads: FEATURES["resources"]["cpus"]
    resources:
        slurm_partition=FEATURES["resources"]["slurm_partition"],
        gpu=FEATURES["resources"]["gpu"],
        mem_mb=FEATURES["resources"]["mem_mb"],
        runtime=FEATURES["resources"]["runtime"],
    log:
        f"{LOGS}/features_{{backbone}}.log",
    benchmark:
        f"{BENCHMARKS}/features_{{backbone}}.tsv"
    conda:
        ENV
    script:
        "../scripts/extract_features.py"


rule fuse_features:
    input:
        fusion_parts,
    output:
        index=store_files(FEATURES["root"], "{fusion}")[0],
        features=store_files(FEATURES["root"], "{fusion}")[1],
    wildcard_constraints:
        fusion="|".join(FEATURES["fusions"]) or "^$",
    log:
        f"{LOGS}/fuse_{{fusion}}.log",
    conda:
        ENV
    script:
        "../scripts/fuse_features.py"
