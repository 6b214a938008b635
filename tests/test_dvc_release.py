"""The released dataset and paper through DVC, as a user meets them: a fresh
clone, `dvc pull` from the default remote (a folder in the repository), a
clean `dvc status`, a `dvc repro` that reruns nothing, a params change that
reruns only what reads it; damaged and missing objects refused and named;
and the same push and pull through S3 served by moto on 127.0.0.1."""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from expsearch.release_check import recorded_outputs
from expsearch.yamlio import load_yaml_file

from .conftest import ROOT

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def run(cwd: Path, *command: str, env: dict | None = None, check: bool = True):
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**ENV, **(env or {})})  # fmt: skip
    if check:
        assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    return done


ENV = {"PATH": f"{BIN}:/usr/bin:/bin", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", "DVC_NO_ANALYTICS": "1"}  # fmt: skip


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> Path:
    """The repository as committed (plus uncommitted edits): what a clone receives."""
    origin = tmp_path_factory.mktemp("origin")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (origin / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, origin / name)
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "release"]):
        run(origin, "git", *step)
    return origin


@pytest.fixture
def clone(origin, tmp_path) -> Path:
    run(tmp_path, "git", "clone", "-q", str(origin), "clone")
    clone = tmp_path / "clone"
    ENV["HOME"] = str(tmp_path)  # no user-wide DVC or git config leaks in
    return clone


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def release_object(clone: Path, name: str) -> Path:
    """The default remote's object holding data/release/<name>."""
    release = dict(recorded_outputs(clone))["data/release"]
    manifest = load_yaml_file(clone / f"data/dvc-remote/files/md5/{release[:2]}/{release[2:]}")
    entry = next(e for e in manifest if e["relpath"] == name)
    return clone / f"data/dvc-remote/files/md5/{entry['md5'][:2]}/{entry['md5'][2:]}"


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def test_a_fresh_clone_pulls_the_release_and_its_paper_and_reruns_nothing(clone):
    pulled = run(clone, "dvc", "pull")
    assert "files fetched" in pulled.stdout + pulled.stderr
    experiments = pd.read_parquet(clone / "data/release/experiments.parquet")
    assert len(experiments) >= 1000 and experiments["status"].eq("ok").mean() > 0.95
    release_md = (clone / "data/release/RELEASE.md").read_text()
    assert f"{len(experiments):,} experiments" in release_md
    for path, recorded in recorded_outputs(clone):
        assert (clone / path).exists(), path
        if not recorded.endswith(".dir"):
            assert md5(clone / path) == recorded, path
    assert (clone / "paper/figures/convergence.pdf").read_bytes().startswith(b"%PDF")
    # The second task (params.yaml `tasks`): its dataset and its row of the cross-task table.
    fleet = pd.read_parquet(clone / "data/release/tasks/fleet/experiments.parquet")
    assert set(fleet["campaign"]) == {"random"} and "## Task `fleet`" in release_md
    cross = (clone / "paper/tables/cross_task.md").read_text()
    assert f"| fleet | {fleet['status'].eq('ok').sum():,} |" in cross and "| default |" in cross
    assert "Data and pipelines are up to date" in run(clone, "dvc", "status").stdout
    assert ran_stages(run(clone, "dvc", "repro").stdout) == set()
    assert run(clone, "expsearch", "check-release").returncode == 0
    metrics = run(clone, "dvc", "metrics", "show", "--json").stdout
    assert f'"NExperiments": {len(experiments)}' in metrics
    shown = run(clone, "dvc", "plots", "show", "-o", "plots_html")
    assert (clone / "plots_html/index.html").exists(), shown.stdout


def test_a_params_change_reruns_only_what_reads_it_and_the_rerun_is_byte_identical(clone):
    run(clone, "dvc", "pull")
    params = (clone / "params.yaml").read_text()
    changed = re.sub(r"(\n    min_group_size: )(\d+)", lambda m: f"{m[1]}{int(m[2]) + 40}", params)
    assert changed != params
    (clone / "params.yaml").write_text(changed)
    status = run(clone, "dvc", "status").stdout
    # Both variance analyses read it: the primary task's and the fleet task's.
    readers = {"analysis_variance", "task_variance@fleet"}
    assert set(re.findall(r"^([\w@]+):$", status, re.M)) == readers
    ran = ran_stages(run(clone, "dvc", "repro").stdout)
    assert readers <= ran <= {*readers, "paper"}
    assert "min_group_size" in run(clone, "git", "diff", "dvc.lock").stdout
    (clone / "params.yaml").write_text(params)  # back: the same bytes as released
    run(clone, "dvc", "repro")
    assert run(clone, "git", "status", "--porcelain").stdout == ""
    assert "Data and pipelines are up to date" in run(clone, "dvc", "status").stdout


def test_a_damaged_or_missing_object_is_refused_and_named(clone):
    damaged = release_object(clone, "experiments.parquet")
    damaged.chmod(0o644)
    damaged.write_bytes(damaged.read_bytes() + b"damage")
    release_object(clone, "proposals.parquet").unlink()
    pulled = run(clone, "dvc", "pull", check=False)
    assert pulled.returncode != 0 and "failed" in pulled.stderr  # DVC names hashes at best
    assert not (clone / "data/release/experiments.parquet").exists()  # never accepted
    check = run(clone, "expsearch", "check-release", check=False)
    assert check.returncode == 1
    assert re.search(
        r"data/release/experiments\.parquet: remote object .* is corrupted", check.stdout
    )
    assert re.search(r"data/release/proposals\.parquet: remote object .* is missing", check.stdout)
    assert "summary.json" not in check.stdout  # the intact files are not blamed
    assert "2 problem(s)" in check.stderr


def test_a_damaged_cache_object_is_named(clone):
    run(clone, "dvc", "pull")
    assert run(clone, "expsearch", "check-release").returncode == 0
    summary = dict(recorded_outputs(clone))["paper/values.tex"]
    cached = clone / f".dvc/cache/files/md5/{summary[:2]}/{summary[2:]}"
    cached.chmod(0o644)
    cached.write_text("% tampered\n")
    check = run(clone, "expsearch", "check-release", check=False)
    assert check.returncode == 1
    assert re.search(r"paper/values\.tex: cache object .* is corrupted", check.stdout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3():
    """moto's S3 server on loopback, with one bucket."""
    port = free_port()
    server = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
             "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    import boto3

    client = boto3.client("s3", endpoint_url=url, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")  # fmt: skip
    for _ in range(100):
        try:
            client.create_bucket(Bucket="release")
            break
        except Exception:
            time.sleep(0.1)
    else:
        server.kill()
        pytest.fail("moto_server did not start")
    yield {"url": url, "client": client, "env": creds}
    server.kill()
    server.wait()


def test_push_and_pull_through_s3_on_loopback(clone, s3):
    run(clone, "dvc", "pull")
    before = {
        path: md5(clone / path) for path, h in recorded_outputs(clone) if not h.endswith(".dir")
    }
    for step in (["remote", "add", "s3", "s3://release/expsearch"],
                 ["remote", "modify", "s3", "endpointurl", s3["url"]],
                 ["remote", "modify", "s3", "verify", "true"]):  # fmt: skip
        run(clone, "dvc", *step)
    run(clone, "dvc", "push", "-r", "s3", env=s3["env"])
    listed = s3["client"].list_objects_v2(Bucket="release", Prefix="expsearch/files/md5/")
    assert listed["KeyCount"] > 10
    for folder in (".dvc/cache", "data/release", "paper/analysis", "paper/figures"):
        shutil.rmtree(clone / folder)
    run(clone, "dvc", "pull", "-r", "s3", env=s3["env"])
    assert {path: md5(clone / path) for path in before} == before
    assert "Data and pipelines are up to date" in run(clone, "dvc", "status").stdout
    # A damaged object on S3 is refused too (verify), never checked out.
    damaged = release_object(clone, "experiments.parquet")
    key = f"expsearch/files/md5/{damaged.parent.name}/{damaged.name}"
    s3["client"].put_object(Bucket="release", Key=key, Body=b"damaged")
    for folder in (".dvc/cache", "data/release"):
        shutil.rmtree(clone / folder)
    pulled = run(clone, "dvc", "pull", "-r", "s3", env=s3["env"], check=False)
    assert pulled.returncode != 0 and "data/release" in pulled.stderr
    assert not (clone / "data/release/experiments.parquet").exists()
