"""Figure 1: the rule graph of the workflow whose Snakefile is the declared input."""

from expsearch.joblog import job_log

with job_log(snakemake):
    from expsearch.paper.figures import save
    from expsearch.paper.overview import draw_overview, parse_rulegraph, rulegraph

    graph = parse_rulegraph(rulegraph(snakemake.input.snakefile))
    written = save({"overview": draw_overview(graph)}, dict(snakemake.output.items()))
    print(f"{len(graph.rules)} rules, {len(graph.edges)} edges; {len(written)} files")
