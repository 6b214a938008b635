"""Campaign steps on a tiny task: propose -> shards -> collect, the ledger, resume."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from expsearch.agents.history import read_rows
from expsearch.campaign.dataset import compile_dataset
from expsearch.campaign.ledger import LedgerError, ledger_history
from expsearch.campaign.settings import CampaignSettings
from expsearch.campaign.shards import estimate_cost, pack
from expsearch.campaign.steps import collect_round, propose_round, run_shard

# DESIGN.md: every experiment row records these.
ROW_FIELDS = {
    "id", "campaign", "round", "agent", "policy", "source", "parent_id", "config", "fingerprint",
    "status", "error_class", "val_ap", "test_ap", "queued", "started", "finished",
    "device_seconds", "code_version", "llm_input_tokens", "llm_output_tokens", "llm_cost_usd",
}  # fmt: skip
LIMITS = {"width": [64], "depth": [1], "epochs": [5], "seq_len": [10], "batch_size": [64]}


@pytest.fixture
def campaign_params(params, task_files, tmp_path):
    params["features"]["root"] = str(task_files["features"])
    params["campaign"]["root"] = str(tmp_path / "campaigns")
    params["campaign"]["campaigns"] = {
        "tiny": {"agents": ["rules", "random"], "rounds": 2, "shards": 2,
                 "budget_per_round": 3, "ideas_per_agent": 2, "limits": dict(LIMITS)},
        "base": {"agents": ["random"], "rounds": 1, "shards": 1,
                 "budget_per_round": 2, "ideas_per_agent": 2, "limits": dict(LIMITS)},
    }  # fmt: skip
    return params


def run_round(settings, params, task_files, round_index, lines=None):
    plan = propose_round(settings, params, round_index, environ={})
    for shard in range(settings.shards):
        run_shard(settings, params, round_index, shard, manifest=task_files["manifest"],
                  log=(lines.append if lines is not None else lambda line: None))  # fmt: skip
    return plan, collect_round(settings, round_index)


def test_pack_balances_shards_and_places_every_config_once(space):
    rows = [{"id": f"c{i}", "config": c.to_dict()} for i, c in enumerate(space.sample(23, seed=2))]
    shards = pack(rows, 4)
    assert sorted(eid for shard in shards for eid in shard) == sorted(row["id"] for row in rows)
    cost = {row["id"]: estimate_cost(row["config"]) for row in rows}
    loads = [sum(cost[eid] for eid in shard) for shard in shards]
    assert max(loads) - min(loads) <= max(cost.values())  # LPT: within one job of balance
    assert pack(rows[:1], 3) == [["c0"], [], []]
    small = {"epochs": 5, "seq_len": 10, "width": 64, "depth": 1, "batch_size": 64}
    assert estimate_cost(small | {"epochs": 10}) > estimate_cost(small)
    assert estimate_cost(small | {"width": 128}) > estimate_cost(small)


def test_two_rounds_write_a_ledger_the_next_round_reads(campaign_params, task_files):
    settings = CampaignSettings.from_params(campaign_params, "tiny")
    lines = []
    plan0, rows0 = run_round(settings, campaign_params, task_files, 0, lines)
    assert len(rows0) == 3 and all(set(row) >= ROW_FIELDS for row in rows0)
    assert {row["status"] for row in rows0} == {"ok"}
    assert all(row["id"].startswith("tiny-r0000-") for row in rows0)
    assert sorted(eid for shard in plan0["shards"] for eid in shard) == sorted(
        row["id"] for row in rows0
    )
    assert any("val AP" in line for line in lines)  # a progress line per config
    # Round 1 sees round 0: it proposes nothing that round 0 trained.
    history = ledger_history(settings, 1)
    assert len(history.finished()) == 3
    _, rows1 = run_round(settings, campaign_params, task_files, 1)
    assert not {row["fingerprint"] for row in rows1} & {row["fingerprint"] for row in rows0}
    assert len(read_rows(settings.experiments_file(0))) == 3


def test_a_failed_config_is_recorded_and_the_shard_goes_on(campaign_params, task_files):
    settings = CampaignSettings.from_params(campaign_params, "base")
    plan = propose_round(settings, campaign_params, 0, environ={})
    bad = plan["shards"][0][0]
    for row in plan["rows"]:
        if row["id"] == bad:
            row["config"]["learning_rate"] = 5.0  # outside the space: a config failure
    settings.plan_file(0).write_text(json.dumps(plan))
    summary = run_shard(settings, campaign_params, 0, 0, manifest=task_files["manifest"],
                        log=lambda line: None)  # fmt: skip
    assert [r["status"] for r in summary["results"]] == ["failed", "ok"]
    rows = {row["id"]: row for row in collect_round(settings, 0)}
    assert rows[bad]["error_class"] == "config" and "learning_rate" in rows[bad]["error"]
    assert "ConfigError" in rows[bad]["trace"]


def test_a_rerun_shard_resumes_finished_configs(campaign_params, task_files):
    settings = CampaignSettings.from_params(campaign_params, "base")
    propose_round(settings, campaign_params, 0, environ={})
    first = run_shard(settings, campaign_params, 0, 0, manifest=task_files["manifest"],
                      log=lambda line: None)  # fmt: skip
    settings.shard_file(0, 0).unlink()  # the job was killed after its configs finished
    lines = []
    again = run_shard(settings, campaign_params, 0, 0, manifest=task_files["manifest"],
                      log=lines.append)  # fmt: skip
    assert all(r["resumed"] for r in again["results"]) and len(again["results"]) == 2
    assert [r["seconds"] for r in again["results"]] == [r["seconds"] for r in first["results"]]
    assert all("(done earlier)" in line for line in lines)


def test_collect_refuses_a_round_whose_shards_did_not_finish(campaign_params, task_files):
    settings = CampaignSettings.from_params(campaign_params, "tiny")
    propose_round(settings, campaign_params, 0, environ={})
    with pytest.raises(LedgerError, match=r"shard_000\.json: missing"):
        collect_round(settings, 0)
    with pytest.raises(LedgerError, match="round 0 was not collected"):
        ledger_history(settings, 1)


def test_the_dataset_holds_every_campaign(campaign_params, task_files, tmp_path):
    for name in ("tiny", "base"):
        settings = CampaignSettings.from_params(campaign_params, name)
        for round_index in range(settings.rounds):
            run_round(settings, campaign_params, task_files, round_index)
    summary = compile_dataset(campaign_params, tmp_path / "dataset")
    experiments = pd.read_parquet(tmp_path / "dataset" / "experiments.parquet")
    assert len(experiments) == 3 + 3 + 2 and experiments["id"].is_unique
    assert set(experiments["campaign"]) == {"tiny", "base"}
    assert json.loads(experiments["config"].iloc[0])["width"] == 64
    proposals = pd.read_parquet(tmp_path / "dataset" / "proposals.parquet")
    assert set(proposals["fate"]) >= {"kept"}
    assert summary["tiny"]["finished"] == 6 and summary["base"]["experiments"] == 2
    use = summary["tiny"]["utilisation"]
    assert use["devices"] == 2 and 0 < use["busy_fraction"] <= 1.0
    log = (tmp_path / "dataset" / "agent_log.jsonl").read_text().splitlines()
    assert len(log) == 2 * 2 + 1  # (rounds x agents) per campaign


def test_unknown_campaign_and_bad_limits_are_named(campaign_params):
    with pytest.raises(ValueError, match="unknown campaign 'nope'"):
        CampaignSettings.from_params(campaign_params, "nope")


def test_the_scheduling_simulation_counts_idle_devices():
    from expsearch.campaign.simulate import SimulationSettings, simulate

    ideal = SimulationSettings(devices=4, rounds=3, configs_per_round=8, shards=4,
                               minutes=(5.0, 5.0), propose_s=0.0, collect_s=0.0,
                               estimate_error=0.0)  # fmt: skip
    result = simulate(ideal)
    assert result["busy_fraction"] == 1.0 and result["experiments"] == 24
    assert result["experiments_per_device_hour"] == 12.0  # 5-minute jobs, no idle time
    # A proposal step with no device in use idles all devices for its duration.
    slow = simulate(SimulationSettings(**{**ideal.__dict__, "propose_s": 600.0}))
    assert slow["busy_fraction"] == 0.5
    # Round barriers with uneven jobs idle devices; campaigns side by side fill them.
    alone = simulate(SimulationSettings(rounds=10))
    together = simulate(SimulationSettings(rounds=10, campaigns=2))
    assert alone["busy_fraction"] < together["busy_fraction"] <= 1.0


def test_the_next_round_heals_a_failure_from_the_ledger(campaign_params, task_files):
    campaign = campaign_params["campaign"]["campaigns"]["base"]
    campaign.update(rounds=2, limits={**LIMITS, "batch_size": [32, 64]})
    settings = CampaignSettings.from_params(campaign_params, "base")
    run_round(settings, campaign_params, task_files, 0)
    # Round 0's first config ran out of memory (as recorded in the ledger).
    path = settings.experiments_file(0)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0].update(status="failed", error_class="oom", val_ap=None,
                   trace="torch.OutOfMemoryError: CUDA out of memory")  # fmt: skip
    rows[0]["config"]["batch_size"] = 64
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    plan = propose_round(settings, campaign_params, 1, environ={})
    heals = [row for row in plan["rows"] if row["source"] == "heal"]
    assert len(heals) == 1 and heals[0]["parent_id"] == rows[0]["id"]
    assert heals[0]["fate"] == "kept" and heals[0]["config"]["batch_size"] == 32
    assert plan["heal_log"][0]["remediation"] == "halve_batch_size"
