# Features: one store per backbone (a GPU job on the cluster), then the named
# fusions that concatenate stores. Paths are in common.smk.


rule extract_features:
    input:
        clips=CLIPS,
        manifest=MANIFEST,
        labels=LABELS,
        videos=VIDEOS,
        **{f"competition_{key}": path for key, path in COMPETITION.items()},
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
