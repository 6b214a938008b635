# The paper from the analyses: Tables 1-4 (Markdown, LaTeX), Figures 2-5 (PDF, PNG)
# and values.tex under results/paper/ (expsearch.paper). `snakemake --report
# report.html` shows the figures with their captions; tables/cross_task.{md,tex}
# compares the tasks (params.yaml `tasks`). `expsearch paper` does the same;
# Figure 1 (rule overview) is the workflow's rule graph (`expsearch overview`).


rule paper:
    input:
        analysis=ANALYSIS_FILES,
        # The cross-task table: every task's variance analysis (the primary's and
        # those of the task modules, whose rules are named <task>_<rule>).
        **{
            f"cross_task_{task}": [*variance.output]
            for task, variance in task_rules("analysis_variance").items()
        },
    output:
        **PAPER_TEXT_FILES,
        **{
            key: report(path, caption=f"../report/figure_{key[:-4]}.rst", category="Paper")
            if key.endswith("_png")
            else path
            for key, path in PAPER_FIGURE_FILES.items()
        },
    params:
        params=PAPER_PARAMS,
        tasks=[*task_rules("analysis_variance")],
    log:
        f"{LOGS}/paper.log",
    conda:
        ENV
    script:
        "../scripts/paper.py"


rule overview:
    """Figure 1 from the workflow's own rule graph (`snakemake --rulegraph`)."""
    input:
        snakefile="Snakefile",
        rules=sorted(glob.glob("workflow/rules/*.smk")),
        params="params.yaml",
    output:
        overview_pdf=f"{PAPER}/figures/overview.pdf",
        overview_png=report(
            f"{PAPER}/figures/overview.png",
            caption="../report/figure_overview.rst",
            category="Paper",
        ),
    log:
        f"{LOGS}/overview.log",
    conda:
        ENV
    script:
        "../scripts/overview.py"
