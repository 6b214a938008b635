# The paper from the analyses: Tables 1-4 (Markdown, LaTeX), Figures 2-5 (PDF, PNG)
# and values.tex under results/paper/ (expsearch.paper). `snakemake --report
# report.html` shows the figures with their captions. `expsearch paper` does the same.


rule paper:
    input:
        analysis=ANALYSIS_FILES,
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
    log:
        f"{LOGS}/paper.log",
    conda:
        ENV
    script:
        "../scripts/paper.py"
