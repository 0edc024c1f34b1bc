"""The populate flow and its task: dependency order, concurrency, bounded retries, job errors.

Runs on both backends with the diamond test pipeline (tests/flows/diamond_pipeline.py).
"""

from __future__ import annotations

import json

import pytest

import dj_flows as dj
from dj_flows.errors import PopulateError
from dj_flows.flows import populate_flow
from dj_flows.pipelines import populate_plan
from dj_flows.pipelines.status import schema_status
from dj_flows.prefect.populating import populate_in_chunks
from dj_flows.prefect.runtime import artifact_key
from tests.flows import diamond_pipeline
from tests.flows.prefect_api import artifacts

PIPELINE = diamond_pipeline.__name__
pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(autouse=True)
def fresh_state():
    diamond_pipeline.BARRIER.reset()
    diamond_pipeline.CALLS.clear()


def test_plan_puts_parents_first_and_names_what_each_waits_for(make_schema):
    name = make_schema("plan").database
    plan = populate_plan(PIPELINE, name)
    order = [step["table"] for step in plan]
    assert set(order) == {"Left", "Right", "Both", "Flaky", "Broken"}
    after = {step["table"]: set(step["after"]) for step in plan}
    assert after["Both"] == {"Left", "Right"}
    assert after["Left"] == after["Right"] == after["Flaky"] == set()
    assert order.index("Both") > max(order.index("Left"), order.index("Right"))
    assert [s["table"] for s in populate_plan(PIPELINE, name, ["Both", "__left"])] == ["Left", "Both"]


def test_flow_runs_independent_tables_concurrently_and_children_after(make_schema):
    name = make_schema("flow").database
    reports = populate_flow(pipeline=PIPELINE, schema_name=name, allow_errors=True)
    by_table = {r["class_name"]: r for r in reports}
    # Left and Right met at the barrier: they ran at the same time
    assert by_table["Left"]["made"] == by_table["Right"]["made"] == 2
    assert by_table["Left"]["errors"] == by_table["Right"]["errors"] == []
    tables = diamond_pipeline.activate(name)
    left_done = max(tables["Left"].fetch("finished"))
    right_done = max(tables["Right"].fetch("finished"))
    assert min(tables["Both"].fetch("started")) >= max(left_done, right_done)
    assert by_table["Both"]["made"] == 2
    # a transient failure is retried (once here); a failing make is reported once, not retried
    assert by_table["Flaky"]["made"] == 2 and by_table["Flaky"]["retried"] == 2
    assert diamond_pipeline.CALLS["Flaky", 1] == diamond_pipeline.CALLS["Flaky", 2] == 2
    (error,) = by_table["Broken"]["errors"]
    assert error == {"key": {"source_id": 2}, "error": "ValueError: source 2 is corrupt",
                     "transient": False, "tries": 1}
    assert diamond_pipeline.CALLS["Broken", 2] == 1
    assert by_table["Broken"]["remaining"] == 1


def test_flow_fails_at_the_end_naming_the_failed_keys(make_schema):
    name = make_schema("fail").database
    with pytest.raises(PopulateError, match=r"Broken \{'source_id': 2\}: ValueError: source 2 is corrupt"):
        populate_flow(pipeline=PIPELINE, schema_name=name)
    assert len(diamond_pipeline.activate(name)["Both"]) == 2  # everything else still ran
    again = populate_flow(pipeline=PIPELINE, schema_name=name, tables=["Left", "Right", "Both"])
    assert [r["made"] for r in again] == [0, 0, 0]
    assert [r["existing"] for r in again] == [2, 2, 2]


def test_reserved_jobs_keep_the_error_and_later_runs_skip_it(make_schema):
    name = make_schema("jobs").database
    reports = populate_flow(
        pipeline=PIPELINE, schema_name=name, tables=["Broken", "Flaky"], reserve_jobs=True,
        allow_errors=True,
    )
    assert {r["class_name"]: r["made"] for r in reports} == {"Broken": 1, "Flaky": 2}
    status = {row["table"]: row for row in schema_status(name)}
    assert status["Broken"]["error"] == 1 and status["Broken"]["remaining"] == 1
    assert status["Flaky"]["error"] == 0 and status["Flaky"]["remaining"] == 0  # retry cleared it
    again = populate_flow(pipeline=PIPELINE, schema_name=name, tables=["Broken"], reserve_jobs=True)
    assert again[0]["made"] == 0 and again[0]["errors"] == []
    assert diamond_pipeline.CALLS["Broken", 2] == 1  # the failed make never ran again


def test_populate_in_chunks_reports_progress_per_chunk(make_schema):
    name = make_schema("chunks").database
    tables = diamond_pipeline.activate(name)
    tables["Source"].insert([(k,) for k in range(3, 8)])
    seen = []
    report = populate_in_chunks(tables["Broken"], chunk_size=2, on_progress=lambda d, t: seen.append((d, t)))
    assert seen == [(2, 7), (4, 7), (6, 7), (7, 7)]
    assert report.todo == 7 and len(report.made) == 6 and len(report.errors) == 1
    restricted = populate_in_chunks(tables["Flaky"], ["source_id > 5"], chunk_size=10, pause_seconds=0)
    assert (restricted.total, len(restricted.made)) == (2, 2)
    assert len(tables["Flaky"]) == 2
    with dj.config(safemode=False):
        assert populate_in_chunks(tables["Broken"], max_calls=0).todo == 0


def test_populate_task_publishes_progress_and_resultartifacts(make_schema):
    name = make_schema("art").database
    populate_flow(pipeline=PIPELINE, schema_name=name, tables=["Broken"], allow_errors=True)
    (progress,) = artifacts(artifact_key("populate", name, "Broken"))
    assert progress.type == "progress" and float(progress.data) == 100.0
    assert "Broken: made 1 of 2" in progress.description and "1 failed" in progress.description
    (table,) = artifacts(artifact_key("populate-result", name, "Broken"))
    assert table.type == "table"
    rows = {row["status"]: row for row in json.loads(table.data)}
    assert rows["made"]["key"] == "{'source_id': 1}"
    assert rows["error"]["message"] == "ValueError: source 2 is corrupt (tries: 1)"
