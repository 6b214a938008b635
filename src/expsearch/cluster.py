"""The LLM agents' API keys stay on the head node: sbatch is called without them.

    private_sbatch(params["agents"]["llm"], "workflow/bin")   # common.smk, at DAG time

Only the proposal rule reads the keys (`agents.llm.<name>.api_key_env`), and it runs
on the head node. snakemake-executor-plugin-slurm submits every job with
`sbatch --export=ALL` (and refuses another --export in slurm_extra), and SLURM keeps a
job's exported environment in its controller's state until the job is purged, so the
keys would reach every GPU job and that saved copy. `workflow/bin/sbatch`, put first
on PATH here, unsets the variables named in EXPSEARCH_PRIVATE_ENV and runs the real
sbatch (EXPSEARCH_SBATCH). Without sbatch on PATH (a laptop) PATH is left alone.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, MutableMapping
from typing import Any

PRIVATE = "EXPSEARCH_PRIVATE_ENV"
REAL_SBATCH = "EXPSEARCH_SBATCH"


def private_sbatch(
    llm_agents: Mapping[str, Mapping[str, Any]],
    wrappers: str,
    environ: MutableMapping[str, str] = os.environ,
) -> list[str]:
    """Name the key variables of `llm_agents` (params `agents.llm`) for the sbatch
    wrapper in folder `wrappers`, and put that folder first on PATH when there is an
    sbatch to wrap (once: jobs inherit it). Returns the variable names."""
    names = sorted({agent["api_key_env"] for agent in llm_agents.values()})
    environ[PRIVATE] = " ".join(names)
    real = shutil.which("sbatch", path=environ.get("PATH"))
    if real and REAL_SBATCH not in environ:
        environ[REAL_SBATCH] = real
        environ["PATH"] = os.pathsep.join([wrappers, environ.get("PATH", "")])
    return names
