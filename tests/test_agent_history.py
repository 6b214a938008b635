"""History: reading tables in every format, and the queries policies rely on."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from expsearch.agents.history import History, HistoryError, read_rows
from expsearch.yamlio import dump_yaml

from .agent_histories import history_rows, make_history


def test_leaderboard_failures_and_taken(space):
    rows = history_rows(space, n=30)
    rows.append({"id": "q1", "config": rows[0]["config"] | {"seq_len": 10}, "status": "queued"})
    history = History.from_rows(rows, space)
    board = history.leaderboard(5)
    aps = [exp.val_ap for exp in board]
    assert aps == sorted(aps, reverse=True) and len(board) == 5
    assert max(exp.val_ap for exp in history.finished()) == aps[0]
    assert all(exp.status == "failed" for exp in history.failures(10))
    taken = history.taken_fingerprints()
    assert history.by_id("q1").fingerprint in taken  # queued counts as taken
    assert not any(exp.fingerprint in taken for exp in history.failed())


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".yaml", ".parquet"])
def test_every_table_format_gives_the_same_history(space, tmp_path, suffix):
    rows = history_rows(space, n=12)
    path = tmp_path / f"experiments{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    elif suffix == ".json":
        path.write_text(json.dumps(rows))
    elif suffix == ".yaml":
        path.write_text(dump_yaml(rows))
    else:  # parquet holds the config as JSON text, like the dataset will
        pd.DataFrame([row | {"config": json.dumps(row["config"])} for row in rows]).to_parquet(path)
    loaded = History.load(path, space)
    expected = History.from_rows(rows, space)
    assert [e.fingerprint for e in loaded.experiments] == [
        e.fingerprint for e in expected.experiments
    ]
    assert [e.val_ap for e in loaded.experiments] == [e.val_ap for e in expected.experiments]


def test_config_outside_the_current_space_is_kept_but_not_used(space):
    rows = history_rows(space, n=3)
    rows[1]["config"] = rows[1]["config"] | {"encoder": "lstm"}
    history = History.from_rows(rows, space)
    assert history.experiments[1].config is None
    assert history.experiments[1].raw_config["encoder"] == "lstm"
    assert history.experiments[1] not in history.taken()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"config": {}, "status": "ok"}, "missing `id`"),
        ({"id": "a", "config": "{not json", "status": "ok"}, "not JSON"),
        ({"id": "a", "config": {}, "status": "done"}, "status 'done'"),
        ({"id": "a", "config": {}, "status": "ok", "val_ap": "high"}, "val_ap"),
    ],
)
def test_bad_rows_are_named(space, row, message):
    with pytest.raises(HistoryError, match=message):
        History.from_rows([row], space)


def test_repeated_ids_and_unknown_formats_are_errors(space, tmp_path):
    rows = history_rows(space, n=2)
    rows[1]["id"] = rows[0]["id"]
    with pytest.raises(HistoryError, match="repeat"):
        History.from_rows(rows, space)
    bad = tmp_path / "x.csv"
    bad.write_text("id\n")
    with pytest.raises(HistoryError, match="unknown table format"):
        read_rows(bad)
    broken = tmp_path / "x.jsonl"
    broken.write_text('{"id": 1}\n{oops\n')
    with pytest.raises(HistoryError, match=":2: not JSON"):
        read_rows(broken)


def test_last_round_rejections_come_from_the_latest_round(space):
    proposals = [
        {"id": "a", "round": 1, "fate": "invalid", "reason": "old"},
        {"id": "b", "round": 2, "fate": "kept"},
        {"id": "c", "round": 2, "fate": "duplicate", "reason": "duplicate of e001"},
    ]
    history = History.from_rows([], space, proposals=proposals)
    assert [row["id"] for row in history.last_round_rejections()] == ["c"]
    assert make_history(space, n=4).last_round_rejections() == []
