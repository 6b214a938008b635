"""The paper's analyses of an experiment table (Section 5, Appendices A and C).

    from expsearch.analysis.table import load_table
    from expsearch.analysis.run import analyze
    table = load_table("results/dataset/experiments.parquet")
    result = analyze("variance", table, settings)      # settings: expsearch.settings.analysis_settings

One module per family, each over an ExperimentTable (table.py), each result
a JSON-able dict whose `status` is ok or insufficient_data (result.py):
  baselines.py    pool baselines of Table 2 (random orders, TPE, oracle, generative campaign)
  powerlaw.py     AP*(N) ~ a - b N^-c fits (one curve or many at once), AIC/BIC model comparison
  convergence.py  the convergence analysis: bootstrap, permutation null, subsets, events
  dynamics.py     entropy H(t), agent JSD, innovation rate and its decay
  anova.py        ANOVA (one-way, balanced, within, two-way)
  variance.py     the variance report: the ANOVAs, enrichment, chi-squared, top configs
  cost.py         device-hours, experiments per device-hour, LLM spend, self-healing
The workflow's analysis rules and `expsearch analyze` run them (run.py).
"""
