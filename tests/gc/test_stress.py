"""Stress: two inserting processes re-use a small set of contents and delete their rows while a
third process collects with a zero grace period (and removes orphans), for a bounded number of
rounds. Afterwards every row still present fetches its objects, and a final sweep leaves exactly
the referenced objects in the store. MariaDB with the S3 server; SQLite with a folder store."""

from __future__ import annotations

import multiprocessing

import numpy as np

import dj_flows as dj
from dj_flows.connection import CONNECTION_KEYS
from dj_flows.stores import gc
from dj_flows.stores.orphans import remove_orphans, scan_orphans

from . import stress_worker
from .pipeline import STORE, blob, declare

ROUNDS = 40
IDS = 30  # per inserter
TIMEOUT = 240  # seconds for the whole run (a bound, not a speed check)


def stored_keys(tracking):
    mark = gc.mark_key(tracking.database)
    return {i.key for i in tracking.store.list(tracking.database) if i.key != mark}


def test_inserts_deletes_and_a_zero_grace_collector_in_parallel(make_schema, store_spec, tmp_path):
    schema = make_schema("st")
    Item = declare(schema)["Item"]
    tracking = schema.external[STORE]
    settings = {key: dj.config[key] for key in CONNECTION_KEYS}
    stores = dict(dj.config["stores"])
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    stop = context.Event()
    inserters = [
        context.Process(
            target=stress_worker.inserter,
            args=(settings, stores, schema.database, seed, ROUNDS,
                  list(range(seed * IDS, (seed + 1) * IDS)), str(tmp_path / f"files{seed}"), results),
        )
        for seed in (1, 2)
    ]
    for seed in (1, 2):
        (tmp_path / f"files{seed}").mkdir()
    collector = context.Process(
        target=stress_worker.collector,
        args=(settings, stores, schema.database, 3, stop, results),
    )
    processes = [*inserters, collector]
    try:
        for process in processes:
            process.start()
        for process in inserters:
            process.join(TIMEOUT)
        stop.set()
        collector.join(TIMEOUT)
        stats = {}
        for _ in processes:
            role, counts, failure = results.get(timeout=30)
            assert failure is None, f"{role} failed:\n{failure}"
            stats.setdefault(role, []).append(counts)
    finally:
        stop.set()
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(10)
    assert [p.exitcode for p in processes] == [0, 0, 0]
    collected = stats["collector"][0]
    print("stress:", stats)
    assert collected["collected"] > 0, "the collector never removed anything: no race was tried"
    assert collected["sweep_errors"] == 0 and collected["orphan_errors"] == 0

    # every row still present fetches its objects, with the right contents
    rows = Item.fetch(as_dict=True, download_path=str(tmp_path / "fetched"))
    assert rows, "every row was deleted: nothing left to check"
    for row in rows:
        np.testing.assert_array_equal(row["b"], blob(row["content"]))
        if row["a"] is not None:
            data = open(row["a"], "rb").read()
            assert data == bytes([row["content"] % 256]) * (100 + row["content"])

    # a final sweep leaves exactly the referenced objects
    gc.collect(tracking, 0)
    orphans = remove_orphans(tracking, scan_orphans(tracking, 0))
    assert not orphans.errors
    assert len(tracking.unused()) == 0
    tracked = {
        tracking.object_key(r["hash"], r["attachment_name"], r["filepath"])
        for r in tracking.fetch("hash", "attachment_name", "filepath", as_dict=True)
    }
    assert stored_keys(tracking) == tracked
    assert len(tracking.used()) == len(tracking)

