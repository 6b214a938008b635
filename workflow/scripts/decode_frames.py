"""Decode every clip's window once into the shared frames cache, for all backbones."""

from expsearch.joblog import job_log

with job_log(snakemake):
    from expsearch.jobs import decode_frames

    index = decode_frames(
        snakemake.params.plan,
        fps=snakemake.params.fps,
        window_s=snakemake.params.window_s,
        clips=snakemake.input.clips,
        manifest=snakemake.input.manifest,
        labels=snakemake.input.labels,
        out=snakemake.output.index,
        workers=snakemake.threads,
    )
    print(f"{len(index['clip_ids'])} clips, {len(index['skipped'])} skipped")
