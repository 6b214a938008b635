"""One family of the paper's analyses, from the dataset to results/analysis/."""

from expsearch.joblog import job_log

with job_log(snakemake):
    from expsearch.analysis.describe import describe_result
    from expsearch.analysis.run import run_family
    from expsearch.settings import analysis_settings, space_settings

    params = snakemake.params.params
    tables = {name: path for name, path in snakemake.output.items() if name != "json"}
    result = run_family(
        snakemake.params.family,
        data=snakemake.input.experiments,
        settings=analysis_settings(params["analysis"]),
        space=space_settings(params),
        agent_log=snakemake.input.get("agent_log"),
        out=snakemake.output.json,
        tables=tables,
    )
    print(describe_result(result))
