"""Read the clip table of the data source and write the hashed split manifest."""

from expsearch.joblog import job_log

with job_log(snakemake):
    from expsearch.jobs import split_clips
    from expsearch.settings import data_settings

    inputs = snakemake.input
    manifest = split_clips(
        data_settings(snakemake.params.data),
        labels=inputs.labels,
        videos=inputs.videos,
        clips=snakemake.output.clips,
        manifest=snakemake.output.manifest,
        competition_videos=inputs.get("competition_videos"),
        competition_labels=inputs.get("competition_labels"),
    )
    for name, ids in manifest.splits.items():
        print(f"{name}: {len(ids)} clips")
