# Shared by the other .smk files. The library on the path, the checked params, the
# software environment, and every path a rule declares. Paths are built here
# (and by the library's layout helpers), never in scripts: a script hands
# snakemake.input / output / log / params to the library and computes nothing.

import glob
import os
import sys

# Jobs run this checkout's library (src/), whatever environment they run in:
# the project venv, a conda env from workflow/envs/, or a cluster node.
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
# (Jobs inherit the environment, locally and through sbatch.)
os.environ.update(PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])))

from expsearch.analysis.run import TABLES as ANALYSIS_TABLES
from expsearch.paper.files import figure_files
from expsearch.paper.write import cross_task_files, paper_files
from expsearch.campaign.layout import CampaignLayout, rounds_waiting
from expsearch.data.sources import nexar_competition
from expsearch.features.checkpoints import check_clip_lengths, find_checkpoints, input_sizes
from expsearch.features.frames import frame_files, frame_plan, frames_file
from expsearch.features.store import skipped_file, store_files
from expsearch.cluster import private_sbatch
from expsearch.jobs import synthetic_layout
from expsearch.params import check_params
from expsearch.tasks import RESULTS, primary_task, task_params, task_prefix

PARAMS = check_params(config, source="params.yaml")
# Further tasks (params.yaml `tasks`): name -> their full params; the Snakefile
# runs this workflow again as a module per task under results/tasks/<name>/.
TASKS = task_params(PARAMS)

# The LLM agents' API keys stay on the head node, with the proposal rule that reads
# them: on a SLURM cluster sbatch is called through workflow/bin/sbatch, which unsets
# them (the executor plugin exports the whole environment to every job).
private_sbatch(PARAMS["agents"]["llm"], os.path.join(workflow.basedir, "workflow", "bin"))

ENV = "../envs/expsearch.yaml"  # conda env of every rule (used with --sdm conda)
LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"  # per-job time and memory (Snakemake `benchmark:`)


# ---- data (rules in data.smk)
DATA = PARAMS["data"]
DATA_ROOT = DATA["root"]
LABELS = f"{DATA_ROOT}/{DATA['labels']}"
VIDEOS = f"{DATA_ROOT}/{DATA['videos']}"
# The Nexar download's sealed competition clips, when present: {"videos": ..., "labels": ...}.
COMPETITION = nexar_competition(DATA_ROOT) if DATA["source"] == "nexar" else {}
# What the synthetic generator writes (its fixed Nexar layout; params.py checks
# that data.labels and data.videos name these files when data.source is synthetic).
SYNTHETIC = synthetic_layout(DATA_ROOT)
CLIPS = f"{RESULTS}/split/clips.csv"
MANIFEST = f"{RESULTS}/split/manifest.json"


# ---- features (rules in features.smk)
FEATURES = PARAMS["features"]
STORE_NAMES = [*FEATURES["backbones"], *FEATURES["fusions"]]


STORE_FILES = [path for name in STORE_NAMES for path in store_files(FEATURES["root"], name)]
# With pretrained weights, every backbone's checkpoint (features.checkpoints: a
# folder, or a hub id in the Hugging Face cache when HF_HUB_OFFLINE=1), found
# without loading it: a missing one, or a video checkpoint trained on shorter clips
# than data.window_s x data.fps, stops the workflow here, `snakemake -n` included,
# rather than a GPU job. Its files are its extraction's inputs.
CHECKPOINTS = find_checkpoints(FEATURES["backbones"], FEATURES["weights"], FEATURES["checkpoints"])
check_clip_lengths(CHECKPOINTS, fps=DATA["fps"], window_s=DATA["window_s"])
# Every backbone's input size; a checkpoint other than the registry's is sized
# from its own files.
INPUT_SIZES = input_sizes(FEATURES["backbones"], FEATURES["weights"], found=CHECKPOINTS)
# The shared decoded-frames cache (features.decode: shared): every clip's window
# decoded once, one array per input size of the backbones ({size: frames per step}).
FRAME_PLAN = frame_plan(FEATURES["backbones"], FEATURES["weights"], INPUT_SIZES)
FRAMES = frame_files(FEATURES["frames_root"], FRAME_PLAN)
# What reads the videos: the decoding job, or each extraction (per_backbone).
VIDEO_INPUTS = {
    "videos": VIDEOS,
    **{f"competition_{key}": path for key, path in COMPETITION.items()},
}


def extraction_inputs(wildcards):
    """What an extraction reads besides the clip table: the frames cache's index
    and the array at its backbone's input size, or (per_backbone) the videos; and
    its checkpoint's files (pretrained weights), so that new weights rerun it."""
    found = CHECKPOINTS.get(wildcards.backbone)
    model = {"checkpoint": [str(path) for path in found.files]} if found else {}
    if FEATURES["decode"] == "per_backbone":
        return {**VIDEO_INPUTS, **model}
    size = INPUT_SIZES[wildcards.backbone]
    frames = frames_file(FEATURES["frames_root"], size)
    return {"frames": FRAMES["index"], "frames_array": frames, **model}


def fusion_parts(wildcards):
    parts = FEATURES["fusions"][wildcards.fusion]
    return [path for part in parts for path in store_files(FEATURES["root"], part)]


# ---- campaigns (rules in campaign.smk)
# DAG construction recurses once per dependency link (three per round);
# Python's default limit breaks at about 140 rounds, campaigns run hundreds.
sys.setrecursionlimit(max(sys.getrecursionlimit(), 100_000))

CAMPAIGN = PARAMS["campaign"]
CAMPAIGNS = CAMPAIGN["campaigns"]
LAYOUT = CampaignLayout(CAMPAIGN["root"])
DATASET = f"{RESULTS}/dataset"
# What a round's jobs read of params (a change reruns the rounds it affects).
CAMPAIGN_PARAMS = {key: PARAMS[key] for key in ("space", "agents", "campaign", "training")}


def round_ledger(wildcards):
    """Round r reads the plans of rounds 0 .. r-1 and the experiments of rounds
    0 .. r-1-lag (named inputs): with a lag, it does not wait for the last rounds."""
    lag = CAMPAIGNS[wildcards.campaign].get("lag", 0)  # optional in params; 0 as in the library
    return LAYOUT.ledger(wildcards.campaign, int(wildcards.round), lag)


def round_priority(wildcards):
    """Critical path first: a round's jobs rank by how many later rounds of its
    campaign wait for them, so a baseline that waits for nothing fills the gaps."""
    spec = CAMPAIGNS[wildcards.campaign]
    return rounds_waiting(int(wildcards.round), spec["rounds"], spec.get("lag", 0))


def round_shards(wildcards):
    shards = CAMPAIGNS[wildcards.campaign]["shards"]
    return LAYOUT.shards(wildcards.campaign, wildcards.round, shards)


def round_runs(wildcards, output):
    """The round's run folders, found beside the shard's output: params are not
    moved with a task module's paths (results/tasks/<name>/), outputs are."""
    return LAYOUT.runs_beside(output[0])


def every_round(files):
    """The paths `files(campaign, round)` of every round of every campaign."""
    return [
        path
        for campaign, spec in CAMPAIGNS.items()
        for r in range(spec["rounds"])
        for path in files(campaign, r)
    ]


# ---- tasks (the module per further task is declared in the Snakefile)
PRIMARY_TASK = primary_task(PARAMS)


def task_rules(name):
    """Task name -> the rule called `name` in that task (the primary task first)."""
    return {PRIMARY_TASK: getattr(rules, name), **{t: getattr(rules, f"{t}_{name}") for t in TASKS}}


# ---- analyses (rules in analysis.smk)
ANALYSIS = f"{RESULTS}/analysis"
# What the analyses read of params (a change reruns them).
ANALYSIS_PARAMS = {key: PARAMS[key] for key in ("space", "analysis")}


def analysis_tables(family):
    """The CSV tables a family's rule writes beside its JSON (name -> path)."""
    return {name: f"{ANALYSIS}/{family}_{name}.csv" for name in ANALYSIS_TABLES[family]}


PAPER = f"{RESULTS}/paper"
# What the paper reads of params (a change redraws it).
PAPER_PARAMS = {key: PARAMS[key] for key in ("space", "analysis", "paper")}
PAPER_TEXT_FILES = {key: str(path) for key, path in paper_files(PAPER).items()}
PAPER_TEXT_FILES.update(
    {f"cross_task_{fmt}": str(path) for fmt, path in cross_task_files(PAPER).items()}
)
PAPER_FIGURE_FILES = {key: str(path) for key, path in figure_files(PAPER).items()}

ANALYSIS_FILES = [f"{ANALYSIS}/{family}.json" for family in ANALYSIS_TABLES] + [
    path for family in ANALYSIS_TABLES for path in analysis_tables(family).values()
]
