"""A copy of the repository's workflow files to run Snakemake in, and a
small version of the embedded default (used by the workflow tests).

    dest = copy_repo(tmp_path / "repo"); small(dest); snakemake(dest, "--dry-run")
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from expsearch.yamlio import dump_yaml, load_yaml_file

from .conftest import ROOT

BIN = Path(sys.executable).parent
COPIED = [
    "Snakefile",
    "params.yaml",
    "dvc.yaml",
    ".dvc",
    ".dvcignore",
    "workflow",
    "profiles",
    "src",
]


def copy_repo(dest: Path) -> Path:
    """A copy of the workflow's files, so runs never touch the real results/."""
    dest.mkdir(parents=True)
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "tmp"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def small(repo: Path, n: int = 12, rounds: int = 1, tasks: bool = False) -> None:
    """Shrink the embedded default to seconds: 12 clips, two backbones and
    their fusion (the space's backbone dimension follows, as a user would),
    one round of two configs per campaign. The split is 0.6/0.2/0.2: at
    0.8/0.1/0.1, 12 clips leave the test split empty, which the split refuses.
    The further tasks (`tasks`) are dropped, or with `tasks` kept at n clips."""
    params = load_yaml_file(repo / "params.yaml")
    params["data"]["synthetic"]["n"] = n
    if tasks:
        for task in params["tasks"].values():
            task["data"]["synthetic"]["n"] = n
    else:
        params.pop("tasks", None)
    params["data"]["split"].update(train=0.6, val=0.2, test=0.2)
    params["features"]["backbones"] = ["vjepa2", "dinov2_b"]
    params["features"]["fusions"] = {"vjepa2_dinov2": ["vjepa2", "dinov2_b"]}
    params["space"]["dimensions"]["backbone"]["values"] = ["vjepa2", "dinov2_b", "vjepa2_dinov2"]
    for campaign in params["campaign"]["campaigns"].values():
        campaign.update(rounds=rounds, shards=1, budget_per_round=2, ideas_per_agent=2)
    (repo / "params.yaml").write_text(dump_yaml(params))


def snakemake(repo: Path, *args: str, env: dict[str, str] | None = None):
    """Run Snakemake in `repo` on one core; `env` adds to the environment."""
    return subprocess.run(
        [str(BIN / "snakemake"), "--workflow-profile", "profiles/default", "--cores", "1", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
