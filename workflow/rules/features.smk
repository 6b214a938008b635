# Features: one store per backbone (a GPU job on the cluster), then the named
# fusions that concatenate stores.

FEATURES = PARAMS["features"]
STORES = [
    f"{FEATURES['root']}/{name}/index.json"
    for name in [*FEATURES["backbones"], *FEATURES["fusions"]]
]


rule extract_features:
    input:
        clips=CLIPS,
        manifest=MANIFEST,
        labels=LABELS,
    output:
        index=f"{FEATURES['root']}/{{backbone}}/index.json",
        features=f"{FEATURES['root']}/{{backbone}}/features.npy",
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
        f"{RESULTS}/logs/features_{{backbone}}.log",
    conda:
        ENV
    script:
        "../scripts/extract_features.py"


rule fuse_features:
    input:
        lambda wc: [
            f"{FEATURES['root']}/{part}/index.json" for part in FEATURES["fusions"][wc.fusion]
        ],
    output:
        index=f"{FEATURES['root']}/{{fusion}}/index.json",
        features=f"{FEATURES['root']}/{{fusion}}/features.npy",
    wildcard_constraints:
        fusion="|".join(FEATURES["fusions"]) or "^$",
    log:
        f"{RESULTS}/logs/fuse_{{fusion}}.log",
    conda:
        ENV
    script:
        "../scripts/fuse_features.py"
