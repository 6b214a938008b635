"""A campaign's `lag`: round r is proposed before the last `lag` rounds are collected.

The layout's paths, the history with queued rows, the checks on the files
given, the simulated utilisation and the Snakemake DAG. No training: the
shard summaries are written by hand (collect reads nothing else).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from expsearch.campaign.layout import CampaignLayout, ledger_rounds, rounds_waiting
from expsearch.campaign.ledger import LedgerError, ledger_history
from expsearch.campaign.simulate import SimulationSettings, simulate
from expsearch.campaign.steps import collect_round, propose_round
from expsearch.params import ParamsError, check_params
from expsearch.settings import campaign_settings
from expsearch.yamlio import dump_yaml, load_yaml_file

from .workflow_repo import copy_repo, snakemake

LIMITS = {"width": [64], "depth": [1], "epochs": [5], "seq_len": [10], "batch_size": [64]}


@pytest.fixture
def lag_params(params, tmp_path):
    params["campaign"]["root"] = str(tmp_path / "campaigns")
    params["campaign"]["campaigns"] = {
        "tiny": {"agents": ["rules", "random"], "rounds": 3, "shards": 2, "lag": 1,
                 "budget_per_round": 3, "ideas_per_agent": 2, "limits": dict(LIMITS)},
    }  # fmt: skip
    params["analysis"]["baselines"]["generative_campaign"] = None
    return check_params(params)


@pytest.fixture
def layout(lag_params):
    return CampaignLayout(lag_params["campaign"]["root"])


def propose(settings, layout, round_index, environ=None):
    ledger = layout.ledger(settings.name, round_index, settings.lag)
    return propose_round(settings, round_index, ledger["plans"], ledger["experiments"],
                         out=layout.plan(settings.name, round_index), environ=environ or {})  # fmt: skip


def collect_untrained(settings, layout, round_index, val_ap=0.5):
    """Shard summaries as a shard writes them, each config finished with `val_ap`; then collect."""
    c = settings.name
    plan = json.loads(Path(layout.plan(c, round_index)).read_text())
    for number in range(settings.shards):
        ids = plan["shards"][number] if number < len(plan["shards"]) else []
        metrics = {"status": "ok", "error_class": None, "seconds": 1.0, "val_ap": val_ap}
        results = [{"id": eid, "status": "ok", "error_class": None, "seconds": 1.0,
                    "resumed": False, "metrics": metrics, "trace": None} for eid in ids]  # fmt: skip
        summary = {"campaign": c, "round": round_index, "shard": number, "results": results,
                   "started": "2025-01-01T00:00:00+00:00", "seconds": 1.0,
                   "finished": "2025-01-01T00:01:00+00:00"}  # fmt: skip
        Path(layout.shard(c, round_index, number)).write_text(json.dumps(summary))
    return collect_round(settings, plan=layout.plan(c, round_index),
                         shards=layout.shards(c, round_index, settings.shards),
                         out=layout.experiments(c, round_index))  # fmt: skip


def kept(plan):
    """The kept rows, in queue order."""
    rows = [row for row in plan["rows"] if row["fate"] == "kept"]
    return sorted(rows, key=lambda row: row["queue_position"])


def test_the_layout_reads_every_plan_and_the_experiments_before_the_lag():
    assert ledger_rounds(3) == (range(3), range(3))
    assert ledger_rounds(3, lag=1) == (range(3), range(2))
    assert ledger_rounds(3, lag=5) == (range(3), range(0))  # a lag beyond the rounds: no results
    assert ledger_rounds(0, lag=2) == (range(0), range(0))
    layout = CampaignLayout("results/campaigns")
    ledger = layout.ledger("agents", 3, lag=2)
    assert ledger["plans"] == [f"results/campaigns/agents/round_000{r}/plan.json" for r in range(3)]
    assert ledger["experiments"] == ["results/campaigns/agents/round_0000/experiments.jsonl"]
    assert layout.ledger("agents", 3) == layout.ledger("agents", 3, lag=0)
    assert len(layout.ledger("agents", 3)["experiments"]) == 3
    with pytest.raises(ValueError, match="lag -1"):
        ledger_rounds(3, lag=-1)


def longest_chain(round_index: int, rounds: int, lag: int) -> int:
    """By search over the DAG's own rule: the most later rounds that wait, one
    after another, for `round_index` (r' waits for r if it reads r's experiments)."""
    below = [r for r in range(round_index + 1, rounds) if round_index in ledger_rounds(r, lag)[1]]
    return max((1 + longest_chain(r, rounds, lag) for r in below), default=0)


@pytest.mark.parametrize("lag", [0, 1, 2, 5])
def test_a_rounds_priority_is_the_chain_of_rounds_that_wait_for_it(lag):
    for rounds in (1, 2, 3, 7, 12):
        for r in range(rounds):
            assert rounds_waiting(r, rounds, lag) == longest_chain(r, rounds, lag), (r, rounds)
    assert [rounds_waiting(r, 3, 0) for r in range(3)] == [2, 1, 0]
    assert [rounds_waiting(r, 3, 2) for r in range(3)] == [0, 0, 0]  # nothing waits: a baseline
    for bad in ((3, 3, 0), (-1, 3, 0), (0, 3, -1)):
        with pytest.raises(ValueError, match="round"):
            rounds_waiting(*bad)


def test_the_lag_is_a_campaign_setting_checked_by_the_schema(lag_params):
    assert campaign_settings(lag_params, "tiny").lag == 1
    del lag_params["campaign"]["campaigns"]["tiny"]["lag"]
    assert campaign_settings(check_params(lag_params), "tiny").lag == 0  # optional, default 0
    lag_params["campaign"]["campaigns"]["tiny"]["lag"] = -1
    with pytest.raises(ParamsError, match=r"campaign\.campaigns\.tiny\.lag"):
        check_params(lag_params)


def test_the_history_holds_the_unread_rounds_as_queued(lag_params, layout):
    settings = campaign_settings(lag_params, "tiny")
    plan0 = propose(settings, layout, 0)
    # Round 1 is proposed while round 0 trains: round 0's configs are queued, none taken again.
    plan1 = propose(settings, layout, 1)
    assert (plan1["lag"], plan1["results_of_rounds_before"], plan1["queued_rounds"]) == (1, 0, [0])
    taken0 = {row["fingerprint"] for row in kept(plan0)}
    assert not taken0 & {row["fingerprint"] for row in plan1["rows"] if row["fate"] == "kept"}
    collect_untrained(settings, layout, 0, val_ap=0.5)
    ledger = layout.ledger("tiny", 2, lag=1)
    history = ledger_history(settings, 2, ledger["plans"], ledger["experiments"])
    finished = sorted(exp.id for exp in history.finished())
    assert finished == sorted(row["id"] for row in kept(plan0))  # the policies learn from these
    queued = [exp for exp in history.experiments if exp.status == "queued"]
    assert [exp.id for exp in queued] == [row["id"] for row in kept(plan1)]
    assert {exp.round for exp in queued} == {1} and all(exp.config for exp in queued)
    assert [exp.agent for exp in queued] == [row["agent"] for row in kept(plan1)]
    assert history.taken_fingerprints() >= {row["fingerprint"] for row in kept(plan1)}
    plan2 = propose(settings, layout, 2)
    assert (plan2["results_of_rounds_before"], plan2["queued_rounds"]) == (1, [1])


def test_the_files_given_are_checked_by_name(lag_params, layout):
    settings = campaign_settings(lag_params, "tiny")
    propose(settings, layout, 0)
    propose(settings, layout, 1)
    plans = [layout.plan("tiny", 0), layout.plan("tiny", 1)]
    with pytest.raises(LedgerError, match=r"round_0000/experiments\.jsonl: missing"):
        ledger_history(settings, 2, plans, [layout.experiments("tiny", 0)])
    collect_untrained(settings, layout, 0)
    collect_untrained(settings, layout, 1)
    # Round 1's results, which round 2 does not read with lag 1 (nor declares).
    both = [layout.experiments("tiny", 0), layout.experiments("tiny", 1)]
    round1 = re.escape(layout.experiments("tiny", 1))
    with pytest.raises(
        LedgerError, match=rf"{round1}: rows of \(campaign, round\) \[\('tiny', 1\)\]"
    ):
        ledger_history(settings, 2, plans, both)
    # Round 0's results left out: its kept configs have no row.
    with pytest.raises(LedgerError, match=r"\(lag 1\) reads the experiments of round 0, but"):
        ledger_history(settings, 2, plans, [])
    with pytest.raises(LedgerError, match=r"needs the plans of 'tiny' rounds \[0, 1\]"):
        ledger_history(settings, 2, plans[:1], both[:1])
    # Without the lag, round 2 needs both rounds' results (and round 1's is given).
    no_lag = dataclasses.replace(settings, lag=0)
    assert len(ledger_history(no_lag, 2, plans, both).finished()) == 6
    with pytest.raises(LedgerError, match="reads the experiments of round 1"):
        ledger_history(no_lag, 2, plans, both[:1])


# ----------------------------------------------- a queued config proposed again is a duplicate
@pytest.fixture(scope="module")
def server():
    from .llm_server import LLMTestServer

    with LLMTestServer() as running:
        yield running


def test_a_config_still_queued_is_dropped_as_a_duplicate(params, tmp_path, server):
    from .llm_server import Reply

    params["campaign"]["root"] = str(tmp_path / "campaigns")
    params["agents"]["llm"]["claude"].update(base_url=server.url, max_retries=0)
    params["campaign"]["campaigns"] = {
        "llm": {"agents": ["claude"], "rounds": 2, "shards": 1, "lag": 1, "fallback": None,
                "budget_per_round": 3, "ideas_per_agent": 3, "limits": dict(LIMITS)},
    }  # fmt: skip
    params["analysis"]["baselines"]["generative_campaign"] = None
    settings = campaign_settings(check_params(params), "llm")
    layout = CampaignLayout(params["campaign"]["root"])
    a, b, c = (
        cfg.to_dict() | {"learning_rate": 1.0e-3} for cfg in settings.space.sample(3, seed=3)
    )
    near_a = a | {"learning_rate": 1.01e-3}  # within the continuous tolerance of a
    environ = {"ANTHROPIC_API_KEY": "sk-test"}

    def answer(*configs):
        ideas = [{"idea_name": f"idea {i}", **config} for i, config in enumerate(configs)]
        server.script("anthropic", [Reply(text=dump_yaml(ideas))])

    answer(a, b)
    plan0 = propose(settings, layout, 0, environ)
    assert [row["config"]["learning_rate"] for row in kept(plan0)] == [1.0e-3, 1.0e-3]
    id_a = kept(plan0)[0]["id"]
    # Round 0 is not collected: round 1 (lag 1) sees its configs as queued.
    answer(a, near_a, c)
    plan1 = propose(settings, layout, 1, environ)
    (again,) = [row for row in plan1["rows"] if row["config"] == a]
    assert (again["fate"], again["reason"]) == (
        "duplicate",
        f"duplicate of {id_a} (same fingerprint)",
    )
    (near,) = [row for row in plan1["rows"] if row["config"] == near_a]
    assert (near["fate"], near["duplicate_of"]) == ("near_duplicate", id_a)
    assert [row["config"] for row in kept(plan1)] == [c]


# ----------------------------------------------------------------------- the simulation
def test_a_lag_fills_the_devices_a_round_barrier_idles():
    base = SimulationSettings(rounds=12, seed=1)
    busy = {lag: simulate(dataclasses.replace(base, lag=lag)) for lag in (0, 1, 2)}
    assert busy[1]["busy_fraction"] >= busy[0]["busy_fraction"] + 0.15
    assert busy[2]["busy_fraction"] > busy[1]["busy_fraction"]
    assert all(result["experiments"] == 12 * 25 for result in busy.values())
    for lag, result in busy.items():
        (rounds,) = result["rounds"]
        for r in range(1, 12):
            start = rounds[r]["proposal_started"]
            assert start >= rounds[r - 1]["proposed"]  # plans are proposed in order
            if r - 1 - lag >= 0:  # ... and only once the results it reads are collected
                assert start >= rounds[r - 1 - lag]["collected"]
        overlapping = sum(rounds[r]["proposal_started"] < rounds[r - 1]["collected"]
                          for r in range(1, 12))  # fmt: skip
        assert overlapping == (0 if lag == 0 else 11)


# ------------------------------------------------------------------------- the DAG
def campaign_jobs(stdout: str) -> set[tuple[str, str]]:
    """(rule, round) of the campaign jobs in a dry run's job list."""
    jobs, rule = set(), None
    for line in stdout.splitlines():
        found = re.match(r"^(?:local)?rule (\w+):", line)
        if found:
            rule = found.group(1)
        wildcards = re.search(r"wildcards: .*round=(\d{4})", line)
        if wildcards and rule in ("propose", "shard", "collect"):
            jobs.add((rule, wildcards.group(1)))
    return jobs


def job_priorities(stdout: str) -> dict[tuple[str, str], int]:
    """(rule, round) -> the priority a dry run prints for it (only when not 0)."""
    priorities, rule, round_ = {}, None, None
    for line in stdout.splitlines():
        found = re.match(r"^(?:local)?rule (\w+):", line)
        if found:
            rule, round_ = found.group(1), None
        wildcards = re.search(r"wildcards: .*round=(\d{4})", line)
        if wildcards:
            round_ = wildcards.group(1)
        priority = re.search(r"priority: (\d+)", line)
        if priority and round_:
            priorities[(rule, round_)] = int(priority.group(1))
    return priorities


@pytest.mark.parametrize("lag", [0, 1])
def test_with_a_lag_a_proposal_does_not_wait_for_the_last_round(tmp_path, lag):
    repo = copy_repo(tmp_path / "repo")
    params = load_yaml_file(repo / "params.yaml")
    params["campaign"]["campaigns"] = {
        "agents": {"agents": ["rules"], "rounds": 3, "shards": 1, "lag": lag,
                   "budget_per_round": 2, "ideas_per_agent": 2},
    }  # fmt: skip
    params["analysis"]["baselines"]["generative_campaign"] = None
    params.pop("tasks")  # the fleet task runs a campaign this one does not declare
    (repo / "params.yaml").write_text(dump_yaml(params))
    run = snakemake(repo, "results/campaigns/agents/round_0002/plan.json", "--dry-run")
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = campaign_jobs(run.stdout)
    assert {round_ for rule, round_ in jobs if rule == "propose"} == {"0000", "0001", "0002"}
    # Round 2's proposal needs round 0's results; with lag 1, not round 1's.
    collected = {round_ for rule, round_ in jobs if rule == "collect"}
    assert collected == ({"0000"} if lag else {"0000", "0001"})
    assert (("shard", "0001") in jobs) == (lag == 0)
    # Critical path first: round 0's jobs rank by the rounds that wait for them.
    priorities = job_priorities(run.stdout)
    assert priorities[("propose", "0000")] == (1 if lag else 2)
    assert priorities[("collect", "0000")] == (1 if lag else 2)
    assert ("propose", "0002") not in priorities  # priority 0, the default, is not printed
