"""The S3 server is stopped (its process ended) in the middle of a bulk insert and of a populate.

The operation fails with a StoreError naming the store and the endpoint; no row references an
object missing from the store; after the server is back the same call completes."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import dj_flows as dj
from dj_flows.errors import StoreError
from tests.populate.worker_control import wait_for

from .invariants import missing_objects, referenced_paths

pytestmark = [pytest.mark.s3, pytest.mark.timeout(600)]
STORE = "outage"
ROWS = 120
BUCKET: list[str] = []
# the default retries ride out short blips (~75 s through the proxy when the server is gone);
# the suite shortens them so a fault is seen in seconds
FAST_FAIL = {"config_kwargs": {"connect_timeout": 2, "retries": {"max_attempts": 1}}}


@pytest.fixture(scope="module")
def outage(backend, make_schema, restartable_s3):
    bucket = restartable_s3.new_bucket("outage")
    BUCKET[:] = [bucket]
    spec = dict(restartable_s3.store_spec(bucket, "loc"), storage_options=FAST_FAIL)
    with dj.config(stores={**dj.config["stores"], STORE: spec}):
        schema = make_schema("out")

        class Raw(dj.Manual):
            definition = """
            id : int
            ---
            data : blob@outage
            """

        class Derived(dj.Computed):
            definition = """
            -> Raw
            ---
            doubled : blob@outage
            """

            def make(self, key):
                time.sleep(0.02)
                data = (Raw & key).fetch1("data")
                self.insert1(dict(key, doubled=data * 2))

        schema(Raw, context={"Raw": Raw})
        schema(Derived, context={"Raw": Raw})
        yield restartable_s3, schema, Raw, Derived


def rows(start: int, count: int) -> list[dict]:
    rng = np.random.default_rng(start)
    return [dict(id=i, data=rng.random(2000)) for i in range(start, start + count)]


def stop_when(server, condition) -> threading.Thread:
    def run():
        wait_for(condition, 60, "the operation to get under way")
        server.stop()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def assert_names_store_and_endpoint(message: str, server) -> None:
    assert f"store {STORE!r}" in message, message
    assert server.endpoint in message, message
    assert server.secret_key not in message


def test_server_stopped_during_bulk_insert(outage):
    server, schema, Raw, _ = outage
    Raw.insert(rows(0, 10))  # the store is prepared, the tracking table exists
    proxy_seen = server.proxy.accepted
    killer = stop_when(server, lambda: server.proxy.accepted > proxy_seen + 3)
    batch = rows(1000, ROWS)
    with pytest.raises(StoreError) as failure:
        for _ in range(50):  # the first bulk insert may finish before the stop lands
            Raw.insert(batch, skip_duplicates=True)
            batch = rows(1000 + ROWS * (_ + 1), ROWS)
    killer.join(60)
    assert_names_store_and_endpoint(str(failure.value), server)
    failed = batch
    server.start()
    fs = server.server.filesystem()
    assert missing_objects(schema, STORE, fs, BUCKET[0]) == set()
    assert not Raw & [{"id": r["id"]} for r in failed]  # the failed call left no rows
    Raw.insert(failed)  # the same call now completes
    fetched = dict(zip(*Raw.fetch("id", "data")))
    for row in failed:
        np.testing.assert_array_equal(fetched[row["id"]], row["data"])
    assert missing_objects(schema, STORE, fs, BUCKET[0]) == set()
    print(f"RELIABILITY s3-insert: {len(Raw())} rows, {len(referenced_paths(schema, STORE))} objects checked")


def test_server_stopped_during_populate(outage):
    server, schema, Raw, Derived = outage
    keys = len(Raw())
    done_before = len(Derived())
    killer = stop_when(server, lambda: len(Derived()) >= done_before + 5)
    started = time.monotonic()
    with pytest.raises(StoreError) as failure:
        Derived.populate(reserve_jobs=True)
    seconds = time.monotonic() - started
    killer.join(60)
    assert_names_store_and_endpoint(str(failure.value), server)
    made = len(Derived())
    assert done_before + 5 <= made < keys
    server.start()
    fs = server.server.filesystem()
    assert missing_objects(schema, STORE, fs, BUCKET[0]) == set()
    # a transient store fault gives the key back to the queue (or records it): clear and rerun
    (schema.jobs & 'status="error"').delete()
    again = Derived.populate(reserve_jobs=True)
    assert again["error_list"] == [] and len(Derived()) == keys
    raw = dict(zip(*Raw.fetch("id", "data")))
    for key_id, doubled in zip(*Derived.fetch("id", "doubled")):
        np.testing.assert_array_equal(doubled, raw[key_id] * 2)
    assert missing_objects(schema, STORE, fs, BUCKET[0]) == set()
    assert len(schema.jobs) == 0
    print(f"RELIABILITY s3-populate: {keys} keys, {made} before the stop, failed after {seconds:.1f} s")

