"""The API keys stay on the head node: sbatch runs through workflow/bin/sbatch, which
drops them from the environment it submits (expsearch.cluster). The rehearsal in
test_slurm_cluster.py checks the same on a real cluster; this runs the real wrapper
against a stand-in sbatch that records what it was given."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from expsearch.cluster import private_sbatch

from .conftest import ROOT

WRAPPERS = str(ROOT / "workflow" / "bin")
LLM = {"claude": {"api_key_env": "ANTHROPIC_API_KEY"}, "gemini": {"api_key_env": "GEMINI_API_KEY"},
       "other": {"api_key_env": "ANTHROPIC_API_KEY"}}  # fmt: skip


def recording_sbatch(folder: Path) -> Path:
    folder.mkdir()
    sbatch = folder / "sbatch"
    sbatch.write_text('#!/bin/sh\nenv > "$RECORD"\nprintf "%s\\n" "$@" >> "$RECORD"\necho 42\n')
    sbatch.chmod(0o755)
    return sbatch


def test_sbatch_submits_without_the_keys(tmp_path):
    real = recording_sbatch(tmp_path / "slurm-bin")
    environ = {"PATH": f"{real.parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
               "ANTHROPIC_API_KEY": "sk-ant-SECRET", "GEMINI_API_KEY": "AIza-SECRET",
               "HF_HUB_OFFLINE": "1", "RECORD": str(tmp_path / "record")}  # fmt: skip
    assert private_sbatch(LLM, WRAPPERS, environ) == ["ANTHROPIC_API_KEY", "GEMINI_API_KEY"]
    assert environ["PATH"].split(os.pathsep)[:2] == [WRAPPERS, str(real.parent)]
    assert environ["EXPSEARCH_SBATCH"] == str(real)
    private_sbatch(LLM, WRAPPERS, environ)  # a job's Snakemake loads the Snakefile again
    assert environ["PATH"].split(os.pathsep).count(WRAPPERS) == 1
    run = subprocess.run(["sbatch", "--parsable", "--export=ALL", "job.sh"], env=environ,
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0 and run.stdout == "42\n", run.stderr
    record = (tmp_path / "record").read_text()
    assert "SECRET" not in record
    assert "HF_HUB_OFFLINE=1" in record and record.endswith("--parsable\n--export=ALL\njob.sh\n")


def test_without_sbatch_path_is_left_alone(tmp_path):
    environ = {"PATH": str(tmp_path)}
    private_sbatch(LLM, WRAPPERS, environ)
    assert environ["PATH"] == str(tmp_path) and "EXPSEARCH_SBATCH" not in environ
    assert environ["EXPSEARCH_PRIVATE_ENV"] == "ANTHROPIC_API_KEY GEMINI_API_KEY"


def test_the_wrapper_refuses_to_run_without_the_real_sbatch():
    run = subprocess.run([f"{WRAPPERS}/sbatch"], env={"PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 1 and "EXPSEARCH_SBATCH" in run.stderr
