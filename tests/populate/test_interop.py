"""One job queue for DataJoint 0.14.10 and dj-flows workers (MySQL/MariaDB only: DataJoint does
not run on SQLite). Layout, rows written by one and read by the other, reservations each respects,
and both kinds of workers populating one table at the same time."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dj_flows.jobs import key_hash
from tests.populate import dj_worker
from tests.populate.pipeline import read_calls
from tests.populate.test_workers import assert_each_made_once, release_together
from tests.populate.worker_control import ROOT, connection_settings, finish, start_worker

pytestmark = [
    pytest.mark.parametrize("backend", ["mysql"], indirect=True),
    pytest.mark.mysql,
    pytest.mark.interop,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # DataJoint's use of pyparsing
]


@pytest.fixture
def datajoint_pipeline(pipeline):
    """The same tables, seen through DataJoint 0.14.10."""
    dj_worker.connect(connection_settings())
    return dj_worker.declare(pipeline.schema.database)


def create_statement(connection, database: str) -> str:
    text = connection.query(f"SHOW CREATE TABLE `{database}`.`~jobs`").fetchone()[1]
    return text.replace(database, "<db>")


def test_jobs_table_layout_is_datajoints(pipeline, make_schema):
    import datajoint

    ours = pipeline.schema.jobs
    dj_worker.connect(connection_settings())
    other = make_schema("theirs")
    theirs = datajoint.Schema(other.database).jobs  # declared by DataJoint
    assert theirs.is_declared
    assert create_statement(ours.connection, ours.database) == create_statement(ours.connection, other.database)


def test_datajoint_reads_and_respects_our_jobs(pipeline, datajoint_pipeline):
    pipeline.Source.insert([{"id": 1}, {"id": 2, "action": "fail"}])
    pipeline.Square.populate(reserve_jobs=True, suppress_errors=True)
    name = pipeline.Square.table_name
    held = pipeline.schema.jobs.acquire(name, {"id": 7}, lease=60)
    rows = {row["key_hash"]: row for row in datajoint_pipeline.schema.jobs.fetch(as_dict=True)}
    error = rows[key_hash({"id": 2})]
    assert error["status"] == "error" and error["key"] == {"id": 2}
    assert error["error_message"] == "ValueError: cannot square 2"
    assert "Traceback" in error["error_stack"]
    assert rows[held.key_hash]["status"] == "reserved" and rows[held.key_hash]["key"] == {"id": 7}
    jobs = datajoint_pipeline.schema.jobs
    assert not jobs.reserve(name, {"id": 7})  # our reservation holds against DataJoint
    assert not jobs.reserve(name, {"id": 2})
    assert datajoint_pipeline.Square.populate(reserve_jobs=True)["success_count"] == 0  # the error blocks it


def test_we_read_and_respect_datajoint_jobs(pipeline, datajoint_pipeline, calls_file):
    pipeline.Source.insert([{"id": i} for i in range(5)])
    jobs = datajoint_pipeline.schema.jobs
    name = pipeline.Square.table_name
    assert jobs.reserve(name, {"id": 1})
    assert jobs.ignore(name, {"id": 2})
    jobs.error(name, {"id": 3}, error_message="RuntimeError: theirs", error_stack="their stack")
    ours = pipeline.schema.jobs
    rows = {row["key_hash"]: row for row in ours.fetch(as_dict=True)}
    assert rows[key_hash({"id": 3})]["error_stack"] == "their stack"
    assert rows[key_hash({"id": 3})]["key"] == {"id": 3}
    assert rows[key_hash({"id": 1})]["connection_id"] > 0
    assert ours.status(name) == {name: {"reserved": 1, "expired": 0, "error": 1, "ignore": 1}}
    assert pipeline.Square.populate(reserve_jobs=True)["success_count"] == 2
    assert sorted(c[0] for c in read_calls(calls_file)) == [0, 4]
    # DataJoint completes the reservation it holds; our worker then makes the key
    jobs.complete(name, {"id": 1})
    assert pipeline.Square.populate(reserve_jobs=True)["success_count"] == 1


def test_a_datajoint_worker_populates_after_ours(pipeline, datajoint_pipeline, calls_file):
    pipeline.Source.insert([{"id": i} for i in range(6)])
    assert pipeline.Square.populate("id < 3", reserve_jobs=True)["success_count"] == 3
    assert datajoint_pipeline.Square.populate(reserve_jobs=True)["success_count"] == 3
    calls = read_calls(calls_file)
    assert [(c[0], c[2]) for c in calls] == [(0, "ok"), (1, "ok"), (2, "ok"), (3, "datajoint"), (4, "datajoint"), (5, "datajoint")]
    assert len(pipeline.schema.jobs) == 0


def test_datajoint_and_dj_flows_workers_share_one_queue(pipeline, datajoint_pipeline, calls_file, tmp_path):
    pipeline.Source.insert([{"id": i, "delay": 0.02} for i in range(60)])
    settings = {"config": connection_settings(), "schema": pipeline.schema.database, "barrier": str(tmp_path)}
    theirs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.populate.dj_worker",
             json.dumps({**settings, "populate": {"reserve_jobs": True, "order": order}})],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for order in ("original", "random")
    ]
    ours = [
        start_worker(pipeline.schema, {"reserve_jobs": True, "order": order}, tmp_path)
        for order in ("reverse", "random")
    ]
    release_together(theirs + ours, tmp_path)
    results = [finish(worker) for worker in theirs + ours]
    assert sum(r["success_count"] for r in results) == 60
    assert_each_made_once(calls_file, range(60))
    labels = {c[2] for c in read_calls(calls_file)}
    assert labels == {"ok", "datajoint"}  # both kinds of workers made keys
    assert len(pipeline.Square()) == 60 and len(pipeline.Square.Note()) == 60
    assert len(pipeline.schema.jobs) == 0
