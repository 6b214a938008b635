"""How busy a campaign keeps the devices of a real SLURM cluster: lag 0 against lag 2.

    sudo python benchmarks/bench_cluster.py --out results/bench/cluster.json [--rounds 4]
                                            [--configs 48] [--lags 0,2] [--clips 200]

Starts the single-node cluster of the tests (tests/slurm_cluster.sh: slurmctld, slurmd,
munge, two fake GPUs in partition gpu; needs root), copies this checkout's workflow
into a scratch folder, builds the features once (two backbones, `--clips` synthetic
clips) and then, per lag, runs a random campaign of the embedded subspace through
`snakemake --profile profiles/slurm` up to the dataset: `--rounds` rounds of
`--configs` configs in 2 shards (one per GPU). The busy fraction is the dataset
summary's own (`utilisation`: the experiments' training seconds over 2 devices x
the span from the first shard's start to the last shard's end), so a job's start,
imports, store load, SLURM's scheduling and the round barrier all count as idle.
The wall time of each campaign run is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from expsearch.yamlio import dump_yaml, load_yaml_file

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "slurm_cluster.sh"
COPIED = ["Snakefile", "params.yaml", "workflow", "profiles", "src"]
BIN = Path(sys.executable).parent


def workspace(root: Path, clips: int) -> Path:
    """This checkout's workflow in `root`, shrunk to two backbones and cluster-sized jobs."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, root / name)
    params = load_yaml_file(root / "params.yaml")
    params.pop("tasks", None)
    params["data"]["synthetic"]["n"] = clips
    params["features"]["backbones"] = ["vjepa2", "dinov2_b"]
    params["space"]["dimensions"]["backbone"]["values"] = ["vjepa2", "dinov2_b"]
    for resources in (params["features"]["resources"], params["features"]["decode_resources"],
                      *params["campaign"]["resources"].values()):  # fmt: skip
        resources.update(mem_mb=1500, cpus=1, runtime=60)
    (root / "params.yaml").write_text(dump_yaml(params))
    return root


def set_campaign(root: Path, rounds: int, configs: int, lag: int) -> None:
    params = load_yaml_file(root / "params.yaml")
    random = params["campaign"]["campaigns"]["random"]
    random.update(rounds=rounds, shards=2, budget_per_round=configs, ideas_per_agent=configs,
                  lag=lag)  # fmt: skip
    params["campaign"]["campaigns"] = {"random": random}
    params["analysis"]["baselines"]["pool_campaigns"] = None
    (root / "params.yaml").write_text(dump_yaml(params))


def snakemake(root: Path, env: dict[str, str], *targets: str) -> float:
    # Targets first: --default-resources takes every word after it.
    command = [str(BIN / "snakemake"), *targets, "--profile", "profiles/slurm", "--quiet",
               "--slurm-init-seconds-before-status-checks", "2",
               "--default-resources", "slurm_partition=cpu", "slurm_account=root",
               "runtime=60", "mem_mb=1000"]  # fmt: skip
    start = time.perf_counter()
    run = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"snakemake failed in {root}:\n{run.stderr[-4000:]}")
    return time.perf_counter() - start


def measure(args: argparse.Namespace) -> tuple[float, dict]:
    """The features' build time, and per lag the campaign's summary utilisation."""
    slurm_dir = os.environ.get("SLURM_CI_DIR", "/tmp/expsearch-slurm")
    env = {**os.environ, "SLURM_CONF": f"{slurm_dir}/slurm.conf"}
    root = workspace(Path(args.workdir), args.clips)
    print(f"features for {args.clips} clips ...", flush=True)
    features_s = snakemake(root, env, "results/features/vjepa2/index.json",
                           "results/features/dinov2_b/index.json")  # fmt: skip
    print(f"  {features_s:.0f} s", flush=True)
    runs = {}
    for lag in (int(value) for value in args.lags.split(",")):
        for output in ("results/campaigns", "results/dataset", "results/logs/campaigns"):
            shutil.rmtree(root / output, ignore_errors=True)
        set_campaign(root, args.rounds, args.configs, lag)
        wall = snakemake(root, env, "results/dataset/summary.json")
        summary = json.loads((root / "results/dataset/summary.json").read_text())["random"]
        runs[f"lag {lag}"] = {"lag": lag, "wall_s": round(wall, 1),
                              "experiments": summary["experiments"], **summary["utilisation"]}  # fmt: skip
        print(
            f"lag {lag}: {summary['experiments']} experiments in {wall:.0f} s, "
            f"busy {summary['utilisation']['busy_fraction']:.1%} of 2 devices",
            flush=True,
        )
    return features_s, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--configs", type=int, default=48, help="configs per round")
    parser.add_argument("--lags", default="0,2")
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--workdir", default="/tmp/expsearch-bench-cluster")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the cluster benchmark needs root (it starts slurmctld, slurmd and munge)")
    started = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True)
    if started.returncode != 0:
        sys.exit(f"the SLURM cluster did not start:\n{started.stderr}")
    try:
        features_s, runs = measure(args)
    finally:  # a config without its controller makes every SLURM client, and Snakemake, wait
        subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, timeout=60)
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "settings": {
            "rounds": args.rounds,
            "configs_per_round": args.configs,
            "shards": 2,
            "clips": args.clips,
            "backbones": 2,
        },
        "features_s": round(features_s, 1),
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
