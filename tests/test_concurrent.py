"""Configs trained side by side in one shard (campaign.streams) train exactly as alone."""

from __future__ import annotations

import dataclasses
import threading

import pytest
import torch

from expsearch.campaign.steps import collect_round, run_shard
from expsearch.settings import campaign_settings
from expsearch.training.concurrent import run_concurrently

from .test_campaign import campaign_params, layout, propose  # noqa: F401 (fixtures)


def test_run_concurrently_runs_streams_items_at_once_and_keeps_their_order():
    # Two items wait for each other at a barrier: run one at a time, the first would
    # time out; side by side, both pass it.
    barrier = threading.Barrier(2, timeout=30)
    running, most = [0], [0]
    lock = threading.Lock()

    def run(item):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        if item < 2:
            barrier.wait()
        with lock:
            running[0] -= 1
        return item * 10

    assert run_concurrently(list(range(6)), run, streams=2, device=torch.device("cpu")) == [
        0, 10, 20, 30, 40, 50,
    ]  # fmt: skip
    assert most[0] == 2


def test_one_stream_runs_in_the_calling_thread_and_zero_is_refused():
    caller = threading.get_ident()
    threads = run_concurrently([1, 2], lambda _: threading.get_ident(), streams=1, device=None)
    assert threads == [caller, caller]
    with pytest.raises(ValueError, match="streams must be at least 1"):
        run_concurrently([1], lambda x: x, streams=0, device=torch.device("cpu"))


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as a shard job runs (cpus: 1): every op's reduction order fixed
    yield
    torch.set_num_threads(before)


def test_configs_trained_side_by_side_get_exactly_the_metrics_they_get_alone(
    campaign_params,  # noqa: F811 (the fixture imported above)
    layout,  # noqa: F811
    task_files,
    tmp_path,
    one_thread,
):
    campaign_params["campaign"]["campaigns"]["tiny"].update(
        agents=["random"], shards=1, budget_per_round=3, ideas_per_agent=3
    )
    settings = campaign_settings(campaign_params, "tiny")
    plan = propose(settings, layout, 0)
    ids = plan["shards"][0]
    assert len(ids) == 3
    summaries = {}
    for streams in (1, 3):
        summaries[streams] = run_shard(
            dataclasses.replace(settings, streams=streams),
            plan=layout.plan("tiny", 0),
            shard=0,
            stores=sorted(str(p) for p in task_files["features"].glob("*/index.json")),
            manifest=task_files["manifest"],
            clips=task_files["clips"],
            runs=tmp_path / f"runs_{streams}",
            out=tmp_path / f"shard_{streams}.json",
            log=lambda line: None,
        )
    alone, together = ([r["metrics"] for r in summaries[s]["results"]] for s in (1, 3))
    assert [m["fingerprint"] for m in alone] == [m["fingerprint"] for m in together]
    for a, b in zip(alone, together, strict=True):
        assert a["status"] == b["status"] == "ok"
        # Exactly equal, not close: same seeds, same generators, one intra-op thread.
        for key in ("val_ap", "test_ap", "val_auc", "test_auc", "best_epoch", "optimizer_steps"):
            assert a[key] == b[key], key
        assert a["history"] == b["history"]
    assert summaries[3]["streams"] == 3

    # Collect splits the shard's device time among configs whose wall times overlapped.
    rows = collect_round(
        dataclasses.replace(settings, streams=3),
        plan=layout.plan("tiny", 0),
        shards=[tmp_path / "shard_3.json"],
        out=tmp_path / "experiments.jsonl",
    )
    assert sum(row["device_seconds"] for row in rows) <= summaries[3]["seconds"] + 0.01
    wall = {result["id"]: result["seconds"] for result in summaries[3]["results"]}
    for row in rows:
        assert 0 < row["device_seconds"] <= wall[row["id"]]


def test_run_experiments_with_streams_keeps_job_order_and_each_result(
    quick_config, space, task_files, tmp_path, one_thread
):
    from expsearch.features.store import stores_under
    from expsearch.training.experiment import TaskCache, run_experiments
    from expsearch.training.settings import TrainSettings

    configs = [quick_config, {**quick_config, "encoder": "xlstm", "learning_rate": 1e-3}]
    tasks = TaskCache(
        stores_under(task_files["features"]), task_files["manifest"], task_files["clips"]
    )
    results = {}
    for streams in (1, 2):
        jobs = [(c, tmp_path / f"s{streams}" / str(k)) for k, c in enumerate(configs)]
        results[streams] = run_experiments(
            jobs, space, tasks, TrainSettings(device="cpu"), progress=False, streams=streams
        )
    assert [m["config"]["encoder"] for m in results[2]] == ["retnet", "xlstm"]
    for alone, together in zip(results[1], results[2], strict=True):
        assert alone["status"] == together["status"] == "ok"
        assert alone["history"] == together["history"]
        assert (alone["val_ap"], alone["test_ap"]) == (together["val_ap"], together["test_ap"])
