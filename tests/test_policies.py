"""One contract suite for every search policy, then what each one promises.

The suite (Optuna-style: one behaviour suite, every sampler) runs against
random, tpe, rules and the LLM agent; the LLM agent talks through the
official Anthropic SDK to the scripted server in tests/llm_server.py.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from expsearch.agents.context import load_template
from expsearch.agents.history import History
from expsearch.agents.llm import LLMPolicy
from expsearch.agents.policy import RandomPolicy
from expsearch.agents.proposal import PRIORITIES, SOURCES
from expsearch.agents.providers import ProviderSettings, make_provider
from expsearch.agents.registry import build_agents
from expsearch.agents.rules import RulesPolicy
from expsearch.agents.tpe import TPEPolicy
from expsearch.settings import agent_settings
from expsearch.yamlio import dump_yaml

from .agent_histories import make_history
from .llm_server import LLMTestServer, Reply

OFFLINE = {
    "random": lambda space: RandomPolicy(space),
    "tpe": lambda space: TPEPolicy(space, n_startup_trials=5),
    "rules": lambda space: RulesPolicy(space),
}
POLICIES = [*OFFLINE, "llm"]


@pytest.fixture(scope="module")
def server():
    with LLMTestServer() as running:
        yield running


def llm_policy(space, server, history: History, n: int) -> LLMPolicy:
    """An LLM agent whose scripted answer holds n fresh ideas, plus a finished
    config when there is one (which the agent must reject as a duplicate)."""
    ideas = [config.to_dict() for config in space.sample(n, seed=len(history) + n)]
    if history.finished():
        ideas.insert(0, dict(history.finished()[0].config))
    ideas = [
        {"idea_name": f"idea {i}", "priority": "medium", **idea} for i, idea in enumerate(ideas)
    ]
    server.script(
        "anthropic", [Reply(text="Here are my ideas:\n```yaml\n" + dump_yaml(ideas) + "```")]
    )
    settings = ProviderSettings(
        provider="anthropic", model="claude-test", api_key_env="TEST_KEY", base_url=server.url,
        max_retries=0,
    )  # fmt: skip
    provider = make_provider(settings, {"TEST_KEY": "sk-test"})
    return LLMPolicy(space, "claude", provider, template=load_template(None))


def make_policy(name, space, server, history, n):
    return llm_policy(space, server, history, n) if name == "llm" else OFFLINE[name](space)


@pytest.fixture(scope="module")
def history(space):
    return make_history(space, n=40)


@pytest.mark.parametrize("name", POLICIES)
@pytest.mark.parametrize("n", [1, 3, 6])
def test_proposals_are_points_of_the_space_and_respect_n(name, n, space, server, history):
    policy = make_policy(name, space, server, history, n)
    proposals = policy.propose(history, n, np.random.default_rng(0))
    assert 1 <= len(proposals) <= n
    if name in OFFLINE:
        assert len(proposals) == n
    for proposal in proposals:
        assert space.validate(proposal.config.to_dict()) == proposal.config
        assert proposal.agent == policy.name
        assert proposal.source in SOURCES and proposal.priority in PRIORITIES


@pytest.mark.parametrize("name", POLICIES)
def test_never_repeats_a_taken_config_nor_itself(name, space, server, history):
    policy = make_policy(name, space, server, history, 6)
    proposals = policy.propose(history, 6, np.random.default_rng(1))
    prints = [proposal.config.fingerprint for proposal in proposals]
    assert len(set(prints)) == len(prints)
    assert not set(prints) & history.taken_fingerprints()
    if name == "llm":  # the scripted answer repeated a finished config
        assert [r.fate for r in policy.report.rejections] == ["duplicate"]


@pytest.mark.parametrize("name", POLICIES)
def test_an_empty_history_is_handled(name, space, server):
    empty = History()
    proposals = make_policy(name, space, server, empty, 4).propose(
        empty, 4, np.random.default_rng(2)
    )
    assert 1 <= len(proposals) <= 4


@pytest.mark.parametrize("name", list(OFFLINE))
def test_offline_policies_are_deterministic_given_the_rng(name, space, history):
    def run(seed):
        proposals = OFFLINE[name](space).propose(history, 5, np.random.default_rng(seed))
        return [proposal.config.fingerprint for proposal in proposals]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_n_below_one_is_refused(space, history):
    with pytest.raises(ValueError, match="n must be at least 1"):
        RandomPolicy(space).propose(history, 0, np.random.default_rng(0))


# ------------------------------------------------------------------ rules
def test_rules_meets_the_diversity_budget_and_exploits_the_leaders(space, history):
    leader = history.leaderboard(1)[0].config
    proposals = RulesPolicy(space).propose(history, 5, np.random.default_rng(0))
    assert any(p.config["backbone"] != leader["backbone"] for p in proposals)
    assert any(p.config["encoder"] != leader["encoder"] for p in proposals)
    top_ids = {exp.id for exp in history.leaderboard(5)}
    exploits = [p for p in proposals if p.rationale.startswith("exploit")]
    assert exploits and all(p.parent_id in top_ids for p in exploits)
    for p in exploits:  # one or two dimensions changed (plus conditional ones a loss change brings)
        parent = history.by_id(p.parent_id).config
        changed = {k for k in set(parent) | set(p.config) if parent.get(k) != p.config.get(k)}
        assert 1 <= len(changed - {"focal_gamma", "focal_alpha", "smoothing_epsilon"}) <= 2


def test_rules_never_proposes_a_banned_config(space, history):
    # Ban the leader's two closest mutations by failing them: the policy must
    # still not propose any failed config.
    failed = {exp.fingerprint for exp in history.failed()}
    for seed in range(5):
        proposals = RulesPolicy(space).propose(history, 6, np.random.default_rng(seed))
        assert not {p.config.fingerprint for p in proposals} & failed


def test_rules_explores_least_used_encoders_first_without_results(space):
    proposals = RulesPolicy(space).propose(History(), 5, np.random.default_rng(0))
    encoders = [p.config["encoder"] for p in proposals]
    assert sorted(encoders) == sorted(space.dimensions["encoder"].values)


# -------------------------------------------------------------------- tpe
def test_tpe_is_warm_started_from_the_history(space):
    # AP depends strongly on the backbone; after 80 results TPE should favour
    # the best backbone far above the uniform 1/6.
    history = make_history(space, n=80, failed_every=0)
    proposals = TPEPolicy(space, n_startup_trials=10).propose(history, 12, np.random.default_rng(0))
    counts = Counter(p.config["backbone"] for p in proposals)
    assert counts["vjepa2"] / 12 > 2 / 6, counts


def test_tpe_suggests_conditional_dimensions_only_where_they_apply(space, history):
    proposals = TPEPolicy(space).propose(history, 10, np.random.default_rng(0))
    for p in proposals:
        assert ("focal_gamma" in p.config) == (p.config["loss"] == "focal")
        assert ("smoothing_epsilon" in p.config) == (p.config["loss"] == "label_smoothing")


def test_tpe_warm_starts_from_the_latest_and_the_best(space):
    history = make_history(space, n=120, failed_every=7)
    policy = TPEPolicy(space, warm_start=20)
    warm = policy.warm_experiments(history)
    usable = [exp for exp in history.experiments if exp.finished or exp.status == "failed"]
    best = sorted(history.finished(), key=lambda exp: -exp.val_ap)[:20]
    assert {exp.id for exp in warm} == {exp.id for exp in usable[-20:] + best}
    assert [exp.id for exp in warm] == [exp.id for exp in usable if exp in warm]  # ledger order
    assert len(warm) < len(usable)
    assert TPEPolicy(space, warm_start=None).warm_experiments(history) == usable
    assert TPEPolicy(space, warm_start=200).warm_experiments(history) == usable
    with pytest.raises(ValueError, match="warm_start"):
        TPEPolicy(space, warm_start=0)


def test_a_bounded_tpe_warm_start_is_deterministic(space):
    history = make_history(space, n=120, failed_every=7)

    def configs(seed):
        policy = TPEPolicy(space, n_startup_trials=10, warm_start=20)
        return [p.config for p in policy.propose(history, 6, np.random.default_rng(seed))]

    assert configs(0) == configs(0)
    assert configs(0) != configs(1)


def test_params_set_the_tpe_warm_start(default_params, space):
    settings = agent_settings(default_params["agents"])
    (tpe,) = build_agents(["tpe"], settings, space, environ={})
    assert tpe.warm_start == default_params["agents"]["tpe"]["warm_start"]


NARROW = {"backbone": ["vjepa2"], "width": [64], "depth": [1], "epochs": [5], "seq_len": [10],
          "batch_size": [64], "loss": ["bce"]}  # fmt: skip


@pytest.mark.parametrize("name", list(OFFLINE))
def test_a_subspace_with_pinned_dimensions_is_searched(name, space):
    """Campaign limits may pin dimensions to one value: policies must still work."""
    narrow = space.restrict(NARROW)
    history = make_history(narrow, n=20)
    for rng_seed in range(3):
        proposals = OFFLINE[name](narrow).propose(history, 4, np.random.default_rng(rng_seed))
        assert len(proposals) == 4
        for proposal in proposals:
            assert narrow.validate(proposal.config.to_dict()) == proposal.config
            assert proposal.config["backbone"] == "vjepa2"
