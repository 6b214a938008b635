"""Generate the synthetic dashcam set (videos + Nexar-layout train.csv)."""

from dataclasses import fields
from pathlib import Path

from expsearch.data.synthetic import Difficulty, generate

settings = dict(snakemake.params.synthetic)
difficulty = Difficulty(**{f.name: settings[f.name] for f in fields(Difficulty)})
root = Path(snakemake.output.labels).parent
table = generate(
    root,
    n=settings["n"],
    seed=settings["seed"],
    variant=settings["variant"],
    duration_s=settings["duration_s"],
    difficulty=difficulty,
    workers=settings["workers"],
)
with open(snakemake.log[0], "w") as log:
    print(f"{len(table)} clips, {int(table['target'].sum())} positive, in {root}", file=log)
