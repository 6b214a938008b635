"""Write the space summary (JSON + Markdown) and a small seeded sample of configs."""

import json

from expsearch.atomic import atomic_write_text
from expsearch.space import Space, summary_markdown
from expsearch.yamlio import dump_yaml

space = Space.from_dict(snakemake.params.space)
summary = space.summary()
atomic_write_text(snakemake.output.json, json.dumps(summary, indent=2) + "\n")
atomic_write_text(snakemake.output.markdown, summary_markdown(summary))
sample = space.sample(snakemake.params.n_sample, seed=snakemake.params.seed)
atomic_write_text(snakemake.output.sample, dump_yaml([config.to_dict() for config in sample]))
with open(snakemake.log[0], "w") as log:
    print(f"discrete cells: {summary['discrete_cells']:,}", file=log)
