# The paper's analyses of the dataset: one rule per family, each a JSON of
# results plus CSVs of the series the figures draw (expsearch.analysis).
# `expsearch analyze FAMILY --data results/dataset/experiments.parquet` runs the same.

rule analysis_baselines:
    input:
        experiments=rules.dataset.output.experiments,
    output:
        json=report(
            f"{ANALYSIS}/baselines.json", caption="../report/baselines.rst", category="Analysis"
        ),
        **analysis_tables("baselines"),
    params:
        family="baselines",
        params=ANALYSIS_PARAMS,
    log:
        f"{LOGS}/analysis/baselines.log",
    conda:
        ENV
    script:
        "../scripts/analyze.py"


rule analysis_convergence:
    input:
        experiments=rules.dataset.output.experiments,
    output:
        json=report(
            f"{ANALYSIS}/convergence.json",
            caption="../report/convergence.rst",
            category="Analysis",
        ),
        **analysis_tables("convergence"),
    params:
        family="convergence",
        params=ANALYSIS_PARAMS,
    log:
        f"{LOGS}/analysis/convergence.log",
    conda:
        ENV
    script:
        "../scripts/analyze.py"


rule analysis_dynamics:
    input:
        experiments=rules.dataset.output.experiments,
    output:
        json=report(
            f"{ANALYSIS}/dynamics.json", caption="../report/dynamics.rst", category="Analysis"
        ),
        **analysis_tables("dynamics"),
    params:
        family="dynamics",
        params=ANALYSIS_PARAMS,
    log:
        f"{LOGS}/analysis/dynamics.log",
    conda:
        ENV
    script:
        "../scripts/analyze.py"


rule analysis_variance:
    input:
        experiments=rules.dataset.output.experiments,
    output:
        json=report(
            f"{ANALYSIS}/variance.json", caption="../report/variance.rst", category="Analysis"
        ),
        **analysis_tables("variance"),
    params:
        family="variance",
        params=ANALYSIS_PARAMS,
    log:
        f"{LOGS}/analysis/variance.log",
    conda:
        ENV
    script:
        "../scripts/analyze.py"


rule analysis_cost:
    input:
        experiments=rules.dataset.output.experiments,
        agent_log=rules.dataset.output.agent_log,
    output:
        json=report(f"{ANALYSIS}/cost.json", caption="../report/cost.rst", category="Analysis"),
    params:
        family="cost",
        params=ANALYSIS_PARAMS,
    log:
        f"{LOGS}/analysis/cost.log",
    conda:
        ENV
    script:
        "../scripts/analyze.py"
