"""Campaign steps on a tiny task: propose -> shards -> collect, the ledger, resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from expsearch.agents.history import read_rows
from expsearch.campaign.dataset import DatasetFiles, compile_dataset
from expsearch.campaign.layout import CampaignLayout
from expsearch.campaign.ledger import LedgerError, ledger_history
from expsearch.campaign.shards import estimate_cost, pack
from expsearch.campaign.steps import collect_round, propose_round, run_shard
from expsearch.settings import all_campaigns, campaign_settings
from expsearch.yamlio import dump_yaml

# The README's experiment fields: every experiment row records these.
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
    params["analysis"]["baselines"]["generative_campaign"] = "base"  # the random-only campaign
    return params


@pytest.fixture
def layout(campaign_params):
    return CampaignLayout(campaign_params["campaign"]["root"])


def propose(settings, layout, round_index):
    ledger = layout.ledger(settings.name, round_index)
    out = layout.plan(settings.name, round_index)
    return propose_round(
        settings, round_index, ledger["plans"], ledger["experiments"], out=out, environ={}
    )


def shard(settings, layout, task_files, round_index, number, log=lambda line: None):
    c = settings.name
    return run_shard(
        settings,
        plan=layout.plan(c, round_index),
        shard=number,
        stores=sorted(str(p) for p in task_files["features"].glob("*/index.json")),
        manifest=task_files["manifest"],
        clips=task_files["clips"],
        runs=layout.runs(c, round_index),
        out=layout.shard(c, round_index, number),
        log=log,
    )


def collect(settings, layout, round_index):
    c = settings.name
    return collect_round(
        settings,
        plan=layout.plan(c, round_index),
        shards=layout.shards(c, round_index, settings.shards),
        out=layout.experiments(c, round_index),
    )


def history_before(settings, layout, round_index):
    ledger = layout.ledger(settings.name, round_index)
    return ledger_history(settings, round_index, ledger["plans"], ledger["experiments"])


def run_round(settings, layout, task_files, round_index, lines=None):
    plan = propose(settings, layout, round_index)
    for number in range(settings.shards):
        log = lines.append if lines is not None else lambda line: None
        shard(settings, layout, task_files, round_index, number, log)
    return plan, collect(settings, layout, round_index)


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


def test_two_rounds_write_a_ledger_the_next_round_reads(campaign_params, layout, task_files):
    settings = campaign_settings(campaign_params, "tiny")
    lines = []
    plan0, rows0 = run_round(settings, layout, task_files, 0, lines)
    assert len(rows0) == 3 and all(set(row) >= ROW_FIELDS for row in rows0)
    assert {row["status"] for row in rows0} == {"ok"}
    assert all(row["id"].startswith("tiny-r0000-") for row in rows0)
    assert sorted(eid for shard in plan0["shards"] for eid in shard) == sorted(
        row["id"] for row in rows0
    )
    assert any("val AP" in line for line in lines)  # a progress line per config
    # Round 1 sees round 0: it proposes nothing that round 0 trained.
    history = history_before(settings, layout, 1)
    assert len(history.finished()) == 3
    _, rows1 = run_round(settings, layout, task_files, 1)
    assert not {row["fingerprint"] for row in rows1} & {row["fingerprint"] for row in rows0}
    assert len(read_rows(layout.experiments("tiny", 0))) == 3


# A proposal and a collect job run between two rounds, each a new process: they
# must not import torch or pandas (3-4 s of a job that does a second of work).
BETWEEN_ROUNDS = """
import json, sys
from expsearch.campaign.steps import collect_round, propose_round
from expsearch.settings import campaign_settings
params, ledger, out = json.loads(sys.argv[1])
settings = campaign_settings(params, "tiny")
collect_round(settings, plan=ledger["plan"], shards=ledger["shards"], out=out + "/experiments.jsonl")
propose_round(settings, 1, [ledger["plan"]], [out + "/experiments.jsonl"], out=out + "/plan.json",
              environ={})
print(json.dumps({name: name in sys.modules for name in ("torch", "pandas")}))
"""


def test_proposing_and_collecting_import_no_training_modules(
    campaign_params, layout, task_files, tmp_path
):
    settings = campaign_settings(campaign_params, "tiny")
    run_round(settings, layout, task_files, 0)
    ledger = {"plan": layout.plan("tiny", 0), "shards": layout.shards("tiny", 0, settings.shards)}
    argument = json.dumps([campaign_params, ledger, str(tmp_path)])
    done = subprocess.run(
        [sys.executable, "-c", BETWEEN_ROUNDS, argument], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == {"torch": False, "pandas": False}
    assert len(read_rows(tmp_path / "experiments.jsonl")) == 3  # the same steps, really run
    assert json.loads((tmp_path / "plan.json").read_text())["round"] == 1


def test_a_failed_config_is_recorded_and_the_shard_goes_on(campaign_params, layout, task_files):
    settings = campaign_settings(campaign_params, "base")
    plan = propose(settings, layout, 0)
    bad = plan["shards"][0][0]
    for row in plan["rows"]:
        if row["id"] == bad:
            row["config"]["learning_rate"] = 5.0  # outside the space: a config failure
    Path(layout.plan("base", 0)).write_text(json.dumps(plan))
    summary = shard(settings, layout, task_files, 0, 0)
    assert [r["status"] for r in summary["results"]] == ["failed", "ok"]
    rows = {row["id"]: row for row in collect(settings, layout, 0)}
    assert rows[bad]["error_class"] == "config" and "learning_rate" in rows[bad]["error"]
    assert "ConfigError" in rows[bad]["trace"]


def test_a_rerun_shard_resumes_finished_configs(campaign_params, layout, task_files):
    settings = campaign_settings(campaign_params, "base")
    propose(settings, layout, 0)
    first = shard(settings, layout, task_files, 0, 0)
    Path(layout.shard("base", 0, 0)).unlink()  # the job was killed after its configs finished
    lines = []
    again = shard(settings, layout, task_files, 0, 0, lines.append)
    assert all(r["resumed"] for r in again["results"]) and len(again["results"]) == 2
    assert [r["seconds"] for r in again["results"]] == [r["seconds"] for r in first["results"]]
    assert all("(done earlier)" in line for line in lines)


def test_collect_refuses_a_round_whose_shards_did_not_finish(campaign_params, layout, task_files):
    settings = campaign_settings(campaign_params, "tiny")
    propose(settings, layout, 0)
    with pytest.raises(LedgerError, match=r"shard_000\.json: missing"):
        collect(settings, layout, 0)
    with pytest.raises(
        LedgerError, match=r"experiments\.jsonl: missing; its round was not collected"
    ):
        history_before(settings, layout, 1)


def test_steps_check_the_files_they_are_given(campaign_params, layout, task_files):
    """A file of another round, shard or campaign is refused, naming what was expected."""
    tiny = campaign_settings(campaign_params, "tiny")
    base = campaign_settings(campaign_params, "base")
    run_round(tiny, layout, task_files, 0)
    ledger = layout.ledger("tiny", 1)  # round 0's files, for a round that needs rounds 0 and 1
    with pytest.raises(LedgerError, match=r"needs the plans of 'tiny' rounds \[0, 1\]"):
        ledger_history(tiny, 2, ledger["plans"], ledger["experiments"])
    with pytest.raises(LedgerError, match="a plan of campaign 'tiny', not 'base'"):
        collect_round(
            base, plan=layout.plan("tiny", 0), shards=[], out=layout.experiments("base", 0)
        )
    with pytest.raises(LedgerError, match="collect needs the shard summaries"):
        collect_round(
            tiny,
            plan=layout.plan("tiny", 0),
            shards=[layout.shard("tiny", 0, 0)] * 2,  # shard 1 missing, shard 0 twice
            out=layout.experiments("tiny", 0),
        )


def dataset_files(layout, campaigns, tmp_path):
    def each(files):
        return [p for c in campaigns.values() for r in range(c.rounds) for p in files(c, r)]

    names = ("experiments.parquet", "proposals.parquet", "agent_log.jsonl", "summary.json")
    return {
        "plans": each(lambda c, r: [layout.plan(c.name, r)]),
        "shards": each(lambda c, r: layout.shards(c.name, r, c.shards)),
        "experiments": each(lambda c, r: [layout.experiments(c.name, r)]),
        "out": DatasetFiles(*(tmp_path / "dataset" / name for name in names)),
    }


def test_the_dataset_holds_every_campaign(campaign_params, layout, task_files, tmp_path):
    campaigns = all_campaigns(campaign_params)
    for settings in campaigns.values():
        for round_index in range(settings.rounds):
            run_round(settings, layout, task_files, round_index)
    files = dataset_files(layout, campaigns, tmp_path)
    summary = compile_dataset(campaigns, **files)
    # The ledger files may come in any order: each names its campaign and round.
    shuffled = {k: v[::-1] if isinstance(v, list) else v for k, v in files.items()}
    assert compile_dataset(campaigns, **shuffled) == summary
    with pytest.raises(LedgerError, match="needs the shard summaries"):
        compile_dataset(campaigns, **{**files, "shards": files["shards"][1:]})
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
        campaign_settings(campaign_params, "nope")


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


def test_the_next_round_heals_a_failure_from_the_ledger(campaign_params, layout, task_files):
    campaign = campaign_params["campaign"]["campaigns"]["base"]
    campaign.update(rounds=2, limits={**LIMITS, "batch_size": [32, 64]})
    settings = campaign_settings(campaign_params, "base")
    run_round(settings, layout, task_files, 0)
    # Round 0's first config ran out of memory (as recorded in the ledger).
    path = Path(layout.experiments("base", 0))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0].update(status="failed", error_class="oom", val_ap=None,
                   trace="torch.OutOfMemoryError: CUDA out of memory")  # fmt: skip
    rows[0]["config"]["batch_size"] = 64
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    plan = propose(settings, layout, 1)
    heals = [row for row in plan["rows"] if row["source"] == "heal"]
    assert len(heals) == 1 and heals[0]["parent_id"] == rows[0]["id"]
    assert heals[0]["fate"] == "kept" and heals[0]["config"]["batch_size"] == 32
    assert plan["heal_log"][0]["remediation"] == "halve_batch_size"


def test_the_round_cli_runs_the_same_steps_on_the_layout(
    campaign_params, layout, task_files, tmp_path
):
    """`expsearch round` runs propose, shard and collect on the layout's files,
    as the workflow's rules do, with the same plan as the library step."""
    from expsearch.cli import main
    from expsearch.yamlio import dump_yaml

    params_file = tmp_path / "params.yaml"
    params_file.write_text(dump_yaml(campaign_params))
    where = ["--params", str(params_file), "--campaign", "base", "--round", "0"]
    files = ["--split", str(task_files["manifest"]), "--clips", str(task_files["clips"])]
    for step in ("propose", "shard", "collect"):
        assert main(["round", step, *where, *files]) == 0
    rows = read_rows(layout.experiments("base", 0))
    assert len(rows) == 2 and {row["status"] for row in rows} == {"ok"}
    settings = campaign_settings(campaign_params, "base")
    direct = propose_round(settings, 0, [], [], out=tmp_path / "plan.json", environ={})
    via_cli = json.loads(Path(layout.plan("base", 0)).read_text())
    assert [r["fingerprint"] for r in via_cli["rows"]] == [r["fingerprint"] for r in direct["rows"]]


# ----------------------------------------------------- rounds of LLM agents that keep nothing
@pytest.fixture(scope="module")
def server():
    from .llm_server import LLMTestServer

    with LLMTestServer() as running:
        yield running


@pytest.fixture
def llm_params(params, tmp_path, server):
    """One campaign of a Claude agent (the loopback server) that trains nothing
    by itself; no feature stores: its shards are never trained."""
    params["campaign"]["root"] = str(tmp_path / "campaigns")
    params["agents"]["llm"]["claude"].update(
        base_url=server.url, max_retries=0, price_input_per_mtok=3.0, price_output_per_mtok=15.0
    )
    params["campaign"]["campaigns"]["llm"] = {
        "agents": ["claude"], "rounds": 1, "shards": 1, "budget_per_round": 2,
        "ideas_per_agent": 2, "limits": dict(LIMITS),
    }  # fmt: skip
    return params


def outside_limits(settings) -> str:
    """An answer whose two ideas are points of the space but not of the campaign's limits."""
    ideas = [{"idea_name": f"wide {i}", **c.to_dict(), "width": 512}
             for i, c in enumerate(settings.space.sample(2, seed=1))]  # fmt: skip
    return dump_yaml(ideas)


def untrained_round(settings, layout, round_index):
    """Propose with the Claude key set, then shard summaries without training
    (collect records each kept config as failed, without metrics), then collect."""
    ledger = layout.ledger(settings.name, round_index)
    plan = propose_round(settings, round_index, ledger["plans"], ledger["experiments"],
                         out=layout.plan(settings.name, round_index),
                         environ={"ANTHROPIC_API_KEY": "sk-test"})  # fmt: skip
    for number in range(settings.shards):
        summary = {"campaign": settings.name, "round": round_index, "shard": number,
                   "started": "2025-01-01T00:00:00+00:00", "finished": "2025-01-01T00:01:00+00:00",
                   "seconds": 60.0, "results": []}  # fmt: skip
        Path(layout.shard(settings.name, round_index, number)).write_text(json.dumps(summary))
    return plan, collect(settings, layout, round_index)


def test_a_round_whose_ideas_are_all_rejected_is_filled_by_the_fallback(
    llm_params, server, tmp_path
):
    from .llm_server import Reply

    settings = campaign_settings(llm_params, "llm")
    assert settings.agent_settings.fallback == "rules"  # agents.fallback
    layout = CampaignLayout(llm_params["campaign"]["root"])
    server.script("anthropic", [Reply(text=outside_limits(settings), input_tokens=1000,
                                      output_tokens=100)])  # fmt: skip
    plan, rows = untrained_round(settings, layout, 0)
    invalid = [row for row in plan["rows"] if row["fate"] == "invalid"]
    assert len(invalid) == 2 and all("width: 512" in row["reason"] for row in invalid)
    kept = [row for row in plan["rows"] if row["fate"] == "kept"]
    assert [(row["agent"], row["source"]) for row in kept] == [("fallback_rules", "rules")] * 2
    assert plan["warnings"] == [
        "round 0: the agents kept 0 of the budget of 2 (2 invalid); "
        "fallback_rules filled 2 of the 2 unused slots"
    ]
    assert [(row["agent"], row["policy"], row["source"]) for row in rows] == [
        ("fallback_rules", "rules", "rules")
    ] * 2
    summary = compile_dataset(
        {"llm": settings}, **dataset_files(layout, {"llm": settings}, tmp_path)
    )
    assert summary["llm"]["experiments"] == 2 and summary["llm"]["by_source"] == {"rules": 2}


def test_the_summary_counts_every_billed_call_not_only_the_kept_configs(
    llm_params, server, tmp_path
):
    from .llm_server import Reply

    # Round 1 has three proposers (claude, rules, and the healer of round 0's rows): one each.
    llm_params["campaign"]["campaigns"]["llm"].update(
        agents=["claude", "rules"], rounds=2, budget_per_round=3
    )
    settings = campaign_settings(llm_params, "llm")
    layout = CampaignLayout(llm_params["campaign"]["root"])
    server.script("anthropic", [Reply(text=outside_limits(settings), input_tokens=1000,
                                      output_tokens=100)])  # fmt: skip
    _, rows0 = untrained_round(settings, layout, 0)  # claude's ideas all invalid
    ideas = [{"idea_name": "kept", **c.to_dict()} for c in settings.space.sample(1, seed=7)]
    server.script("anthropic", [Reply(text=dump_yaml(ideas), input_tokens=2000,
                                      output_tokens=200)])  # fmt: skip
    _, rows1 = untrained_round(settings, layout, 1)  # one idea kept
    assert "claude" not in {row["agent"] for row in rows0}
    assert "claude" in {row["agent"] for row in rows1}
    summary = compile_dataset(
        {"llm": settings}, **dataset_files(layout, {"llm": settings}, tmp_path)
    )
    spend = summary["llm"]
    assert spend["llm_cost_usd"] == pytest.approx((3000 * 3.0 + 300 * 15.0) / 1e6)
    assert (spend["llm_input_tokens"], spend["llm_output_tokens"]) == (3000, 300)
    assert spend["llm_calls"] == 2
    # The kept configs' shares: round 1's call only, as the experiment rows carry it.
    assert spend["llm_input_tokens_kept"] == pytest.approx(2000)
    assert spend["llm_cost_usd_kept"] == pytest.approx((2000 * 3.0 + 200 * 15.0) / 1e6)
    assert spend["llm_cost_usd_kept"] == pytest.approx(sum(r["llm_cost_usd"] for r in rows1))


def test_a_campaign_that_trains_nothing_fails_at_the_dataset_with_the_reason(
    llm_params, server, tmp_path
):
    from expsearch.campaign.dataset import NothingTrainedError
    from expsearch.params import check_params

    from .llm_server import Reply

    llm_params["campaign"]["campaigns"]["llm"].update(rounds=2, fallback=None)
    check_params(llm_params)  # a campaign may set its own fallback, null included
    settings = campaign_settings(llm_params, "llm")
    assert settings.agent_settings.fallback is None
    layout = CampaignLayout(llm_params["campaign"]["root"])
    server.script("anthropic", [Reply(text=outside_limits(settings))])
    plan0, rows0 = untrained_round(settings, layout, 0)
    server.script("anthropic", [Reply(status=500)])
    plan1, rows1 = untrained_round(settings, layout, 1)
    assert rows0 == rows1 == [] and plan0["shards"] == plan1["shards"] == [[]]
    assert plan1["warnings"] == [
        "round 1: the agents kept 0 of the budget of 2 (failed: claude); no fallback fills the rest"
    ]
    assert "server" in plan1["agent_log"][0]["error"]
    files = dataset_files(layout, {"llm": settings}, tmp_path)
    with pytest.raises(NothingTrainedError) as failed:
        compile_dataset({"llm": settings}, **files)
    message = str(failed.value)
    assert message.startswith("campaign 'llm' trained nothing in its 2 round(s)")
    assert "(candidates: 2 invalid)" in message and "claude: provider: server" in message
