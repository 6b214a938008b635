"""Compile every campaign's ledger into results/dataset/."""

import json
from pathlib import Path

from expsearch.campaign.dataset import compile_dataset

summary = compile_dataset(snakemake.params.params, Path(snakemake.output.summary).parent)
with open(snakemake.log[0], "w") as log:
    print(json.dumps(summary, indent=1), file=log)


def show(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


for name, campaign in summary.items():
    best = campaign["best"]
    shown = f"best val AP {show(best['val_ap'])} (test {show(best['test_ap'])})" if best else "none"
    print(f"[{name}] {campaign['finished']}/{campaign['experiments']} finished; {shown}")
