"""params.yaml: schema checks with messages that name the key path, and the
rule that every value carries a one-line comment."""

from __future__ import annotations

import re

import pytest

from expsearch.params import ParamsError, check_params, load_params
from expsearch.yamlio import dump_yaml

from .conftest import ROOT


def test_default_params_are_valid(default_params):
    assert set(default_params) == {
        "data",
        "features",
        "space",
        "training",
        "agents",
        "campaign",
        "analysis",
        "paper",
        "tasks",
    }


def _problems(params) -> dict[str, str]:
    with pytest.raises(ParamsError) as info:
        check_params(params)
    return dict(info.value.problems)


def test_unknown_top_level_key(params):
    params["campain"] = {}
    problems = _problems(params)
    assert "campain" in problems
    assert "unknown key" in problems["campain"] and "campaign" in problems["campain"]


def test_unknown_key_in_the_paper_section(params):
    params["paper"]["heatmap_min_run"] = 3
    params["paper"]["heatmap_min_runs"] = 0
    problems = _problems(params)
    assert "heatmap_min_runs" in problems["paper.heatmap_min_run"]
    assert "paper.heatmap_min_runs" in problems


def test_analysis_keys_are_checked(params):
    params["analysis"]["variance"]["min_groupsize"] = 3
    params["analysis"]["convergence"]["bootstrap"] = 0
    problems = _problems(params)
    assert "unknown key" in problems["analysis.variance.min_groupsize"]
    assert "min_group_size" in problems["analysis.variance.min_groupsize"]
    assert "analysis.convergence.bootstrap" in problems


def test_analysis_names_campaigns_that_exist(params):
    params["analysis"]["baselines"]["generative_campaign"] = "randm"
    params["analysis"]["baselines"]["pool_campaigns"] = ["agents", "agnets"]
    problems = _problems(params)
    assert "'randm' is not a campaign" in problems["analysis.baselines.generative_campaign"]
    assert "'agnets' is not a campaign" in problems["analysis.baselines.pool_campaigns"]


def test_missing_section(params):
    del params["analysis"]
    assert _problems(params) == {"analysis": "missing required key"}


def test_wrong_type_names_the_key_path(params):
    params["space"]["dimensions"]["learning_rate"]["low"] = "tiny"
    problems = _problems(params)
    assert "space.dimensions.learning_rate.low" in problems
    assert "expected number" in problems["space.dimensions.learning_rate.low"]


def test_wrong_value_lists_what_is_allowed(params):
    params["space"]["dimensions"]["epochs"]["group"] = "schedule"
    problems = _problems(params)
    assert "'schedule' is not allowed" in problems["space.dimensions.epochs.group"]
    assert "arch" in problems["space.dimensions.epochs.group"]


def test_unknown_field_of_a_dimension(params):
    params["space"]["dimensions"]["epochs"]["default"] = 10
    problems = _problems(params)
    assert "unknown key" in problems["space.dimensions.epochs.default"]
    assert "values" in problems["space.dimensions.epochs.default"]


def test_bad_dimension_name(params):
    params["space"]["dimensions"]["Bad-Name"] = {
        "group": "arch",
        "type": "float",
        "low": 0,
        "high": 1,
    }
    assert "space.dimensions.Bad-Name" in _problems(params)


def test_every_problem_is_reported(params):
    params["extra"] = 1
    params["space"]["dimensions"]["seq_len"]["values"] = "20"
    problems = _problems(params)
    assert {"extra", "space.dimensions.seq_len.values"} <= set(problems)


def test_cross_field_rule_from_the_space(params):
    params["space"]["dimensions"]["mixup_alpha"]["high"] = -1.0
    problems = _problems(params)
    assert "greater than low" in problems["space.dimensions.mixup_alpha.high"]


def test_split_fractions_must_sum_to_one(params):
    params["data"]["split"]["val"] = 0.2
    assert "must be 1, got 1.1" in _problems(params)["data.split"]


def test_every_backbone_of_the_space_needs_a_store(params):
    params["features"]["backbones"] = ["vjepa2", "dinov2_b"]
    problem = _problems(params)["space.dimensions.backbone.values"]
    assert "has no feature store" in problem


def test_a_fusion_is_a_backbone_value(params):
    params["features"]["fusions"] = {"vjepa2_dinov2": ["vjepa2", "dinov2_b"]}
    params["space"]["dimensions"]["backbone"]["values"].append("vjepa2_dinov2")
    check_params(params)
    params["features"]["fusions"] = {"vjepa2_eva": ["vjepa2", "eva02"]}
    params["space"]["dimensions"]["backbone"]["values"][-1] = "vjepa2_eva"
    assert "['eva02'] not in features.backbones" in _problems(params)["features.fusions.vjepa2_eva"]


def test_the_window_must_serve_every_seq_len(params):
    params["data"]["window_s"] = 4.0  # 20 steps at 5 fps, but seq_len reaches 30
    assert "seq_len goes up to 30" in _problems(params)["data.window_s"]


def test_not_a_mapping():
    assert "expected object" in _problems(None)["<top level>"]


def test_load_params_names_the_file(tmp_path, params):
    bad = tmp_path / "params.yaml"
    params["data"]["source"] = "kaggle"
    bad.write_text(dump_yaml(params))
    with pytest.raises(ParamsError) as info:
        load_params(bad)
    assert str(bad) in str(info.value) and "data.source: 'kaggle' is not allowed" in str(info.value)


def test_malformed_yaml_is_reported_with_its_line(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("data: {}\nspace: [unclosed\n")
    with pytest.raises(ParamsError, match=r"params.yaml:3:1: malformed YAML"):
        load_params(bad)


def test_missing_file(tmp_path):
    with pytest.raises(ParamsError, match="no such file"):
        load_params(tmp_path / "nope.yaml")


def test_every_value_in_params_yaml_has_a_comment():
    """Each line that sets a key carries a trailing `# ...` comment, or the
    line above it is a comment (for multi-line values)."""
    lines = (ROOT / "params.yaml").read_text().splitlines()
    key_line = re.compile(r"^\s*[A-Za-z_][\w-]*\s*:")
    missing = [
        f"line {i + 1}: {line.strip()}"
        for i, line in enumerate(lines)
        if key_line.match(line)
        and "#" not in line
        and not (i > 0 and lines[i - 1].strip().startswith("#"))
        and not line.rstrip().endswith(":")  # a section header: its children carry comments
    ]
    assert not missing, "params.yaml values without a comment:\n" + "\n".join(missing)


def test_healing_diagnoses_with_a_defined_llm_agent(params):
    params["agents"]["healing"]["diagnose_with"] = "gpt"
    problems = _problems(params)
    assert "'gpt' is not an LLM agent" in problems["agents.healing.diagnose_with"]


def test_an_llm_agent_names_its_key_variable_never_the_key(params):
    params["agents"]["llm"]["claude"]["api_key"] = "sk-ant-123"
    problems = _problems(params)
    assert "unknown key" in problems["agents.llm.claude.api_key"]
    params["agents"]["llm"]["claude"].pop("api_key")
    params["agents"]["llm"]["rules"] = params["agents"]["llm"]["claude"]
    assert "built-in agents" in _problems(params)["agents.llm.rules"]


def test_unknown_remediation_in_a_healing_plan(params):
    params["agents"]["healing"]["plans"]["oom"] = ["patch_code"]
    assert "agents.healing.plans.oom[0]" in _problems(params)


def test_campaign_agents_and_limits_are_checked(params):
    campaign = params["campaign"]["campaigns"]["agents"]
    campaign["agents"] = ["rules", "oracle"]
    campaign["limits"] = {"width": [64, 96]}
    problems = _problems(params)
    assert "['oracle']" in problems["campaign.campaigns.agents.agents"]
    assert "[96]" in problems["campaign.campaigns.agents.limits.width"]


def test_the_synthetic_source_keeps_the_generators_file_names(params):
    params["data"]["labels"] = "labels.csv"
    problems = _problems(params)
    assert "the synthetic generator writes 'train.csv'" in problems["data.labels"]
    params["data"]["source"] = "folder"  # your own files may be called anything
    check_params(params)


def test_agent_names_are_checked_in_one_place_for_params_and_the_registry(params, space):
    """The same rule stops a bad campaign in params.yaml and a bad team at build time."""
    from expsearch.agents.registry import AgentConfigError, build_agents
    from expsearch.settings import agent_settings

    settings = agent_settings(params["agents"])
    with pytest.raises(AgentConfigError, match="agents repeat"):
        build_agents(["rules", "rules"], settings, space)
    with pytest.raises(AgentConfigError) as built:
        build_agents(["rules", "oracle"], settings, space)
    params["campaign"]["campaigns"]["agents"]["agents"] = ["rules", "oracle"]
    said = _problems(params)["campaign.campaigns.agents.agents"]
    assert said.startswith("unknown agent(s) ['oracle']") and said in str(built.value)
