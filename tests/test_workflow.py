"""The Snakemake workflow, the profiles, the conda env and DVC, run for real
on a copy of the repository."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from expsearch.data.splits import load_manifest
from expsearch.features.store import open_store
from expsearch.joblog import AUDIT_ENV
from expsearch.yamlio import dump_yaml, load_yaml_file

from .checkpoint_files import save_checkpoint
from .conftest import ROOT
from .file_audit import audit_records, undeclared_access
from .workflow_repo import BIN, copy_repo, small, snakemake


@pytest.fixture
def repo(tmp_path) -> Path:
    return copy_repo(tmp_path / "repo")


SUMMARY = "results/space/summary.json"


def test_space_summary(repo):
    first = snakemake(repo, SUMMARY)
    assert first.returncode == 0, first.stderr
    summary = json.loads((repo / SUMMARY).read_text())
    assert summary["discrete_cells"] == 108_000
    assert "**108,000**" in (repo / "results/space/summary.md").read_text()
    assert len(load_yaml_file(repo / "results/space/sample.yaml")) == 8
    again = snakemake(repo, SUMMARY)
    assert again.returncode == 0 and "Nothing to be done" in again.stderr


def test_an_edited_space_reruns_with_the_new_count(repo):
    assert snakemake(repo, SUMMARY).returncode == 0
    params = load_yaml_file(repo / "params.yaml")
    params["space"]["dimensions"]["backbone"]["values"] = ["vjepa2"]
    params["features"]["backbones"] = ["vjepa2"]
    (repo / "params.yaml").write_text(dump_yaml(params))
    rerun = snakemake(repo, SUMMARY)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads((repo / SUMMARY).read_text())["discrete_cells"] == 18_000


def test_data_features_and_campaigns_end_to_end(repo, tmp_path):
    """The whole small pipeline, with the fleet camera as a second task; every job
    opens only what its rule declares; the report builds with the captions of the
    rules' report() outputs."""
    small(repo, tasks=True)
    audit = tmp_path / "audit"
    run = snakemake(repo, env={AUDIT_ENV: str(audit)})
    assert run.returncode == 0, run.stderr
    records = audit_records(audit)
    ran = {line.split("rule ", 1)[1].rstrip(":") for line in run.stderr.splitlines()
           if line.startswith("rule ") or line.startswith("localrule ")} - {"all"}  # fmt: skip
    assert {record["rule"] for record in records} == ran  # every script logs and is audited
    assert [problem for record in records for problem in undeclared_access(record)] == []
    benchmarks = [path.stem for path in (repo / "results/benchmarks").rglob("*.tsv")]
    assert len(benchmarks) == 1 + 2 + 2 and "decode_frames" in benchmarks  # + extractions, shards
    manifest = load_manifest(
        repo / "results/split/manifest.json", repo / "results/data/synthetic/train.csv"
    )
    assert sum(len(ids) for ids in manifest.splits.values()) == 12
    stores = {
        name: open_store(repo / "results/features" / name)
        for name in ("vjepa2", "dinov2_b", "vjepa2_dinov2")
    }
    assert all(
        len(store.ids) == 12 and store.index["weights"] == "random" for store in stores.values()
    )
    assert stores["vjepa2_dinov2"].width == stores["vjepa2"].width + stores["dinov2_b"].width
    experiments = pd.read_parquet(repo / "results/dataset/experiments.parquet")
    assert sorted(experiments["campaign"]) == ["agents", "agents", "random", "random"]
    assert set(experiments["status"]) <= {"ok", "failed"}
    for family in ("baselines", "convergence", "dynamics", "variance", "cost"):
        result = json.loads((repo / f"results/analysis/{family}.json").read_text())
        assert result["analysis"] == family
        assert result["status"] in ("ok", "insufficient_data")
    cost = json.loads((repo / "results/analysis/cost.json").read_text())
    assert cost["overall"]["experiments"] == len(experiments)
    curve = pd.read_csv(repo / "results/analysis/baselines_curve.csv")
    finished = experiments[experiments["campaign"] == "agents"]["status"].eq("ok").sum()
    assert (curve["policy"] == "search").sum() == finished
    again = snakemake(repo)
    assert again.returncode == 0 and "Nothing to be done" in again.stderr
    report = snakemake(repo, "--report", "report.html")
    assert report.returncode == 0, report.stderr
    html = (repo / "report.html").read_text()
    assert "Every trained configuration of every campaign" in html  # dataset caption
    assert "discrete cells" in html  # the space caption
    assert "Pool baselines" in html and "Variance decomposition" in html  # analysis captions
    assert "Figure 2, convergence" in html and "Figure 5, backbone x encoder" in html
    values = json.loads((repo / "results/paper/values.json").read_text())
    assert values["NExperiments"] == len(experiments)
    for name in ("top_configs.tex", "notation.md"):
        assert (repo / "results/paper/tables" / name).stat().st_size > 0
    assert (repo / "results/paper/figures/heatmap.pdf").read_bytes().startswith(b"%PDF")
    # The second task: its own videos, stores and random campaign under results/tasks/fleet/.
    fleet = repo / "results/tasks/fleet"
    assert json.loads((fleet / "data/synthetic/synthetic.json").read_text())["variant"] == "fleet"
    fleet_store = open_store(fleet / "features/vjepa2")
    assert len(fleet_store.ids) == 12
    assert not np.array_equal(fleet_store.features, stores["vjepa2"].features)  # other videos
    fleet_runs = pd.read_parquet(fleet / "dataset/experiments.parquet")
    assert sorted(fleet_runs["campaign"]) == ["random", "random"]
    assert (fleet / "campaigns/random/round_0000/runs").is_dir()  # its own resume scratch
    assert {"fleet_split", "fleet_shard", "fleet_analysis_variance"} <= ran
    assert not any(name.startswith("fleet_") and "paper" in name for name in ran)
    cross = (repo / "results/paper/tables/cross_task.md").read_text()
    assert "default" in cross and "fleet" in cross


def test_the_file_audit_catches_undeclared_reads_and_writes():
    """The checker behind the end-to-end test, on records of jobs that stray."""
    record = {
        "rule": "shard",
        "cwd": "/w",
        "input": ["results/p/plan.json", "results/data/videos"],
        "output": ["results/p/shard_000.json"],
        "log": ["results/logs/s.log"],
        "scratch": ["results/p/runs"],
        "opened": [
            ["/w/results/p/plan.json", "r"],
            ["results/data/videos/a.mp4", "rb"],  # under a declared directory
            ["/w/results/p/.shard_000.json.ab12.tmp", "w"],  # atomic write of the output
            ["/w/results/p/runs/x/metrics.json", "r"],  # scratch
            ["/w/results/logs/s.log", "w"],
            ["/usr/lib/python3/x.py", "r"],  # outside the working directory
            ["/w/src/expsearch/space.py", "r"],  # the project's code
        ],
    }
    assert undeclared_access(record) == []
    record["opened"] += [
        ["/w/results/split/clips.csv", "r"],  # found beside the manifest, never declared
        ["/w/results/p/.stray.json.cd34.tmp", "w"],  # an atomic write of an undeclared file
        ["/w/results/p/plan.json", "w"],  # writing an input
    ]
    problems = undeclared_access(record)
    assert len(problems) == 3
    assert "reads results/split/clips.csv" in problems[0]
    assert ".stray.json" in problems[1] and "writes results/p/plan.json" in problems[2]


def test_a_failed_job_leaves_its_traceback_in_its_log(repo, tmp_path):
    """A labels file without a target column: split fails, and its log says why."""
    data = tmp_path / "mydata"
    (data / "videos").mkdir(parents=True)
    (data / "labels.csv").write_text("id,time_of_event,time_of_alert\n1,,\n")
    params = load_yaml_file(repo / "params.yaml")
    params["data"].update(source="folder", root=str(data), labels="labels.csv")
    (repo / "params.yaml").write_text(dump_yaml(params))
    run = snakemake(repo, "results/split/manifest.json")
    assert run.returncode != 0
    log = (repo / "results/logs/split.log").read_text()
    assert "Traceback (most recent call last)" in log
    assert "DataError" in log and "missing column(s) ['target']" in log
    assert "missing column(s) ['target']" in run.stderr  # --show-failed-logs prints it


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda p: p["campaign"].update(rounds=3), "campaign.rounds: unknown key"),
        (
            lambda p: p["space"]["dimensions"]["epochs"].update(group="schedule"),
            "space.dimensions.epochs.group: 'schedule' is not allowed",
        ),
        (
            lambda p: p["space"]["dimensions"]["dropout"].update(low=0.9),
            "space.dimensions.dropout.high",
        ),
        (  # a checkpoint that is not there stops the DAG, before any job is submitted
            lambda p: p["features"].update(
                weights="pretrained", checkpoints={"vjepa2": "/nowhere/ckpt/vjepa2"}
            ),
            "vjepa2: checkpoint folder '/nowhere/ckpt/vjepa2' does not exist. Put a Hugging "
            "Face checkpoint there (config.json and the weights), e.g. `hf download "
            "facebook/vjepa2-vitl-fpc64-256 --local-dir /nowhere/ckpt/vjepa2`",
        ),
    ],
)
def test_bad_params_stop_the_run_naming_the_key(repo, edit, expected):
    params = load_yaml_file(repo / "params.yaml")
    edit(params)
    (repo / "params.yaml").write_text(dump_yaml(params))
    run = snakemake(repo, "--dry-run")
    assert run.returncode != 0
    assert expected in run.stdout + run.stderr
    assert not (repo / "results").exists()


def test_new_weights_in_a_checkpoint_folder_rerun_its_extraction(repo, tmp_path):
    """A checkpoint's files are its extraction's inputs; a video checkpoint trained
    on shorter clips than the window stops the DAG, naming both lengths."""
    small(repo)
    folder = tmp_path / "ckpt" / "vjepa2"
    save_checkpoint("vjepa2", folder)
    params = load_yaml_file(repo / "params.yaml")
    params["features"].update(weights="pretrained", backbones=["vjepa2"], fusions={},
                              checkpoints={"vjepa2": str(folder)})  # fmt: skip
    params["space"]["dimensions"]["backbone"]["values"] = ["vjepa2"]
    (repo / "params.yaml").write_text(dump_yaml(params))
    store = "results/features/vjepa2/index.json"
    first = snakemake(repo, store)
    assert first.returncode == 0, first.stderr
    assert json.loads((repo / store).read_text())["checkpoint"] == str(folder)
    assert "Nothing to be done" in snakemake(repo, store).stderr
    save_checkpoint("vjepa2", folder, seed=1)  # new weights over the old, as a download writes
    rerun = snakemake(repo, "--dry-run", store)
    assert rerun.returncode == 0, rerun.stderr
    assert "extract_features" in rerun.stdout
    assert f"Updated input files: {folder / 'model.safetensors'}" in rerun.stdout

    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "frames_per_clip": 16}))
    refused = snakemake(repo, "--dry-run", store)
    assert refused.returncode != 0
    said = refused.stdout + refused.stderr
    assert f"vjepa2: the checkpoint '{folder}' was trained on clips of 16 frames" in said
    assert "would feed 60 (30 steps of data.window_s 6.0 x data.fps 5" in said


def test_snakemakes_own_validator_accepts_the_schema(default_params, params):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    schema = str(ROOT / "workflow/schemas/params.schema.yaml")
    validate(dict(default_params), schema)
    params["space"]["dimensions"]["epochs"]["type"] = "integer"
    with pytest.raises(WorkflowError, match="integer"):
        validate(params, schema)


def test_profiles_do_not_fight():
    """profiles/default is loaded as the workflow profile on every run and
    overrides --profile per key, so it must not set what profiles/slurm sets."""
    local = load_yaml_file(ROOT / "profiles/default/config.yaml")
    slurm = load_yaml_file(ROOT / "profiles/slurm/config.yaml")
    assert slurm["executor"] == "slurm"
    assert not set(local) & set(slurm)


def test_slurm_profile_dry_run_builds_the_dag(repo):
    small(repo)
    run = subprocess.run(
        [str(BIN / "snakemake"), "--profile", "profiles/slurm", "--dry-run"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    for rule in ("space_summary", "synthesize", "split", "decode_frames", "extract_features",
                 "fuse_features",
                 "propose", "shard", "collect", "dataset", "analysis_baselines",
                 "analysis_convergence", "analysis_dynamics", "analysis_variance",
                 "analysis_cost"):  # fmt: skip
        assert f"rule {rule}:" in run.stdout
    shard = run.stdout[run.stdout.index("rule shard:") :]
    resources = next(line for line in shard.splitlines() if "resources:" in line)
    assert "slurm_partition=gpu" in resources and "gpu=1" in resources


@pytest.mark.parametrize("decode", ["shared", "per_backbone"])
def test_extractions_read_the_frames_cache_or_the_videos(repo, decode):
    """Shared: one decode_frames job reads the videos, each extraction its size's
    array of the cache. Per backbone: each extraction reads the videos."""
    small(repo)
    params = load_yaml_file(repo / "params.yaml")
    params["features"]["decode"] = decode
    (repo / "params.yaml").write_text(dump_yaml(params))
    run = snakemake(repo, "results/features/vjepa2_dinov2/index.json", "--dry-run")
    assert run.returncode == 0, run.stderr
    jobs: dict[str, list[str]] = {}  # rule -> the input line of each of its jobs
    for block in run.stdout.split("\n\n"):  # one job: [time], rule NAME:, input: ...
        lines = block.strip().splitlines()
        rule = [
            line.split()[1].rstrip(":")
            for line in lines
            if line.startswith(("rule ", "localrule "))
        ]
        inputs = [line for line in lines if line.strip().startswith("input:")]
        if rule:
            jobs.setdefault(rule[0], []).append("".join(inputs))
    videos = "results/data/synthetic/videos"
    extractions = jobs["extract_features"]
    assert len(extractions) == 2
    if decode == "shared":
        assert len(jobs["decode_frames"]) == 1 and videos in jobs["decode_frames"][0]
        assert all("results/frames/index.json" in line and videos not in line
                   for line in extractions)  # fmt: skip
        assert sorted("frames-56.npy" in line for line in extractions) == [False, True]
    else:
        assert "decode_frames" not in jobs
        assert all(videos in line and "results/frames" not in line for line in extractions)


def test_conda_env_pins_match_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = load_yaml_file(ROOT / "workflow/envs/expsearch.yaml")
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == project["dependencies"]
    assert all("==" in pin for pin in pip)


def test_ci_script_runs_the_readme_test_command():
    ci = (ROOT / ".ci/run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci
    first_block = readme.split("```")[1]
    assert first_block.split() == ["make", "run", "make", "test"]


def test_a_campaign_of_hundreds_of_rounds_builds_its_dag(repo):
    """The paper's agents ran 1,600 cycles; a naive round chain hits Python's
    recursion limit near 140 rounds. 400 rounds x (1 + 2 + 1) jobs must build."""
    params = load_yaml_file(repo / "params.yaml")
    params["campaign"]["campaigns"] = {
        "deep": {"agents": ["rules"], "rounds": 400, "shards": 2, "budget_per_round": 4,
                 "ideas_per_agent": 4},
    }  # fmt: skip
    params["analysis"]["baselines"]["generative_campaign"] = None  # no random campaign here
    (repo / "params.yaml").write_text(dump_yaml(params))
    refused = snakemake(repo, "results/dataset/summary.json", "--dry-run", "--quiet", "rules")
    assert refused.returncode != 0  # the fleet task runs a campaign that is gone: named
    said = refused.stdout + refused.stderr
    assert "tasks.fleet" in said and "['random'] not in campaign.campaigns" in said
    params.pop("tasks")
    (repo / "params.yaml").write_text(dump_yaml(params))
    run = snakemake(repo, "results/dataset/summary.json", "--dry-run", "--quiet", "rules")
    assert run.returncode == 0, run.stderr[-3000:]
    counts = dict(line.split()[:2] for line in run.stdout.splitlines() if line.split()[:1] in
                  (["propose"], ["shard"], ["collect"]))  # fmt: skip
    assert counts == {"propose": "400", "shard": "800", "collect": "400"}
