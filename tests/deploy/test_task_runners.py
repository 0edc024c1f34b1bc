"""The populate flow's task runner from a worker's environment (flows/populate_dask.py)."""

from __future__ import annotations

import pytest
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from dj_flows.errors import ConfigError
from dj_flows.flows.populate import (
    MAX_WORKERS,
    populate_flow,
    task_runner_from_environment,
    with_task_runner,
)


def test_threads_by_default():
    runner = task_runner_from_environment({})
    assert isinstance(runner, ThreadPoolTaskRunner) and runner._max_workers == MAX_WORKERS
    assert isinstance(populate_flow.task_runner, ThreadPoolTaskRunner)


def test_dask_scheduler_address_or_local_processes():
    remote = task_runner_from_environment(
        {"DJ_FLOWS_TASK_RUNNER": "Dask", "DJ_FLOWS_DASK_ADDRESS": "tcp://scheduler:8786"})
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://scheduler:8786"
    local = task_runner_from_environment({"DJ_FLOWS_TASK_RUNNER": "dask",
                                          "DJ_FLOWS_DASK_ADDRESS": "", "DJ_FLOWS_DASK_WORKERS": "3"})
    assert local.address is None
    assert local.cluster_kwargs == {"n_workers": 3, "threads_per_worker": 1, "processes": True}
    flow = with_task_runner(local)
    assert flow.task_runner is local and flow.name == populate_flow.name


@pytest.mark.parametrize("environment, message", [
    ({"DJ_FLOWS_TASK_RUNNER": "ray"}, "must be 'threads' or 'dask', got 'ray'"),
    ({"DJ_FLOWS_TASK_RUNNER": "dask", "DJ_FLOWS_DASK_WORKERS": "two"}, "whole number"),
])
def test_bad_settings_are_named(environment, message):
    with pytest.raises(ConfigError, match=message):
        task_runner_from_environment(environment)


def test_the_entry_point_runs_on_dask(monkeypatch):
    import importlib
    import sys

    monkeypatch.delenv("DJ_FLOWS_TASK_RUNNER", raising=False)
    monkeypatch.setenv("DJ_FLOWS_DASK_ADDRESS", "tcp://127.0.0.1:8786")
    sys.modules.pop("flows.populate_dask", None)
    module = importlib.import_module("flows.populate_dask")
    assert isinstance(module.populate_dask_flow.task_runner, DaskTaskRunner)
    assert module.populate_dask_flow.task_runner.address == "tcp://127.0.0.1:8786"
    sys.modules.pop("flows.populate_dask", None)
