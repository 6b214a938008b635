"""Further tasks (params.yaml `tasks`): each one's params, merged and checked."""

from __future__ import annotations

import copy

import pytest

from expsearch.campaign.layout import CampaignLayout
from expsearch.params import ParamsError
from expsearch.tasks import primary_task, task_params


@pytest.fixture
def with_task(default_params) -> dict:
    params = copy.deepcopy(default_params)
    params["tasks"] = {
        "fleet": {
            "campaigns": ["random"],
            "data": {"synthetic": {"variant": "fleet", "seed": 1, "n": 300}},
        }
    }
    return params


def test_the_default_declares_the_fleet_camera_with_a_random_campaign(default_params):
    tasks = task_params(default_params)
    assert list(tasks) == ["fleet"]
    assert tasks["fleet"]["data"]["synthetic"]["variant"] == "fleet"
    assert list(tasks["fleet"]["campaign"]["campaigns"]) == ["random"]


def test_a_task_merges_its_overrides_and_keeps_the_rest(with_task, default_params):
    fleet = task_params(with_task)["fleet"]
    synthetic = fleet["data"]["synthetic"]
    assert (synthetic["variant"], synthetic["seed"], synthetic["n"]) == ("fleet", 1, 300)
    # What the task does not override is the primary task's.
    assert synthetic["noise"] == default_params["data"]["synthetic"]["noise"]
    assert fleet["data"]["split"] == default_params["data"]["split"]
    assert fleet["features"] == default_params["features"]
    assert (
        fleet["space"] == default_params["space"]
        and fleet["training"] == default_params["training"]
    )
    assert fleet["campaign"]["campaigns"] == {
        "random": default_params["campaign"]["campaigns"]["random"]
    }
    assert "tasks" not in fleet  # a task's module declares no tasks of its own
    assert with_task["data"]["synthetic"]["variant"] == "default"  # the input is left alone


def test_baselines_drop_the_campaigns_a_task_does_not_run(with_task):
    with_task["tasks"]["fleet"]["campaigns"] = ["agents"]
    with_task["analysis"]["baselines"]["pool_campaigns"] = ["agents", "random"]
    baselines = task_params(with_task)["fleet"]["analysis"]["baselines"]
    assert baselines["generative_campaign"] is None  # random is not run on the task
    assert baselines["pool_campaigns"] == ["agents"]


def test_no_tasks_declared_gives_none(default_params):
    params = {key: value for key, value in default_params.items() if key != "tasks"}
    assert task_params(params) == {}


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda t: t.update(campaigns=["bogus"]), "['bogus'] not in campaign.campaigns"),
        (lambda t: t["data"]["synthetic"].update(variant="night"), "data.synthetic.variant"),
        (lambda t: t["data"].update(fps="five"), "data.fps"),
        (lambda t: t.update(features={"batch_size": 0}), "features.batch_size"),
    ],
)
def test_a_bad_task_names_the_task_and_the_key(with_task, edit, named):
    edit(with_task["tasks"]["fleet"])
    with pytest.raises(ParamsError) as error:
        task_params(with_task)
    assert "tasks.fleet" in str(error.value) and named in str(error.value)


def test_a_task_cannot_take_the_primary_tasks_name(with_task):
    with_task["tasks"]["default"] = with_task["tasks"].pop("fleet")
    with pytest.raises(ParamsError, match="primary task's own name"):
        task_params(with_task)


def test_the_primary_task_is_named_by_its_camera_or_source(default_params):
    assert primary_task(default_params) == "default"
    nexar = copy.deepcopy(default_params)
    nexar["data"]["source"] = "nexar"
    assert primary_task(nexar) == "nexar"


def test_runs_are_found_beside_a_moved_shard_file():
    """A task module moves outputs (results/ -> results/tasks/<name>/), not params:
    the shard's scratch is found beside its output, where layout.runs puts it."""
    layout = CampaignLayout("results/campaigns")
    assert layout.runs_beside(layout.shard("random", 2, 1)) == layout.runs("random", 2)
    moved = layout.shard("random", 2, 1).replace("results/", "results/tasks/fleet/", 1)
    assert layout.runs_beside(moved) == "results/tasks/fleet/campaigns/random/round_0002/runs"
