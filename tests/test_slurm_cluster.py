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
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from expsearch.features.specs import input_size
from expsearch.paper.figures import figure_files
from expsearch.yamlio import dump_yaml, load_yaml_file

from .checkpoint_files import cache_with, save_checkpoint
from .conftest import ROOT
from .llm_server import LLMTestServer, Reply
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


# ----------------------------------------------------------------- the researcher's path
ANTHROPIC_KEY = "sk-ant-rehearsal-0123456789-SECRET"
GEMINI_KEY = "AIza-rehearsal-0123456789-SECRET"
HUB_ID = "our-lab/dinov2-dashcam"  # dinov2_b's checkpoint, from the offline Hugging Face cache


def nexar_download(repo: Path, root: Path, n: int, held_out: int) -> None:
    """A folder in the layout of the Nexar download, made by the synthetic generator:
    train.csv + train/<id>.mp4, and the sealed competition clips test/ + solution.csv."""
    made = root.parent / "generated"
    run = subprocess.run([str(BIN / "expsearch"), "data", "synth", "--params",
                          str(repo / "params.yaml"), "--out", str(made), "--n", str(n)],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    labels = pd.read_csv(made / "train.csv", dtype={"id": str})
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    train, test = labels.iloc[:-held_out], labels.iloc[-held_out:]
    for pool, table in (("train", train), ("test", test)):
        for clip in table["id"]:
            (made / "videos" / f"{clip}.mp4").rename(root / pool / f"{clip}.mp4")
    train.to_csv(root / "train.csv", index=False)
    test[["id", "target"]].assign(Usage="Private").to_csv(root / "solution.csv", index=False)


def checkpoints(models: Path, cache: Path) -> dict[str, str]:
    """V-JEPA 2 in a folder of its own, DINOv2 under a hub id in a Hugging Face cache:
    the two places a cluster user keeps checkpoints."""
    save_checkpoint("vjepa2", models / "vjepa2", seed=3)
    save_checkpoint("dinov2_b", models / "dinov2", seed=3)
    cache_with(cache, HUB_ID, models / "dinov2")
    shutil.rmtree(models / "dinov2")
    return {"vjepa2": str(models / "vjepa2"), "dinov2_b": HUB_ID}


def idea(name: str, backbone: str, encoder: str, learning_rate: float) -> dict:
    """One LLM idea inside the campaign's limits."""
    return {"idea_name": name, "priority": "medium", "backbone": backbone, "encoder": encoder,
            "pooling": "mean", "width": 64, "depth": 1, "dropout": 0.1, "loss": "bce",
            "learning_rate": learning_rate, "weight_decay": 1.0e-4, "batch_size": 32,
            "scheduler": "cosine", "seq_len": 10, "epochs": 5, "oversample_ratio": 1.0,
            "mixup_alpha": 0.0, "feature_noise": 0.0}  # fmt: skip


def answer(*ideas: dict) -> Reply:
    return Reply(text="Two ideas.\n```yaml\n" + dump_yaml(list(ideas)) + "```")


def scontrol_jobs(env: dict[str, str]) -> list[dict[str, str]]:
    """Every job the controller still knows (MinJobAge keeps finished ones): its fields."""
    out = subprocess.run(["scontrol", "show", "job", "--oneliner"], env=env,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    jobs = []
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" in fields:
            jobs.append(fields)
    return jobs


def files_holding(roots: list[Path], secrets: list[str]) -> list[str]:
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                found += [f"{path}: {s[:8]}..." for s in secrets if s.encode() in data]
    return found


def test_the_researchers_path_from_videos_and_checkpoints_to_the_paper(slurm_env, tmp_path):
    """The README's "On your cluster", rehearsed: a Nexar-layout download, pretrained
    checkpoints from a folder and from the offline Hugging Face cache, Claude and Gemini
    (their SDKs against the loopback server), profiles/slurm; features -> two rounds ->
    dataset -> analyses -> paper."""
    repo = copy_repo(tmp_path / "repo")
    small(repo, n=20)
    cluster_sized(repo)
    nexar = tmp_path / "datasets" / "nexar"
    nexar_download(repo, nexar, n=24, held_out=4)
    cache = tmp_path / "hf" / "hub"
    with LLMTestServer() as server:
        # params.yaml as the README tells a cluster user to set it.
        params = load_yaml_file(repo / "params.yaml")
        params["data"].update(source="nexar", root=str(nexar), labels="train.csv",
                              videos="train")  # fmt: skip
        params["features"].update(
            weights="pretrained", checkpoints=checkpoints(tmp_path / "models", cache)
        )
        for name in ("claude", "gemini"):
            params["agents"]["llm"][name].update(base_url=server.url, max_retries=0)
        params["campaign"]["campaigns"]["agents"].update(agents=["claude", "gemini"], rounds=2)
        (repo / "params.yaml").write_text(dump_yaml(params))
        profile = repo / "profiles" / "slurm" / "config.yaml"
        text = profile.read_text()
        assert "# slurm_account: myaccount" in text
        profile.write_text(text.replace("# slurm_account: myaccount", "slurm_account: root"))

        server.script("anthropic", [
            answer(idea("c0a", "vjepa2", "retnet", 1e-3), idea("c0b", "dinov2_b", "xlstm", 3e-3)),
            answer(idea("c1a", "vjepa2_dinov2", "zipformer", 1e-3),
                   idea("c1b", "vjepa2", "bimamba", 2e-3)),
        ])  # fmt: skip
        server.script("gemini", [
            answer(idea("g0a", "dinov2_b", "hybrid", 1e-3), idea("g0b", "vjepa2", "xlstm", 5e-4)),
            answer(idea("g1a", "dinov2_b", "retnet", 2e-3),
                   idea("g1b", "vjepa2_dinov2", "hybrid", 1e-3)),
        ])  # fmt: skip
        env = {**slurm_env, "ANTHROPIC_API_KEY": ANTHROPIC_KEY, "GEMINI_API_KEY": GEMINI_KEY,
               "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}  # fmt: skip
        command = [str(BIN / "snakemake"), "--profile", "profiles/slurm",
                   "--slurm-init-seconds-before-status-checks", "2"]  # fmt: skip
        run = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True,
                             timeout=1800)  # fmt: skip
        logs = subprocess.run(["bash", str(SCRIPT), "logs"], env=slurm_env,
                              capture_output=True, text=True).stdout  # fmt: skip
        assert run.returncode == 0, run.stderr[-6000:] + logs
        calls = [request["provider"] for request in server.requests]
    assert sorted(calls) == ["anthropic", "anthropic", "gemini", "gemini"]

    # Every GPU-partition job ran under SLURM: the extractions and the shards.
    jobs = [job for job in scontrol_jobs(slurm_env) if str(repo) in job.get("WorkDir", "")]
    gpu = sorted(job["Comment"].split("_wildcards_")[0] for job in jobs
                 if job["Partition"] == "gpu")  # fmt: skip
    assert gpu == ["rule_extract_features"] * 2 + ["rule_shard"] * 3, gpu
    assert all(job["JobState"] == "COMPLETED" for job in jobs), jobs
    assert {job["Partition"] for job in jobs} == {"gpu", "cpu"}
    for path in (repo / "results/campaigns").glob("*/round_*/shard_*.json"):
        assert json.loads(path.read_text())["slurm"]["SLURM_JOB_PARTITION"] == "gpu"

    # The features came from the checkpoints (pretrained, at their own input size).
    for name, source in params["features"]["checkpoints"].items():
        index = json.loads((repo / "results/features" / name / "index.json").read_text())
        assert (index["weights"], index["checkpoint"]) == ("pretrained", source)
        assert index["input_size"] == input_size(name, "random")

    # The competition clips stay sealed; the agents' calls and their cost are in the dataset.
    dataset = repo / "results/dataset"
    experiments = pd.read_parquet(dataset / "experiments.parquet")
    agents = experiments[experiments["campaign"] == "agents"]
    assert set(agents["agent"]) >= {"claude", "gemini"}
    assert sorted(agents["round"].unique()) == [0, 1]
    assert (agents.loc[agents["agent"].isin(["claude", "gemini"]), "llm_cost_usd"] > 0).all()
    summary = json.loads((dataset / "summary.json").read_text())
    spend = summary["agents"]
    assert spend["llm_calls"] == 4 and spend["llm_cost_usd"] > 0
    log = [json.loads(line) for line in (dataset / "agent_log.jsonl").read_text().splitlines()]
    assert {(entry["agent"], entry["round"]) for entry in log if entry["cost_usd"] > 0} == {
        (agent, r) for agent in ("claude", "gemini") for r in (0, 1)
    }

    # The paper, and no key anywhere: results, logs, Snakemake's state, SLURM's.
    paper = repo / "results/paper"
    for path in figure_files(paper).values():
        assert path.stat().st_size > 0, path
    assert (paper / "values.tex").read_text().count("\\newcommand") > 10
    # SLURM keeps each job's exported environment in the controller's state (MinJobAge).
    state = Path(slurm_env["SLURM_CI_DIR"]) / "state"
    saved = [path for job in jobs for path in state.glob(f"hash.*/job.{job['JobId']}")]
    assert len(saved) == len(jobs) and all((path / "environment").is_file() for path in saved)
    assert all(b"HF_HUB_OFFLINE=1" in (path / "environment").read_bytes() for path in saved)
    held = files_holding([tmp_path, *saved], [ANTHROPIC_KEY, GEMINI_KEY])
    assert not held, held
