"""A round from proposals to queue: sweeps, dedup, budget, fates, failing agents."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from expsearch.agents.dedup import Deduplicator
from expsearch.agents.healing import Healer
from expsearch.agents.history import History
from expsearch.agents.plan import PlanSettings, plan_round
from expsearch.agents.policy import Policy, PolicyError, RandomPolicy
from expsearch.agents.proposal import FATES, Proposal, Rejection
from expsearch.agents.rules import RulesPolicy
from expsearch.agents.sweeps import SweepSettings, auto_sweep
from expsearch.agents.tpe import TPEPolicy
from expsearch.settings import plan_settings

from .agent_histories import make_history


class Scripted(Policy):
    """Returns the given configs (and rejections) as its proposals."""

    policy = source = "rules"

    def __init__(self, space, name, configs, priority="medium", rejections=(), fail=None):
        super().__init__(space, name)
        self.configs, self.priority, self.rejections, self.fail = (
            configs,
            priority,
            rejections,
            fail,
        )

    def _propose(self, history, n, rng):
        if self.fail:
            raise PolicyError(self.fail)
        self.report.rejections.extend(self.rejections)
        return [
            Proposal(space_config, self.name, self.source, self.priority)
            for space_config in self.configs[:n]
        ]


def settings(**changes):
    base = dict(ideas_per_agent=4, budget=16, sweep=SweepSettings(auto_priorities=()))
    return PlanSettings(**(base | changes))


def test_every_candidate_gets_one_fate_and_the_queue_holds_the_kept(space):
    history = make_history(space, n=30)
    agents = [RulesPolicy(space), TPEPolicy(space), RandomPolicy(space)]
    plan = plan_round(agents, history, space, round_index=2, seed=0, settings=settings(budget=7))
    assert all(row["fate"] in FATES for row in plan.rows)
    assert len(plan.queue) == 7
    assert [row["queue_position"] for row in plan.queue] == list(range(7))
    assert len({row["id"] for row in plan.rows}) == len(plan.rows)
    assert {row["agent"] for row in plan.queue} == {"rules", "tpe", "random"}
    assert all(row["id"].startswith("r0002-") for row in plan.rows)


def test_planning_is_reproducible_and_a_failing_agent_changes_no_other(space):
    history = make_history(space, n=20)

    def run(agents):
        plan = plan_round(agents, history, space, round_index=1, seed=5, settings=settings())
        return plan, {row["id"]: row["fingerprint"] for row in plan.rows if row["agent"] != "x"}

    first, rows = run([Scripted(space, "x", [], fail="boom"), RulesPolicy(space), TPEPolicy(space)])
    _, rows_again = run(
        [Scripted(space, "x", [], fail="boom"), RulesPolicy(space), TPEPolicy(space)]
    )
    assert rows == rows_again
    log = {entry["agent"]: entry for entry in first.agent_log}
    assert log["x"]["error"] == "boom" and log["rules"]["error"] is None
    assert {row["agent"] for row in first.queue} == {"rules", "tpe"}  # the round went on


def test_duplicates_of_history_and_of_the_same_round(space, focal_config):
    history = make_history(space, n=10)
    finished = history.finished()[0].config
    config = space.validate(focal_config)
    near = space.validate(focal_config | {"dropout": 0.41})  # 0.01 / 0.5 = 2% of the range
    far = space.validate(focal_config | {"learning_rate": 6e-4})  # lr x3: a real variant
    agents = [
        Scripted(space, "a", [finished, config]),
        Scripted(space, "b", [config, near, far]),
    ]
    plan = plan_round(agents, history, space, round_index=0, seed=0, settings=settings())
    fates = {(row["agent"], row["fingerprint"]): row for row in plan.rows}
    repeat = fates[("a", finished.fingerprint)]
    assert repeat["fate"] == "duplicate" and repeat["duplicate_of"] == history.finished()[0].id
    assert fates[("a", config.fingerprint)]["fate"] == "kept"
    same_round = fates[("b", config.fingerprint)]
    assert same_round["fate"] == "duplicate" and same_round["duplicate_of"] == "r0000-a-01"
    assert fates[("b", near.fingerprint)]["fate"] == "near_duplicate"
    assert "Jaccard 1.00" in fates[("b", near.fingerprint)]["reason"]
    assert fates[("b", far.fingerprint)]["fate"] == "kept"


def test_jaccard_threshold_and_the_papers_categorical_only_rule(space, focal_config):
    a = space.validate(focal_config)
    lr_variant = space.validate(focal_config | {"learning_rate": 6e-4})
    other_cell = space.validate(focal_config | {"seq_len": 10})
    ours = Deduplicator(space, 0.9, 0.05)
    ours.add("a", a)
    assert ours.check(lr_variant) is None
    papers = Deduplicator(space, 0.9, None)
    papers.add("a", a)
    assert papers.check(lr_variant).fate == "near_duplicate"
    assert papers.check(other_cell) is None  # 9 of 11 shared pairs: Jaccard 0.82
    loose = Deduplicator(space, 0.8, None)
    loose.add("a", a)
    assert loose.check(other_cell).of == "a"


def test_budget_gives_each_agent_an_equal_share_taken_in_turns(space):
    configs = space.sample(12, seed=9)
    agents = [
        Scripted(space, "low", configs[:4], priority="low"),
        Scripted(space, "a", configs[4:8], priority="high"),
        Scripted(space, "b", configs[8:12], priority="high"),
    ]
    plan = plan_round(agents, History(), space, round_index=0, seed=0, settings=settings(budget=5))
    # Priorities rank an agent's own ideas, not agents: "low" keeps its share.
    assert [row["agent"] for row in plan.queue] == ["low", "a", "b", "low", "a"]
    over = [row for row in plan.rows if row["fate"] == "over_budget"]
    assert len(over) == 7 and all("round budget of 5" in row["reason"] for row in over)
    # The remainder (5 = 3 x 1 + 2) goes to the next agents in turn in the next round.
    later = plan_round(agents, History(), space, round_index=1, seed=0, settings=settings(budget=5))
    assert [row["agent"] for row in later.queue] == ["a", "b", "low", "a", "b"]


def test_a_small_budget_is_shared_fairly_despite_many_sweep_variants(space, focal_config):
    sweep = SweepSettings(auto_priorities=("high",))
    base = space.validate(focal_config)  # a focal base: 4 auto-sweep variants
    sweepy = Scripted(space, "sweepy", [base], priority="high")
    others = [space.validate(focal_config | {"encoder": "retnet", "seq_len": s}) for s in (10, 30)]
    plain = Scripted(space, "plain", others, priority="medium")
    for round_index, shares in ((0, {"sweepy": 2, "plain": 1}), (1, {"sweepy": 1, "plain": 2})):
        plan = plan_round([sweepy, plain], History(), space, round_index=round_index, seed=0,
                          settings=settings(budget=3, sweep=sweep))  # fmt: skip
        assert len([row for row in plan.rows if row["source"] == "sweep"]) == 4
        kept = Counter(row["agent"] for row in plan.queue)
        assert kept == shares  # 3 = 1 each + a remainder that alternates between rounds
        assert plan.queue[0]["agent"] == ["sweepy", "plain"][round_index]
        mine = [row for row in plan.queue if row["agent"] == "sweepy"]
        assert mine[0]["source"] == "rules"  # its base before its variants
    # A share left unused goes to the others: alone, sweepy keeps its variants too.
    plan = plan_round([sweepy, Scripted(space, "idle", [])], History(), space, round_index=0,
                      seed=0, settings=settings(budget=3, sweep=sweep))  # fmt: skip
    assert [row["source"] for row in plan.queue] == ["rules", "sweep", "sweep"]


class Raising(Policy):
    policy = source = "rules"

    def _propose(self, history, n, rng):
        return [1 / 0]


def test_any_exception_of_an_agent_fails_that_agent_not_the_round(space, caplog):
    agents = [Raising(space, "broken"), Scripted(space, "a", space.sample(2, seed=3))]
    plan = plan_round(agents, History(), space, round_index=0, seed=0, settings=settings())
    log = {entry["agent"]: entry for entry in plan.agent_log}
    assert log["broken"]["error"] == "ZeroDivisionError: division by zero"
    assert log["a"]["error"] is None and [row["agent"] for row in plan.queue] == ["a", "a"]
    assert "agent broken failed the round" in caplog.text and "Traceback" in caplog.text


def test_unused_budget_is_filled_by_the_fallback_and_warned(space, params, caplog):
    from expsearch.agents.registry import build_fallback
    from expsearch.settings import agent_settings

    fallback = build_fallback(agent_settings(params["agents"]), space)
    assert (fallback.name, fallback.policy) == ("fallback_rules", "rules")
    history = make_history(space, n=12)
    taken = history.finished()[0].config
    invalid = Rejection("a", {"learning_rate": 5.0}, "learning_rate: 5 is outside the space")
    agents = [Scripted(space, "a", [taken, *space.sample(1, seed=8)], rejections=[invalid]),
              Scripted(space, "b", [], fail="provider: server: HTTP 500")]  # fmt: skip
    plan = plan_round(agents, history, space, round_index=2, seed=0, settings=settings(budget=4),
                      fallback=fallback)  # fmt: skip
    assert [row["agent"] for row in plan.queue] == ["a"] + ["fallback_rules"] * 3
    filled = plan.queue[1:]
    assert all(row["source"] == "rules" and row["policy"] == "rules" for row in filled)
    assert [row["queue_position"] for row in plan.queue] == [0, 1, 2, 3]
    assert len({row["fingerprint"] for row in plan.queue}) == 4
    assert all(row["id"].startswith("r0002-fallback_rules-") for row in filled)
    warning = (
        "round 2: the agents kept 1 of the budget of 4 (1 duplicate, 1 invalid; failed: b); "
        "fallback_rules filled 3 of the 3 unused slots"
    )
    assert plan.warnings == [warning] and warning in caplog.text
    log = {entry["agent"]: entry for entry in plan.agent_log}
    assert log["fallback_rules"]["note"] == "fallback: filled 3 of 3 unused budget slots"
    assert log["b"]["error"] == "provider: server: HTTP 500"  # nothing else of the round lost
    alone = plan_round(agents, history, space, round_index=2, seed=0, settings=settings(budget=4))
    assert len(alone.queue) == 1 and alone.warnings[0].endswith("no fallback fills the rest")
    full = plan_round([Scripted(space, "c", space.sample(4, seed=5))], history, space,
                      round_index=2, seed=0, settings=settings(budget=4), fallback=fallback)  # fmt: skip
    assert full.warnings == [] and "fallback_rules" not in {e["agent"] for e in full.agent_log}


def test_a_heal_left_over_budget_is_tried_again(space, focal_config):
    rows = [{"id": "f1", "config": focal_config, "status": "failed", "error_class": "oom"}]
    history = History.from_rows(rows, space)
    healer = Healer(space, {"oom": ["halve_batch_size"]})
    agents = [Scripted(space, "a", space.sample(2, seed=6))]
    first = plan_round(agents, history, space, round_index=0, seed=0,
                       settings=settings(budget=1), healer=healer)  # fmt: skip
    heal = next(row for row in first.rows if row["source"] == "heal")
    assert heal["fate"] == "over_budget" and first.queue[0]["agent"] == "a"
    later = History.from_rows(rows, space, proposals=first.rows)
    healer = Healer(space, {"oom": ["halve_batch_size"]})
    again = plan_round(agents, later, space, round_index=1, seed=0,
                       settings=settings(budget=1), healer=healer)  # fmt: skip
    assert [row["source"] for row in again.queue] == ["heal"]  # the healer's turn comes first


def test_rejections_become_rows_with_their_reason(space):
    rejection = Rejection("a", {"lr": 1}, "lr: unknown key", idea_name="bad idea")
    agents = [Scripted(space, "a", space.sample(1, seed=1), rejections=[rejection])]
    plan = plan_round(agents, History(), space, round_index=3, seed=0, settings=settings())
    bad = [row for row in plan.rows if row["fate"] == "invalid"]
    assert len(bad) == 1 and bad[0]["reason"] == "lr: unknown key"
    assert bad[0]["config"] == {"lr": 1} and bad[0]["id"] == "r0003-a-x00"


def test_auto_sweep_expands_high_priority_bases(space, focal_config):
    base = space.validate(focal_config)
    sweep = SweepSettings(auto_priorities=("high",))
    variants = auto_sweep(space, base, sweep)
    labels = [label for label, _ in variants]
    assert labels == ["learning_rate x0.3", "learning_rate x3", "focal_gamma 1", "focal_gamma 2"]
    assert variants[1][1]["learning_rate"] == pytest.approx(6e-4)
    edge = space.validate(focal_config | {"learning_rate": 1e-2})
    assert next(lab for lab, _ in auto_sweep(space, edge, sweep)) == "learning_rate x0.3"
    agents = [Scripted(space, "a", [base], priority="high")]
    plan = plan_round(
        agents, History(), space, round_index=0, seed=0, settings=settings(sweep=sweep)
    )
    swept = [row for row in plan.rows if row["source"] == "sweep"]
    assert len(swept) == 4
    assert all(row["parent_id"] == "r0000-a-00" and row["priority"] == "medium" for row in swept)
    assert plan.queue[0]["id"] == "r0000-a-00"  # the high-priority base goes first


def test_plan_settings_come_from_params(default_params):
    plan = plan_settings(default_params["agents"])
    assert plan.budget == default_params["agents"]["budget_per_round"]
    assert plan.sweep.auto_priorities == ("high",)
    rng_free = np.random.default_rng(0)  # settings hold no rng state
    assert rng_free is not None


def test_failures_are_healed_once_through_the_queue(space, focal_config):
    plans = {"oom": ["halve_batch_size"], "data": []}
    rows = [
        {"id": "f1", "config": focal_config, "status": "failed", "error_class": "oom"},
        {"id": "f2", "config": focal_config | {"seq_len": 10}, "status": "failed",
         "error_class": "data"},
    ]  # fmt: skip
    history = History.from_rows(rows, space)
    plan = plan_round([], history, space, round_index=4, seed=0, settings=settings(),
                      healer=Healer(space, plans))  # fmt: skip
    by_parent = {row["parent_id"]: row for row in plan.rows}
    healed = by_parent["f1"]
    assert healed["fate"] == "kept" and healed["source"] == "heal"
    assert healed["config"]["batch_size"] == 32 and healed["priority"] == "high"
    assert by_parent["f2"]["fate"] == "unhealable"
    assert "no remediation applies to a data failure" in by_parent["f2"]["reason"]
    # Next round: both failures were answered in the proposals table.
    later = History.from_rows(rows, space, proposals=plan.rows)
    again = plan_round([], later, space, round_index=5, seed=0, settings=settings(),
                       healer=Healer(space, plans))  # fmt: skip
    assert again.rows == []
