"""Write the space summary (JSON + Markdown) and a small seeded sample of configs."""

from expsearch.joblog import job_log

with job_log(snakemake):
    from expsearch.jobs import space_summary
    from expsearch.settings import space_settings

    summary = space_summary(
        space_settings(snakemake.params),
        json_out=snakemake.output.json,
        markdown_out=snakemake.output.markdown,
        sample_out=snakemake.output.sample,
        n_sample=snakemake.params.n_sample,
        seed=snakemake.params.seed,
    )
    print(f"discrete cells: {summary['discrete_cells']:,}")
