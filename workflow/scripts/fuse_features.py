"""Concatenate the stores of a named fusion."""

from pathlib import Path

from expsearch.features.fusion import fuse_stores
from expsearch.features.store import open_store

stores = [open_store(Path(index).parent) for index in snakemake.input]
fuse_stores(stores, snakemake.wildcards.fusion, Path(snakemake.output.index).parent)
