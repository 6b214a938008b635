"""A small campaign on a real single-node SLURM cluster (tests/slurm_cluster.sh).

The cluster (slurmctld + slurmd + munge, two fake GPUs) is installed and
started by the project's script; if it cannot start, the test fails with
the daemons' logs. Snakemake runs with profiles/slurm (plus command-line
settings that keep a small run fast); the shard jobs record the SLURM
partition and devices they got, and the dataset must equal a local run of
the same params.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from expsearch.yamlio import dump_yaml, load_yaml_file

from .conftest import ROOT
from .workflow_repo import BIN, copy_repo, small, snakemake

SCRIPT = ROOT / "tests" / "slurm_cluster.sh"


@pytest.fixture(scope="session")
def slurm_env():
    if os.geteuid() != 0:
        pytest.fail("the SLURM cluster test needs root (it installs and starts daemons)")
    # The script's own default folder: one cluster per machine (one slurmctld port).
    workdir = Path(os.environ.get("SLURM_CI_DIR", "/tmp/expsearch-slurm"))
    env = {**os.environ, "SLURM_CI_DIR": str(workdir)}
    start = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True,
                           text=True, timeout=600)  # fmt: skip
    if start.returncode != 0:
        logs = subprocess.run(["bash", str(SCRIPT), "logs"], env=env, capture_output=True,
                              text=True).stdout  # fmt: skip
        pytest.fail(f"the SLURM cluster did not start:\n{start.stderr}\n{logs}")
    # Left running for the rest of the session: with the client installed and
    # no controller, every later Snakemake start would wait ~10 s for one.
    yield {**env, "SLURM_CONF": str(workdir / "slurm.conf")}
    subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=60)


def cluster_sized(repo: Path) -> None:
    """Jobs that fit the one node (2 CPUs, the machine's memory)."""
    params = load_yaml_file(repo / "params.yaml")
    features, campaign = params["features"], params["campaign"]
    for resources in (features["resources"], features["decode_resources"],
                      *campaign["resources"].values()):  # fmt: skip
        resources.update(mem_mb=1500, cpus=1, runtime=30)
    (repo / "params.yaml").write_text(dump_yaml(params))


def test_a_campaign_runs_through_sbatch_and_matches_a_local_run(slurm_env, tmp_path):
    local, cluster = copy_repo(tmp_path / "local"), copy_repo(tmp_path / "cluster")
    for repo in (local, cluster):
        small(repo, n=16)
        cluster_sized(repo)
    run = snakemake(local)
    assert run.returncode == 0, run.stderr[-3000:]
    command = [
        str(BIN / "snakemake"), "--profile", "profiles/slurm",
        "--slurm-init-seconds-before-status-checks", "2",
        "--default-resources", "slurm_partition=cpu", "slurm_account=root", "runtime=30",
        "mem_mb=1000",
    ]  # fmt: skip
    run = subprocess.run(command, cwd=cluster, env=slurm_env, capture_output=True, text=True,
                         timeout=1500)  # fmt: skip
    logs = subprocess.run(["bash", str(SCRIPT), "logs"], env=slurm_env, capture_output=True,
                          text=True).stdout  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:] + logs
    assert "sbatch" in run.stderr or "SLURM" in run.stderr
    shards = sorted((cluster / "results/campaigns").glob("*/round_*/shard_*.json"))
    assert len(shards) == 2
    for path in shards:
        slurm = json.loads(path.read_text())["slurm"]
        assert slurm["SLURM_JOB_ID"] and slurm["SLURM_JOB_PARTITION"] == "gpu"
        assert len(slurm["CUDA_VISIBLE_DEVICES"].split(",")) == 1  # one GPU each
    plans = sorted((cluster / "results/campaigns").glob("*/round_*/plan.json"))
    assert plans and all("SLURM_JOB_ID" not in p.read_text() for p in plans)
    expected = pd.read_parquet(local / "results/dataset/experiments.parquet").sort_values("id")
    got = pd.read_parquet(cluster / "results/dataset/experiments.parquet").sort_values("id")
    for column in ("id", "fingerprint", "config", "status"):
        assert got[column].tolist() == expected[column].tolist(), column
    assert got["val_ap"].fillna(-1).tolist() == expected["val_ap"].fillna(-1).tolist()
