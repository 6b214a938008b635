"""Reading ideas out of LLM answers: tolerant of wrapping, strict per idea."""

from __future__ import annotations

import pytest

from expsearch.agents.extract import ExtractionError, ideas_from_answer, parse_idea
from expsearch.agents.history import History
from expsearch.yamlio import dump_yaml

from .agent_histories import make_history
from .hostile_answers import billion_laughs


def idea(config, **meta):
    return {"idea_name": "x", "priority": "high", "rationale": "because", **meta, **config}


@pytest.mark.parametrize(
    "wrap",
    [
        lambda y: y,
        lambda y: f"```yaml\n{y}```",
        lambda y: f"Sure! Here are the ideas.\n\n```\n{y}```\nGood luck.",
        lambda y: f"My reasoning: the leader overfits.\n\n{y}",
        lambda y: "ideas:\n" + "".join(f"  {line}\n" for line in y.splitlines()),
    ],
    ids=["bare", "fenced", "fence-without-language", "prose-before", "ideas-key"],
)
def test_ideas_are_found_however_they_are_wrapped(wrap, focal_config):
    text = wrap(dump_yaml([idea(focal_config), idea(focal_config, idea_name="y")]))
    ideas = ideas_from_answer(text)
    assert [i["idea_name"] for i in ideas] == ["x", "y"]
    assert ideas[0]["learning_rate"] == pytest.approx(2e-4)


def test_exponent_floats_written_by_llms_are_numbers(focal_config):
    text = dump_yaml([idea(focal_config)]).replace("0.0002", "2e-4")
    assert ideas_from_answer(text)[0]["learning_rate"] == pytest.approx(2e-4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("I cannot help with that.", "no YAML list of ideas"),
        ("```yaml\n- a: [1, 2\n```", "no YAML list of ideas"),
    ],
)
def test_answers_without_ideas_are_errors_that_say_why(text, message):
    with pytest.raises(ExtractionError, match=message):
        ideas_from_answer(text)


def test_each_idea_is_judged_on_its_own(space, focal_config):
    history = History()
    good = parse_idea(idea(focal_config), space, history, sweep_limit=8)
    assert good.rejection is None and len(good.variants) == 1
    assert good.priority == "high" and good.rationale == "because"
    out = parse_idea(idea(focal_config | {"learning_rate": 0.5}), space, history, 8)
    assert "learning_rate" in out.rejection and "outside the space" in out.rejection
    unknown = parse_idea(idea(focal_config | {"lr": 1e-3}), space, history, 8)
    assert "lr: unknown key" in unknown.rejection
    assert "an idea must be a mapping" in parse_idea("text", space, history, 8).rejection
    bad_priority = parse_idea(idea(focal_config, priority="urgent"), space, history, 8)
    assert "priority" in bad_priority.rejection


def test_list_values_are_sweep_axes_within_the_limit(space, focal_config):
    swept = idea(focal_config | {"learning_rate": [1e-4, 3e-4], "seq_len": [10, 20, 30]})
    parsed = parse_idea(swept, space, History(), sweep_limit=6)
    assert len(parsed.variants) == 6
    assert len({config.fingerprint for config, _ in parsed.variants}) == 6
    assert parsed.variants[0][1] == "learning_rate=0.0001, seq_len=10"
    over = parse_idea(swept, space, History(), sweep_limit=5)
    assert (
        over.rejection.startswith("sweep:") and "6 variants, over the limit of 5" in over.rejection
    )
    assert over.variants == []
    empty = parse_idea(idea(focal_config | {"seq_len": []}), space, History(), 5)
    assert "empty list" in empty.rejection


def test_a_sweep_with_one_bad_value_is_rejected_whole(space, focal_config):
    parsed = parse_idea(idea(focal_config | {"seq_len": [10, 11]}), space, History(), 8)
    assert "seq_len" in parsed.rejection and parsed.variants == []


def test_parent_fills_the_keys_an_idea_leaves_out(space):
    history = make_history(space, n=10)
    parent = history.finished()[0]
    parsed = parse_idea(
        {"parent": parent.id, "learning_rate": 1e-3, "loss": "bce"}, space, history, 8
    )
    assert parsed.rejection is None
    config = parsed.variants[0][0]
    assert config["learning_rate"] == 1e-3 and config["loss"] == "bce"
    assert config["encoder"] == parent.config["encoder"]
    assert "focal_gamma" not in config  # inherited conditional keys follow the new loss
    missing = parse_idea({"parent": "nope", "loss": "bce"}, space, history, 8)
    assert "no experiment 'nope'" in missing.rejection


@pytest.mark.parametrize("as_sweep", [False, True], ids=["nested-aliases", "alias-as-sweep"])
def test_aliases_are_refused_before_anything_expands(as_sweep):
    import time
    import tracemalloc

    text = billion_laughs(as_sweep)
    assert len(text) < 1000
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ExtractionError) as refused:
            ideas_from_answer(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start <= 2.0 and peak <= 200 * 2**20
    message = str(refused.value)
    assert message.startswith("answer refused:") and "aliases (*name) are not accepted" in message
    assert len(message) < 300


def test_oversized_answers_are_refused_with_a_short_reason(focal_config):
    from expsearch.agents.untrusted import MAX_ANSWER_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES

    padding = "# " + "x" * MAX_ANSWER_BYTES + "\n"
    with pytest.raises(ExtractionError, match=r"answer refused: \d+ bytes, over the limit"):
        ideas_from_answer(dump_yaml([idea(focal_config)]) + padding)
    many = "- [" + ", ".join(["1"] * (MAX_YAML_NODES + 1)) + "]\n"
    with pytest.raises(ExtractionError, match=f"refused: .*more than {MAX_YAML_NODES} values"):
        ideas_from_answer(many)
    deep = "- " + "[" * 5000 + "]" * 5000 + "\n"  # past Python's recursion limit if unbounded
    with pytest.raises(ExtractionError, match=f"nested deeper than {MAX_YAML_DEPTH} levels"):
        ideas_from_answer(deep)
    assert ideas_from_answer(dump_yaml([idea(focal_config)]))  # an honest answer still reads


def test_long_names_and_rationales_are_clipped_and_marked(space, focal_config):
    from expsearch.agents.untrusted import NAME_CHARS, RATIONALE_CHARS

    raw = idea(focal_config, idea_name="n" * 10_000, rationale="r" * 50_000)
    parsed = parse_idea(raw, space, History(), 8)
    assert parsed.rejection is None
    assert parsed.idea_name.startswith("n" * NAME_CHARS)
    assert parsed.idea_name.endswith("[cut: 9880 more characters]")
    assert len(parsed.rationale) < RATIONALE_CHARS + 40 and "[cut:" in parsed.rationale
