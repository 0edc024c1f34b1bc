"""The ~jobs table on every backend: errors and ignores, leases (expiry, take-over, renewal)."""

from __future__ import annotations

import datetime
import decimal
import os
import platform
import time
import uuid

import numpy as np
import pytest

from dj_flows.jobs import MARKER, JobTable, LeaseKeeper, key_hash
from tests.populate.pipeline import read_calls

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(
    "key",
    [
        {"id": 1},
        {"b": "text", "a": 2},
        {"subject": np.int64(7), "session": np.uint16(3), "ratio": 0.25},
        {"day": datetime.date(2024, 2, 29), "at": datetime.datetime(2024, 1, 2, 3, 4, 5)},
        {"u": uuid.UUID("12345678-1234-5678-1234-567812345678"), "d": decimal.Decimal("1.50")},
    ],
)
def test_key_hash_is_datajoints(key):
    from datajoint.hash import key_hash as datajoint_key_hash

    assert key_hash(key) == datajoint_key_hash(key)


def test_failed_key_is_recorded_with_message_and_stack(pipeline):
    pipeline.Source.insert([{"id": 1}, {"id": 2, "action": "fail"}])
    result = pipeline.Square.populate(reserve_jobs=True, suppress_errors=True)
    assert result["success_count"] == 1
    jobs = pipeline.schema.jobs
    row = jobs.fetch1()
    assert row["table_name"] == pipeline.Square.table_name
    assert row["key_hash"] == key_hash({"id": 2})
    assert row["status"] == "error"
    assert row["key"] == {"id": 2}
    assert row["error_message"] == "ValueError: cannot square 2"
    assert "Traceback" in row["error_stack"] and "cannot square 2" in row["error_stack"]
    assert row["host"] == platform.node() and row["pid"] == os.getpid() and row["user"]
    assert not (pipeline.Square & {"id": 2}) and not (pipeline.Square.Note & {"id": 2})
    # an error blocks the key until the error row is deleted
    assert pipeline.Square.populate(reserve_jobs=True, suppress_errors=True)["success_count"] == 0
    (pipeline.Source & {"id": 2}).delete()
    pipeline.Source.insert1({"id": 2})
    (jobs & {"status": "error"}).delete()
    assert pipeline.Square.populate(reserve_jobs=True)["success_count"] == 1
    assert len(jobs) == 0


def test_ignored_and_reserved_keys_are_skipped(pipeline, calls_file):
    pipeline.Source.insert([{"id": i} for i in range(4)])
    jobs = pipeline.schema.jobs
    name = pipeline.Square.table_name
    assert jobs.ignore(name, {"id": 1})
    assert jobs.reserve(name, {"id": 2})  # a DataJoint-style reservation: no lease, never expires
    assert not jobs.reserve(name, {"id": 2})
    assert pipeline.Square.populate(reserve_jobs=True)["success_count"] == 2
    assert sorted(c[0] for c in read_calls(calls_file)) == [0, 3]
    assert pipeline.Square.populate()["success_count"] == 2  # without reservations all is made
    jobs.complete(name, {"id": 2})
    assert sorted(jobs.fetch("status").tolist()) == ["ignore"]


def test_a_lapsed_lease_is_taken_over_by_exactly_one_claimant(pipeline):
    jobs = pipeline.schema.jobs
    name = pipeline.Square.table_name
    holder = jobs.acquire(name, {"id": 5}, lease=2)
    assert holder is not None and MARKER.match(holder.marker)
    assert jobs.acquire(name, {"id": 5}, lease=2) is None  # held
    blocked, lapsed = jobs.blocking(name)
    assert blocked == {holder.key_hash} and lapsed == {}
    time.sleep(3.2)  # the holder did not renew
    blocked, lapsed = jobs.blocking(name)
    assert blocked == set() and lapsed == {holder.key_hash: holder.marker}
    assert jobs.status(name)[name]["expired"] == 1
    first = jobs.acquire(name, {"id": 5}, lease=2, expired=holder.marker)
    second = jobs.acquire(name, {"id": 5}, lease=2, expired=holder.marker)
    assert first is not None and second is None
    assert not jobs.renew(holder) and not jobs.settle(holder) and not jobs.fail(holder, "x", None)
    assert jobs.renew(first)
    assert jobs.fetch1("error_message") == first.marker
    assert jobs.settle(first) and len(jobs) == 0


def test_a_renewed_lease_does_not_lapse(pipeline):
    jobs = pipeline.schema.jobs
    name = pipeline.Square.table_name
    with LeaseKeeper(jobs, lease=2) as keeper:
        reservation = jobs.acquire(name, {"id": 9}, lease=2)
        keeper.hold(reservation)
        for _ in range(10):  # twice the lease
            time.sleep(0.5)
            assert jobs.blocking(name) == ({reservation.key_hash}, {})
        assert not reservation.lost
        keeper.drop(reservation)
    time.sleep(4.2)
    assert jobs.blocking(name)[1] == {reservation.key_hash: reservation.marker}


def test_datajoint_style_reservations_never_lapse(pipeline):
    jobs = pipeline.schema.jobs
    name = pipeline.Square.table_name
    jobs.reserve(name, {"id": 3})
    time.sleep(2.2)
    assert jobs.blocking(name) == ({key_hash({"id": 3})}, {})
    assert jobs.status(name)[name]["reserved"] == 1


def test_populate_takes_over_a_lapsed_reservation(pipeline, calls_file):
    pipeline.Source.insert([{"id": 1}, {"id": 2}])
    jobs = pipeline.schema.jobs
    name = pipeline.Square.table_name
    stale = jobs.acquire(name, {"id": 2}, lease=2)  # a worker that died without renewing
    assert pipeline.Square.populate(reserve_jobs=True)["success_count"] == 1
    time.sleep(3.2)
    assert pipeline.Square.populate(reserve_jobs=True)["success_count"] == 1
    assert sorted(c[0] for c in read_calls(calls_file)) == [1, 2]
    assert len(jobs) == 0
    assert not jobs.settle(stale)


def test_jobs_table_delete_and_drop(pipeline):
    jobs = pipeline.schema.jobs
    jobs.reserve("__x", {"id": 1})
    jobs.error("__x", {"id": 2}, "m" * 3000, "stack")
    message = (jobs & {"key_hash": key_hash({"id": 2})}).fetch1("error_message")
    assert len(message) == 2047 and message.endswith("...truncated")
    assert jobs.delete() == 2
    jobs.drop()
    assert not jobs.is_declared
    assert JobTable(jobs.connection, jobs.database).is_declared  # declared again on demand
