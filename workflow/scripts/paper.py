"""The paper's tables, figures and values.tex from the analyses' declared files."""

from pathlib import Path

from expsearch.joblog import job_log

with job_log(snakemake):
    from expsearch.paper.figures import draw_figures, save
    from expsearch.paper.write import RESULTS, read_results, write_paper
    from expsearch.settings import space_settings

    params = snakemake.params.params
    inputs = {Path(path).name: path for path in snakemake.input.analysis}
    results = read_results({family: inputs[f"{family}.json"] for family in RESULTS})
    figures = draw_figures(inputs, min_runs=params["paper"]["heatmap_min_runs"])
    outputs = dict(snakemake.output.items())
    written = write_paper(results, space_settings(params), outputs)
    written += save(figures, outputs)
    print(f"{len(written)} files")
