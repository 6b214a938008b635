"""`expsearch propose`: one round from a history file, printed as YAML with fates."""

from __future__ import annotations

import json

import pytest

from expsearch.cli import main
from expsearch.yamlio import dump_yaml, load_yaml

from .agent_histories import history_rows
from .conftest import ROOT


def run(capsys, command: str, *argv: str) -> tuple[int, str, str]:
    code = main([command, "--params", str(ROOT / "params.yaml"), *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def history_file(tmp_path, space):
    path = tmp_path / "experiments.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in history_rows(space, n=25)))
    return path


@pytest.mark.parametrize("policy", ["random", "tpe", "rules"])
def test_propose_prints_candidates_with_fates(capsys, space, history_file, policy):
    code, out, err = run(
        capsys, "propose", "--policy", policy, "--history", str(history_file), "--n", "3",
        "--seed", "1",
    )  # fmt: skip
    assert code == 0, err
    rows = [row for row in load_yaml(out) if row["agent"] != "healer"]
    kept = [row for row in rows if row["fate"] == "kept"]
    assert len(kept) >= 3 and all(row["agent"] == policy for row in rows)
    for row in kept:
        assert space.validate(row["config"]).fingerprint == row["fingerprint"]
    assert "kept of" in err
    again = run(capsys, "propose", "--policy", policy, "--history", str(history_file),
                "--n", "3", "--seed", "1")[1]  # fmt: skip
    assert again == out  # same history and seed: same proposals


def test_several_agents_and_an_llm_without_key_falls_back(capsys, history_file, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    code, out, err = run(
        capsys, "propose", "--policy", "rules", "--policy", "claude", "--history", str(history_file)
    )
    assert code == 0, err
    assert {row["agent"] for row in load_yaml(out)} == {"rules", "claude_rules", "healer"}
    assert "stands in for claude: ANTHROPIC_API_KEY is not set" in err


def test_bad_inputs_exit_2_with_the_reason(capsys, tmp_path, history_file):
    code, _, err = run(capsys, "propose", "--policy", "oracle", "--history", str(history_file))
    assert code == 2 and "unknown agent(s) ['oracle']" in err
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "a", "config": {}, "status": "ok"}\n{nope\n')
    code, _, err = run(capsys, "propose", "--policy", "rules", "--history", str(broken))
    assert code == 2 and "broken.jsonl:2: not JSON" in err


def test_out_file_and_empty_history(capsys, tmp_path):
    out = tmp_path / "round.yaml"
    code, printed, _ = run(capsys, "propose", "--policy", "rules", "--n", "2", "--out", str(out))
    assert code == 0 and printed == ""
    rows = load_yaml(out.read_text())
    assert len([row for row in rows if row["fate"] == "kept"]) == 2
    assert dump_yaml(rows)


def test_failures_in_the_history_are_healed_unless_told_not_to(capsys, history_file):
    code, out, _ = run(capsys, "propose", "--policy", "random", "--history", str(history_file))
    heals = [row for row in load_yaml(out) if row["agent"] == "healer"]
    assert code == 0 and heals  # the history's failures are out-of-memory errors
    assert all(row["source"] == "heal" and row["parent_id"] for row in heals)
    assert all(
        row["idea_name"] == "halve_batch_size" or row["fate"] == "unhealable" for row in heals
    )
    code, out, _ = run(
        capsys, "propose", "--policy", "random", "--history", str(history_file), "--no-heal"
    )
    assert not [row for row in load_yaml(out) if row["agent"] == "healer"]


def test_propose_with_claude_through_the_sdk(capsys, tmp_path, params, space, monkeypatch):
    from .llm_server import LLMTestServer, Reply

    ideas = [
        {"idea_name": "a", "priority": "medium", **c.to_dict()} for c in space.sample(2, seed=4)
    ]
    ideas.append({"idea_name": "broken", "learning_rate": 5.0})
    with LLMTestServer() as server:
        params["agents"]["llm"]["claude"]["base_url"] = server.url
        params_file = tmp_path / "params.yaml"
        params_file.write_text(dump_yaml(params))
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-cli-SECRET")
        server.script("anthropic", [Reply(text="```yaml\n" + dump_yaml(ideas) + "```")])
        code = main(["propose", "--params", str(params_file), "--policy", "claude", "--n", "3"])
    out, err = capsys.readouterr()
    rows = load_yaml(out)
    assert code == 0, err
    assert [row["fate"] for row in rows] == ["kept", "kept", "invalid"]
    assert "missing" in rows[2]["reason"] and "learning_rate" in rows[2]["reason"]
    assert "claude (llm);" in err and "tokens" in err
    assert "sk-cli-SECRET" not in out + err
