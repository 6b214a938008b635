"""Extract the feature store of one backbone for every clip (from the frames cache
when its rule declares one, else from the videos)."""

from expsearch.joblog import job_log

with job_log(snakemake):
    import torch

    torch.set_num_threads(snakemake.threads)  # the cores Snakemake gave this job, no more

    from expsearch.jobs import extract_features
    from expsearch.settings import data_settings, feature_settings

    index = extract_features(
        snakemake.wildcards.backbone,
        data_settings(snakemake.params.data),
        feature_settings(snakemake.params.features),
        clips=snakemake.input.clips,
        manifest=snakemake.input.manifest,
        labels=snakemake.input.labels,
        out=snakemake.output.index,
        workers=snakemake.threads,
        frames=snakemake.input.get("frames"),
        frames_array=snakemake.input.get("frames_array"),
    )
    print(f"{len(index['clip_ids'])} clips x {index['width']} features")
