"""Concatenate the stores of a named fusion."""

from expsearch.joblog import job_log

with job_log(snakemake):
    from expsearch.jobs import fuse_features

    index = fuse_features(snakemake.wildcards.fusion, snakemake.input, snakemake.output.index)
    print(f"{len(index['clip_ids'])} clips x {index['width']} features")
