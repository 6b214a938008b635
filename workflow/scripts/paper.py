"""The paper's tables, figures and values.tex from the analyses' declared files, and
the cross-task table from every task's variance analysis."""

from pathlib import Path

from expsearch.joblog import job_log

with job_log(snakemake):
    from expsearch.paper.figures import draw_figures, save
    from expsearch.paper.write import (
        RESULTS,
        read_cross_task,
        read_results,
        write_cross_task,
        write_paper,
    )
    from expsearch.settings import space_settings

    params = snakemake.params.params
    inputs = {Path(path).name: path for path in snakemake.input.analysis}
    results = read_results({family: inputs[f"{family}.json"] for family in RESULTS})
    figures = draw_figures(inputs, min_runs=params["paper"]["heatmap_min_runs"])
    # Each task's variance.json and variance_groups.csv, declared side by side.
    task_dirs = {
        task: Path(snakemake.input[f"cross_task_{task}"][0]).parent
        for task in snakemake.params.tasks
    }
    cross = read_cross_task(task_dirs)
    outputs = dict(snakemake.output.items())
    written = write_paper(results, space_settings(params), outputs)
    written += save(figures, outputs)
    written += write_cross_task(cross, {fmt: outputs[f"cross_task_{fmt}"] for fmt in ("md", "tex")})
    print(f"{len(written)} files")
