"""Figure 1 from the real rule graph: parsed from `snakemake --rulegraph`, the
round chain found as the one feedback edge, data flowing left to right, and
the same workflow drawn to the same bytes whatever order Snakemake lists it in."""

from __future__ import annotations

import random

import pytest

from expsearch.cli import main
from expsearch.paper.figures import save
from expsearch.paper.overview import (
    draw_overview,
    feedback_edges,
    layout,
    module_of,
    overview_files,
    parse_rulegraph,
    rulegraph,
    stage_of,
)

from .conftest import ROOT

ROUND_CHAIN = """digraph snakemake_dag {
    0[label = "all", color = "0.0 0.6 0.85", style="rounded"];
    1[label = "split", color = "0.1 0.6 0.85", style="rounded"];
    2[label = "propose", color = "0.2 0.6 0.85", style="rounded"];
    3[label = "shard", color = "0.3 0.6 0.85", style="rounded"];
    4[label = "collect", color = "0.4 0.6 0.85", style="rounded"];
    5[label = "dataset", color = "0.5 0.6 0.85", style="rounded"];
    1 -> 3
    2 -> 3
    2 -> 2
    3 -> 4
    2 -> 4
    4 -> 2
    4 -> 5
    5 -> 0
}"""


@pytest.fixture(scope="module")
def real_dot() -> str:
    return rulegraph(ROOT / "Snakefile")


def test_the_round_chain_is_the_one_feedback_edge_and_data_flows_right():
    graph = parse_rulegraph(ROUND_CHAIN)
    assert "all" not in graph.rules and ("propose", "propose") in graph.edges
    assert feedback_edges(graph) == {("collect", "propose")}
    x = {rule: pos[0] for rule, pos in layout(graph).items()}
    assert x["split"] < x["shard"] < x["collect"] < x["dataset"]
    assert x["propose"] < x["shard"]


def test_the_real_workflow_draws_every_rule_left_to_right(real_dot):
    graph = parse_rulegraph(real_dot)
    assert {"synthesize", "split", "extract_features", "propose", "shard", "collect",
            "dataset", "analysis_variance", "paper"} <= set(graph.rules)  # fmt: skip
    back = feedback_edges(graph)
    assert back == {("collect", "propose")}
    position = layout(graph)
    for a, b in graph.edges:
        if a != b and (a, b) not in back:
            assert position[a][0] < position[b][0], (a, b)
    assert len({pos for pos in position.values()}) == len(graph.rules)  # no two boxes overlap


def test_a_task_modules_rules_are_drawn_in_the_stage_of_the_rule_they_copy(real_dot):
    """params.yaml declares the fleet task: its module's rules are <task>_<rule>."""
    graph = parse_rulegraph(real_dot)
    copies = {rule: module_of(rule) for rule in graph.rules if module_of(rule)[0]}
    assert copies["fleet_split"] == ("fleet", "split")
    assert copies["fleet_analysis_variance"] == ("fleet", "analysis_variance")
    assert {task for task, _ in copies.values()} == {"fleet"}
    assert all(base in graph.rules for _, base in copies.values())  # a copy of a real rule
    assert module_of("space_summary") == (None, "space_summary")  # "other", not a copy
    assert stage_of("fleet_extract_features") == stage_of("extract_features") != stage_of("paper")
    assert ("fleet_analysis_variance", "paper") in graph.edges  # the cross-task table


def test_the_same_workflow_gives_the_same_bytes_in_any_listing_order(real_dot, tmp_path):
    lines = real_dot.splitlines()
    edges = [line for line in lines if "->" in line]
    nodes = [line for line in lines if "[label" in line]
    head = [line for line in lines if line not in edges and line not in nodes][:-1]
    random.Random(1).shuffle(edges)
    random.Random(2).shuffle(nodes)
    shuffled = "\n".join([*head, *nodes, *edges, "}"])
    paths = []
    for name, dot in (("a", real_dot), ("b", shuffled)):
        files = overview_files(tmp_path / name)
        save({"overview": draw_overview(parse_rulegraph(dot))}, files)
        paths.append(files)
    for key in ("overview_pdf", "overview_png"):
        assert paths[0][key].read_bytes() == paths[1][key].read_bytes()
    assert paths[0]["overview_pdf"].read_bytes().startswith(b"%PDF")


def test_text_that_is_not_a_rule_graph_is_refused_by_name(tmp_path, capsys):
    with pytest.raises(ValueError, match="no rules found"):
        parse_rulegraph("Building DAG of jobs...")
    with pytest.raises(ValueError, match="edge 1 -> 9"):
        parse_rulegraph('digraph {\n 1[label = "split"];\n 1 -> 9\n}')
    with pytest.raises(ValueError, match="only all"):
        parse_rulegraph('digraph {\n 0[label = "all"];\n}')
    assert main(["overview", "--rulegraph", str(tmp_path / "none.dot"), "--out", "x"]) == 2
    assert "none.dot: no such file" in capsys.readouterr().err
    dot = tmp_path / "graph.dot"
    dot.write_text(ROUND_CHAIN)
    assert main(["overview", "--rulegraph", str(dot), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out/figures/overview.png").stat().st_size > 0
    assert main(["overview", "--snakefile", str(tmp_path / "missing"), "--out", "x"]) == 2
    assert "snakemake --rulegraph failed" in capsys.readouterr().err
