"""Promoting a dataset to the release: the files unchanged, RELEASE.md's facts
computed from them, refusals that name the problem and keep the old release."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from expsearch.cli import main
from expsearch.params import load_params, merge_params
from expsearch.release import RELEASE_FILES, ReleaseError, build_release, describe

from .conftest import ROOT


def experiment_rows() -> pd.DataFrame:
    rows = []
    for campaign, policies, n in (("agents", ["rules", "tpe"], 6), ("random", ["random"], 4)):
        for i in range(n):
            rows.append({
                "id": f"{campaign}-{i}", "campaign": campaign, "policy": policies[i % len(policies)],
                "round": i // 2, "status": "failed" if i == 3 else "ok",
                "val_ap": None if i == 3 else 0.5 + 0.03 * i + (0.1 if campaign == "random" else 0),
                "test_ap": None if i == 3 else 0.4 + 0.01 * i, "device_seconds": 36.0 * (i + 1),
                "started": f"2026-01-01T00:{i:02d}:00+00:00",
                "finished": f"2026-01-01T00:{i:02d}:30+00:00",
                "code_version": "0.1.0+gaaaa" if i < 2 else "0.1.0+gbbbb", "device": "cpu",
                "llm_input_tokens": 100.0 if policies[0] == "rules" and i == 0 else 0.0,
                "llm_cost_usd": 0.25 if policies[0] == "rules" and i == 0 else 0.0,
            })  # fmt: skip
    return pd.DataFrame(rows)


def write_dataset(folder, rows: pd.DataFrame):
    folder.mkdir(parents=True)
    rows.to_parquet(folder / "experiments.parquet")
    pd.DataFrame({"id": ["p1"], "fate": ["kept"]}).to_parquet(folder / "proposals.parquet")
    (folder / "agent_log.jsonl").write_text('{"agent": "rules"}\n')
    summary = {"agents": {"llm_calls": 3, "llm_cost_usd": 0.5}, "random": {"llm_calls": 0}}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


@pytest.fixture
def dataset(tmp_path):
    """A dataset where the workflow writes it, with the fleet task's beside it."""
    rows = experiment_rows()
    write_dataset(tmp_path / "results/tasks/fleet/dataset", rows[rows.campaign == "random"])
    return write_dataset(tmp_path / "results/dataset", rows)


@pytest.fixture
def params(default_params):
    """The default params without further tasks (the tests of tasks add them back)."""
    return {key: value for key, value in default_params.items() if key != "tasks"}


def test_the_release_holds_the_dataset_unchanged_and_facts_from_it(dataset, tmp_path, params):
    out = tmp_path / "data/release"
    facts = build_release(dataset, out, params)
    for name in RELEASE_FILES:
        assert (out / name).read_bytes() == (dataset / name).read_bytes()
    rows = experiment_rows()
    agents = facts["campaigns"]["agents"]
    assert (agents["experiments"], agents["finished"], agents["failed"]) == (6, 5, 1)
    assert agents["rounds"] == 3 and agents["policies"] == ["rules", "tpe"]
    best = rows[rows.campaign == "agents"].sort_values("val_ap", na_position="first").iloc[-1]
    assert agents["best_val_ap"] == round(best.val_ap, 4) and agents["its_id"] == best.id
    assert agents["its_test_ap"] == round(best.test_ap, 4)
    assert agents["device_hours"] == round(
        rows[rows.campaign == "agents"].device_seconds.sum() / 3600, 2
    )
    assert agents["wall_hours"] == round((5 * 60 + 30) / 3600, 2)  # first start to last finish
    assert facts["code_versions"] == {"0.1.0+gaaaa": 4, "0.1.0+gbbbb": 6}
    assert facts["llm"] == {"calls": 3, "cost_usd": 0.5}  # billed calls, not rows' shares
    assert facts["task"]["clips"] == params["data"]["synthetic"]["n"]
    assert facts["files"]["experiments.parquet"] == (dataset / "experiments.parquet").stat().st_size
    text = (out / "RELEASE.md").read_text()
    assert "| agents | rules, tpe | 3 | 6 | 5 | 1 |" in text
    assert "`0.1.0+gbbbb` (6)" in text and "10 experiments, 8 finished" in text


def test_a_dataset_missing_a_file_is_refused_and_the_old_release_kept(dataset, tmp_path, params):
    out = tmp_path / "release"
    build_release(dataset, out, params)
    before = (out / "RELEASE.md").read_text()
    (dataset / "agent_log.jsonl").unlink()
    with pytest.raises(ReleaseError, match=r"no agent_log\.jsonl"):
        build_release(dataset, out, params)
    assert (out / "RELEASE.md").read_text() == before
    (dataset / "agent_log.jsonl").write_text("")
    (dataset / "experiments.parquet").write_bytes(b"not parquet")
    with pytest.raises(ReleaseError, match=r"experiments\.parquet: unreadable"):
        build_release(dataset, out, params)
    assert sorted(p.name for p in out.iterdir()) == sorted([*RELEASE_FILES, "RELEASE.md"])


def test_the_release_command_writes_the_folder_and_names_bad_input(dataset, tmp_path, capsys):
    out = tmp_path / "release"
    argv = ["release", "--params", str(ROOT / "params.yaml"), "--dataset", str(dataset)]
    assert main([*argv, "--out", str(out), "--no-dvc"]) == 0
    assert "| random | random | 2 | 4 | 3 | 1 |" in capsys.readouterr().out
    # The fleet task params.yaml declares, found beside --dataset where the workflow writes it.
    fleet = tmp_path / "results/tasks/fleet/dataset/experiments.parquet"
    assert (out / "tasks/fleet/experiments.parquet").read_bytes() == fleet.read_bytes()
    assert main([*argv[:-1], str(tmp_path / "nowhere"), "--out", str(out), "--no-dvc"]) == 2
    assert "no experiments.parquet" in capsys.readouterr().err


def test_an_overlay_is_merged_over_params_as_snakemake_merges_a_profile(default_params):
    merged = load_params(ROOT / "params.yaml", ROOT / "profiles/thousand/params.yaml")
    campaigns = merged["campaign"]["campaigns"]
    assert campaigns["agents"]["rounds"] == 32  # from the overlay
    assert (
        campaigns["agents"]["agents"] == default_params["campaign"]["campaigns"]["agents"]["agents"]
    )
    assert set(campaigns) == {"agents", "random", "tpe"}
    assert merge_params({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}, "d": [1]}) == {
        "a": {"b": 3, "c": 2}, "d": [1]}  # fmt: skip
    imported = experiment_rows().assign(round=None)  # rows without rounds (an import)
    facts = describe(imported, {}, merged, {})
    assert facts["campaigns"]["agents"]["rounds"] is None and facts["llm"]["calls"] == 0


def test_check_release_names_a_damaged_folder_manifest_and_files(tmp_path):
    """Objects as DVC 3 stores them (plain md5; a folder's `.dir` manifest is the
    md5 of its JSON), checked without DVC: each problem names its file."""
    import hashlib
    import subprocess

    from expsearch.release_check import check_release

    def put(store, data: bytes, suffix=""):
        md5 = hashlib.md5(data).hexdigest() + suffix
        path = store / "files/md5" / md5[:2] / md5[2:]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return md5, path

    repo, remote = tmp_path / "repo", tmp_path / "remote"
    (repo / "data").mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    a, a_path = put(remote, b"first file")
    b, _ = put(remote, b"second file")
    listing = json.dumps([{"md5": a, "relpath": "a.txt"}, {"md5": b, "relpath": "b.txt"}])
    folder, manifest = put(remote, listing.encode(), ".dir")
    (repo / "data/release.dvc").write_text(f"outs:\n- md5: {folder}\n  path: release\n")
    assert check_release(repo, remote) == []
    a_path.write_bytes(b"damaged")
    (problem,) = check_release(repo, remote)
    assert problem.startswith("data/release/a.txt: remote object") and "corrupted" in problem
    manifest.write_text(listing.replace("b.txt", "c.txt"))  # valid JSON, wrong bytes
    (problem,) = check_release(repo, remote)
    assert "data/release: the folder's manifest" in problem and "corrupted" in problem
    manifest.unlink()
    assert (
        "manifest" in check_release(repo, remote)[0] and "missing" in check_release(repo, remote)[0]
    )


def test_each_declared_task_is_released_beside_the_primary(dataset, tmp_path, default_params):
    out = tmp_path / "release"
    fleet = tmp_path / "results/tasks/fleet/dataset"
    facts = build_release(dataset, out, default_params, {"fleet": fleet})
    for name in RELEASE_FILES:
        assert (out / "tasks/fleet" / name).read_bytes() == (fleet / name).read_bytes()
    task = facts["tasks"]["fleet"]
    assert task["task"]["variant"] == "fleet"  # the task's own params, not the primary's
    assert list(task["campaigns"]) == ["random"] and task["experiments"] == 4
    assert facts["experiments"] == 10  # the primary task's totals stay its own
    text = (out / "RELEASE.md").read_text()
    assert "## Task `fleet` (`tasks/fleet/`" in text and "camera `fleet`" in text
    assert text.index("camera `default`") < text.index("camera `fleet`")


def test_a_release_without_a_declared_tasks_dataset_is_refused(dataset, tmp_path, default_params):
    out = tmp_path / "release"
    with pytest.raises(ReleaseError, match=r"every task params.yaml declares \(\['fleet'\]\)"):
        build_release(dataset, out, default_params)
    assert not out.exists()
    with pytest.raises(ReleaseError, match=r"nowhere: no experiments\.parquet"):
        build_release(dataset, out, default_params, {"fleet": tmp_path / "nowhere"})
    assert not out.exists()
