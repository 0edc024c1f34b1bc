"""Parallel workers on every backend: processes=N, threads, independent worker processes sharing
the queue, and the faults of a worker: SIGKILL (its lease lapses and the key is taken over) and
SIGTERM (rolled back, recorded as an error)."""

from __future__ import annotations

import collections
import importlib
import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest

import dj_flows as dj
from tests.populate.pipeline import read_calls
from tests.populate.worker_control import finish, start_worker, wait_for

pytestmark = pytest.mark.timeout(300)


def assert_each_made_once(calls_file: Path, ids: range) -> collections.Counter:
    """Every key was made exactly once; returns the number of keys each process made."""
    calls = read_calls(calls_file)
    counts = collections.Counter(key_id for key_id, _, _ in calls)
    assert sorted(counts) == list(ids)
    assert set(counts.values()) == {1}, {k: n for k, n in counts.items() if n != 1}
    return collections.Counter(pid for _, pid, _ in calls)


@pytest.mark.parametrize("reserve_jobs", [False, True])
def test_processes_make_each_key_once(pipeline, calls_file, reserve_jobs):
    pipeline.Source.insert([{"id": i, "delay": 0.01} for i in range(40)])
    result = pipeline.Square.populate(processes=4, reserve_jobs=reserve_jobs)
    assert result == {"success_count": 40, "error_list": []}
    workers = assert_each_made_once(calls_file, range(40))
    assert os.getpid() not in workers and len(workers) >= 2
    assert len(pipeline.Square()) == 40 and len(pipeline.Square.Note()) == 40
    assert len(pipeline.schema.jobs) == 0


def test_processes_report_errors_like_one_process(pipeline, calls_file):
    pipeline.Source.insert([{"id": i, "action": "fail" if i % 5 == 0 else "ok"} for i in range(20)])
    result = pipeline.Square.populate(processes=3, reserve_jobs=True, suppress_errors=True)
    assert result["success_count"] == 16
    assert sorted(key["id"] for key, _ in result["error_list"]) == [0, 5, 10, 15]
    assert {message for _, message in result["error_list"]} == {
        f"ValueError: cannot square {i}" for i in (0, 5, 10, 15)
    }
    assert sorted(pipeline.schema.jobs.fetch("status").tolist()) == ["error"] * 4
    assert not (pipeline.Square.Note & "id % 5 = 0")
    with pytest.raises(ValueError, match="cannot square"):
        pipeline.Square.populate(processes=2)  # without suppress_errors the first error is raised


def test_a_child_process_killed_mid_make_is_reported_and_replaced(pipeline, calls_file):
    pipeline.Source.insert([{"id": i, "delay": 0.01, "action": "die" if i == 4 else "ok"} for i in range(16)])
    result = pipeline.Square.populate(processes=2, reserve_jobs=True, suppress_errors=True)
    assert result["success_count"] == 15
    (key, message), = result["error_list"]
    assert key == {"id": 4} and re.search(r"worker process \d+ died \(exit code -9\)", message)
    assert sorted(pipeline.Square.fetch("id").tolist()) == [i for i in range(16) if i != 4]
    assert not (pipeline.Square.Note & {"id": 4})
    row = pipeline.schema.jobs.fetch1()  # the dead child's reservation lapses with its lease
    assert row["status"] == "reserved" and row["key"] == {"id": 4}
    pipeline.Source.update1({"id": 4, "action": "ok"})
    table = pipeline.Square.table_name
    wait_for(lambda: pipeline.schema.jobs.status(table)[table]["expired"] == 1, 10, "the lease to lapse")
    assert pipeline.Square.populate(reserve_jobs=True)["success_count"] == 1
    assert [c[2] for c in read_calls(calls_file) if c[0] == 4] == ["die", "ok"]
    pipeline.Source.insert([{"id": 98}, {"id": 99, "action": "die"}])
    with pytest.raises(dj.errors.PopulateError, match="died"):  # without suppress_errors: raised
        pipeline.Square.populate(processes=2)
    assert (pipeline.Square & {"id": 98}) and not (pipeline.Square & {"id": 99})


def test_threads_with_their_own_connections_make_each_key_once(pipeline, calls_file):
    pipeline.Source.insert([{"id": i, "delay": 0.005} for i in range(60)])
    results, failures = [], []

    def work(order: str) -> None:
        try:
            results.append(pipeline.Square.populate(reserve_jobs=True, order=order))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            failures.append(error)

    threads = [threading.Thread(target=work, args=(order,)) for order in ("original", "reverse", "random", "random")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert sum(r["success_count"] for r in results) == 60
    calls = read_calls(calls_file)
    assert sorted(c[0] for c in calls) == list(range(60))
    assert len(pipeline.Square()) == 60 and len(pipeline.schema.jobs) == 0


def release_together(workers: list[subprocess.Popen], barrier: Path) -> None:
    """Let the workers waiting at `barrier` go once all of them are ready."""
    wait_for(lambda: len(list(barrier.glob("ready-*"))) == len(workers), 120, "the workers to be ready")
    (barrier / "go").touch()


def test_four_worker_processes_share_the_queue(pipeline, calls_file, tmp_path, backend):
    pipeline.Source.insert([{"id": i, "delay": 0.005} for i in range(200)])
    orders = ("original", "reverse", "random", "random")
    workers = [start_worker(pipeline.schema, {"reserve_jobs": True, "order": order}, tmp_path) for order in orders]
    release_together(workers, tmp_path)
    results = [finish(worker) for worker in workers]
    assert sum(r["success_count"] for r in results) == 200
    assert all(r["error_list"] == [] for r in results)
    made_by = assert_each_made_once(calls_file, range(200))
    if backend == "mysql":  # SQLite's write lock is not fair: one worker may take every key
        assert len(made_by) >= 2, made_by  # the workers really overlapped
    assert len(pipeline.Square()) == 200 and len(pipeline.Square.Note()) == 200
    assert len(pipeline.schema.jobs) == 0


def test_a_sigkilled_worker_key_is_taken_over_when_its_lease_lapses(pipeline, calls_file):
    lease = 6  # long enough that the populate right after the kill runs within it, even on a busy machine
    dj.config["jobs.lease_seconds"] = lease
    pipeline.Source.insert([{"id": 1}, {"id": 2, "action": "hang"}, {"id": 3}])
    worker = start_worker(pipeline.schema, {"reserve_jobs": True})
    wait_for(lambda: any(c[0] == 2 for c in read_calls(calls_file)), 60, "the worker to start making key 2")
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    jobs = pipeline.schema.jobs
    table = pipeline.Square.table_name
    row = jobs.fetch1()
    assert row["status"] == "reserved" and row["key"] == {"id": 2} and row["pid"] == worker.pid
    # the lease is still running: another worker leaves key 2 alone
    pipeline.Source.update1({"id": 2, "action": "ok"})
    assert pipeline.Square.populate(reserve_jobs=True)["success_count"] == 1  # key 3
    assert sorted(pipeline.Square.fetch("id").tolist()) == [1, 3]
    wait_for(lambda: jobs.status(table).get(table, {}).get("expired") == 1, lease + 5, "the lease to lapse")
    assert pipeline.Square.populate(reserve_jobs=True)["success_count"] == 1
    calls = read_calls(calls_file)
    assert [(c[0], c[2]) for c in calls if c[0] == 2] == [(2, "hang"), (2, "ok")]
    assert [c[1] for c in calls if c[0] == 2] == [worker.pid, os.getpid()]
    assert sorted(pipeline.Square.fetch("id").tolist()) == [1, 2, 3]
    assert sorted(pipeline.Square.Note.fetch("id").tolist()) == [1, 2, 3]
    assert len(jobs) == 0


def test_sigterm_rolls_back_and_records_an_error(pipeline, calls_file):
    pipeline.Source.insert([{"id": 1}, {"id": 2, "action": "hang"}, {"id": 3}])
    worker = start_worker(pipeline.schema, {"reserve_jobs": True})
    wait_for(lambda: any(c[0] == 2 for c in read_calls(calls_file)), 60, "the worker to start making key 2")
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=30)
    assert worker.returncode != 0 and "SIGTERM received" in err
    row = pipeline.schema.jobs.fetch1()
    assert row["status"] == "error" and row["key"] == {"id": 2}
    assert row["error_message"] == "SystemExit: SIGTERM received"
    # the stack ends inside make() (the signal may land before its sleep, while it inserts)
    assert "pipeline.py" in row["error_stack"] and ", in make\n" in row["error_stack"]
    assert pipeline.Square.fetch("id").tolist() == [1]
    assert pipeline.Square.Note.fetch("id").tolist() == [1]


def test_sigterm_to_a_parallel_populate_stops_its_children(pipeline, calls_file):
    pipeline.Source.insert([{"id": 1}, {"id": 2, "action": "hang"}, {"id": 3}, {"id": 4}])
    worker = start_worker(pipeline.schema, {"reserve_jobs": True, "processes": 2})
    wait_for(lambda: any(c[0] == 2 for c in read_calls(calls_file)), 60, "a child to start making key 2")
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=60)
    assert worker.returncode != 0 and "SIGTERM received" in err
    jobs = pipeline.schema.jobs
    errors = {row["key"]["id"]: row for row in jobs.fetch(as_dict=True)}
    assert 2 in errors
    assert {row["status"] for row in errors.values()} == {"error"}
    assert {row["error_message"] for row in errors.values()} == {"SystemExit: SIGTERM received"}
    assert errors[2]["pid"] != worker.pid  # recorded by the child that was making it
    made = set(pipeline.Square.fetch("id").tolist())
    assert not made & set(errors) and set(pipeline.Square.Note.fetch("id").tolist()) == made
    assert not [p for p in read_calls(calls_file) if p[1] == worker.pid]  # the parent made nothing


def test_spawned_processes(make_schema, calls_file, monkeypatch):
    schema = make_schema("spawn")
    monkeypatch.setenv("DJF_SPAWN_SCHEMA", schema.database)
    module = importlib.import_module("tests.populate.spawn_pipeline")
    module = importlib.reload(module)  # bind to this test's schema
    module.Item.insert([{"item": i} for i in range(12)])
    monkeypatch.setitem(dj.config, "populate.start_method", "spawn")
    assert module.Doubled.populate(processes=2, reserve_jobs=True)["success_count"] == 12
    workers = assert_each_made_once(calls_file, range(12))
    assert os.getpid() not in workers
    assert sorted(module.Doubled.fetch("doubled").tolist()) == [2 * i for i in range(12)]


def test_spawn_needs_an_importable_table(make_schema, monkeypatch):
    schema = make_schema("local")

    @schema
    class Base(dj.Manual):
        definition = """
        base : int
        """

    @schema
    class Local(dj.Computed):
        definition = """
        -> Base
        """

        def make(self, key):
            self.insert1(key)

    Base.insert([{"base": 1}, {"base": 2}])
    monkeypatch.setitem(dj.config, "populate.start_method", "spawn")
    with pytest.raises(dj.DataJointError, match="importable module"):
        Local.populate(processes=2)


def test_in_memory_sqlite_cannot_be_shared_by_processes():
    with dj.config(database__backend="sqlite", database__sqlite_path=":memory:", safemode=False):
        schema = dj.Schema("memory_only", connection=dj.Connection())

        @schema
        class Base(dj.Manual):
            definition = """
            base : int
            """

        @schema
        class Derived(dj.Computed):
            definition = """
            -> Base
            """

            def make(self, key):
                self.insert1(key)

        Base.insert([{"base": 1}, {"base": 2}])
        with pytest.raises(dj.DataJointError, match="in-memory SQLite"):
            Derived.populate(processes=2)
        assert Derived.populate()["success_count"] == 2
