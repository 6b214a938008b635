"""Generate the synthetic dashcam set (videos + Nexar-layout train.csv)."""

from expsearch.joblog import job_log

with job_log(snakemake):
    from expsearch.jobs import synthesize
    from expsearch.settings import synth_settings

    table = synthesize(synth_settings(snakemake.params.synthetic), **snakemake.output)
    print(f"{len(table)} clips, {int(table['target'].sum())} positive")
