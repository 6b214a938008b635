"""Cost: device-hours, LLM spend over kept configs and over calls, self-healing."""

import json

import pandas as pd
import pytest

from expsearch.agents.healing import healing_stats
from expsearch.agents.history import History
from expsearch.analysis.cost import cost
from expsearch.analysis.result import jsonable
from expsearch.analysis.table import TableError, experiment_table


def _rows(space):
    configs = [dict(c) for c in space.sample(6, seed=1)]
    rows = [
        ("a", "llm", None, "failed", 600.0, 0.5),
        ("b", "heal", "a", "ok", 300.0, 0.0),  # first heal, succeeded
        ("c", "llm", None, "failed", 120.0, 0.5),
        ("d", "heal", "c", "failed", 60.0, 0.0),  # first heal, failed
        ("e", "heal", "d", "ok", 60.0, 0.0),  # second heal: not a first attempt
        ("f", "random", None, "ok", 3600.0, 0.0),
    ]
    return [
        {"id": i, "source": s, "parent_id": p, "status": st, "device_seconds": sec,
         "policy": "random" if s == "random" else "llm", "agent": "claude",
         "llm_input_tokens": 100.0, "llm_output_tokens": 10.0, "llm_cost_usd": usd,
         "val_ap": 0.5 if st == "ok" else None, "config": json.dumps(c)}
        for (i, s, p, st, sec, usd), c in zip(rows, configs, strict=True)
    ]  # fmt: skip


def test_device_hours_and_llm_spend_per_policy(space):
    table = experiment_table(pd.DataFrame(_rows(space)))
    calls = [  # agent-log entries: one per agent and round, with the calls it made
        {"agent": "claude", "input_tokens": 500, "output_tokens": 80, "cost_usd": 0.7,
         "calls": [{"attempt": 1}, {"attempt": 2}]},
        {"agent": "claude", "input_tokens": 400, "output_tokens": 0, "cost_usd": 0.3,
         "calls": [{"attempt": 1}]},  # a billed empty answer
        {"agent": "rules", "input_tokens": 0, "output_tokens": 0, "cost_usd": 0, "calls": []},
    ]  # fmt: skip
    result = cost(table, calls=calls)
    llm = result["groups"]["llm"]
    assert llm["experiments"] == 5 and llm["finished"] == 2
    assert llm["device_hours"] == pytest.approx((600 + 300 + 120 + 60 + 60) / 3600)
    assert llm["finished_per_device_hour"] == pytest.approx(2 / llm["device_hours"])
    assert llm["seconds_per_experiment"]["median"] == 120.0
    assert llm["llm"]["llm_cost_usd"] == pytest.approx(1.0)
    assert llm["llm"]["llm_cost_usd_per_kept_config"] == pytest.approx(0.2)
    assert result["groups"]["random"]["device_hours"] == pytest.approx(1.0)
    assert result["overall"]["experiments"] == 6
    assert result["llm_calls"]["cost_usd"] == pytest.approx(1.0)
    assert result["llm_calls"]["calls"] == 3  # provider calls, not log entries
    assert result["llm_calls"]["agents"]["rules"]["calls"] == 0
    jsonable(result)


def test_healing_rate_equals_the_campaign_summary(space):
    rows = _rows(space)
    result = cost(experiment_table(pd.DataFrame(rows)))
    reference = healing_stats(History.from_rows(rows, space))
    assert result["healing"] == reference
    assert result["healing"]["first_attempt_success_rate"] == pytest.approx(0.5)


def test_bad_input(space):
    with pytest.raises(TableError, match="device_seconds"):
        cost(experiment_table(pd.DataFrame({"id": ["a"], "status": ["ok"], "policy": ["x"]})))
    empty = pd.DataFrame(columns=["id", "status", "policy", "device_seconds"])
    assert cost(experiment_table(empty))["status"] == "insufficient_data"


def test_no_heals_is_a_zero_record(space):
    rows = [row for row in _rows(space) if row["source"] != "heal"]
    result = cost(experiment_table(pd.DataFrame(rows)))
    assert result["healing"]["attempts"] == 0
    assert result["healing"]["first_attempt_success_rate"] is None
