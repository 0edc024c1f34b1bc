"""Scale-out: the populate flow on a Dask LocalCluster of two worker processes against MariaDB.

Two populate tasks share the table's keys through job reservation (`~jobs` leases), each in its
own Dask worker process: every key is made exactly once, both processes make some, and the
flow's merged report, task-run tags and completion event say so.
"""

from __future__ import annotations

import collections
import os
import time

import pytest

from dj_flows.flows.populate import dask_task_runner, with_task_runner
from dj_flows.prefect import DataJointDatabase
from tests.deploy import dask_pipeline
from tests.populate.pipeline import CALLS, read_calls
from tests.support.backends import mysql_settings

pytestmark = [pytest.mark.mysql, pytest.mark.timeout(300), pytest.mark.usefixtures("prefect_harness")]
KEYS = 40


@pytest.fixture
def calls_file(tmp_path, monkeypatch):
    """The calls file, named in the environment before the cluster's processes start."""
    path = tmp_path / "calls.log"
    monkeypatch.setenv(CALLS, str(path))
    return path


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_populate_on_dask_makes_every_key_once(backend, make_schema, calls_file):
    schema = make_schema("dask")
    tables = dask_pipeline.activate(schema.database)
    tables["Source"].insert([{"id": i} for i in range(KEYS)])
    settings = mysql_settings()
    database = DataJointDatabase(
        backend="mysql", host=settings["database.host"], port=settings["database.port"],
        user=settings["database.user"], password=settings["database.password"] or None,
        use_tls=False,
    )
    flow = with_task_runner(dask_task_runner(n_workers=2))
    state = flow(
        pipeline=dask_pipeline.__name__, schema_name=schema.database, workers=2,
        database=database, return_state=True,
    )
    (report,) = state.result()

    calls = read_calls(calls_file)
    made = collections.Counter(key for key, _, _ in calls)
    assert sorted(made) == list(range(KEYS))
    assert set(made.values()) == {1}, {k: n for k, n in made.items() if n > 1}
    processes = collections.Counter(pid for _, pid, _ in calls)
    assert len(processes) == 2 and os.getpid() not in processes, processes
    rows = tables["Square"].fetch(as_dict=True)
    assert len(rows) == KEYS and {r["worker"] for r in rows} == set(processes)
    assert len(schema.jobs) == 0

    assert report["class_name"] == "Square" and report["workers"] == 2
    assert report["made"] == KEYS and report["errors"] == [] and report["remaining"] == 0
    assert sorted(k["id"] for k in report["made_keys"]) == list(range(KEYS))

    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
        event = wait_for_event(client, "dj-flows.populate.completed", f"prefect.flow-run.{flow_run_id}")
    assert sorted(t.name for t in tasks) == ["populate-Square", "populate-Square"]
    assert all({f"schema:{schema.database}", "table:Square"} <= set(t.tags) for t in tasks)
    assert all(t.state.is_completed() for t in tasks)
    assert event["resource"]["prefect.resource.id"] == f"dj-flows.table.{schema.database}.Square"
    assert event["resource"]["dj-flows.changed"] == "true"
    assert event["payload"]["made"] == KEYS and event["payload"]["workers"] == 2


def wait_for_event(client, name: str, related: str, timeout: float = 30) -> dict:
    """The event called `name` related to `related` (the server stores events in batches)."""
    deadline = time.monotonic() + timeout
    body = {"filter": {"event": {"name": [name]}, "related": {"id": [related]}}}
    while True:
        events = client.request("POST", "/events/filter", json=body).json()["events"]
        if events:
            assert len(events) == 1, events
            return events[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no {name} event for {related} within {timeout} s")
        time.sleep(1)
