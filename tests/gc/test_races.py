"""The races the collector must win: each one staged deterministically with a second thread (its
own database connection) paused at the point that matters, on both backends.

- an insert re-using content holds its tracking rows' locks while a collector sweeps them;
- a collector holds a page (objects already removed) while an insert re-uses that content;
- an insert uploaded new content, and before it locked anything another insert tracked the same
  content, was deleted, and the collector removed the object.
In each, the row that ends up inserted must fetch its object.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from dj_flows.codecs.blob import pack
from dj_flows.errors import DataJointError
from dj_flows.stores import external, gc, history
from dj_flows.stores.external import ExternalTable
from dj_flows.stores.layout import uuid_from_buffer

from .pipeline import STORE, blob, declare

WAIT = 30  # seconds: generous bounds for the paused thread; the test fails if one is reached
BLOCKED = 1.0  # seconds a thread must stay blocked to count as waiting on a lock


@pytest.fixture
def pipe(make_schema, store_spec):
    schema = make_schema("r")
    tables = declare(schema)
    return tables["Item"], schema.external[STORE]


class Runner(threading.Thread):
    """A thread that runs `action` and keeps its result or exception."""

    def __init__(self, action):
        super().__init__(daemon=True)
        self.action = action
        self.result = self.error = None

    def run(self):
        try:
            self.result = self.action()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error

    def finish(self):
        self.join(WAIT)
        assert not self.is_alive(), "thread did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def object_present(tracking, content):
    """Whether the store holds the object of blob(content)."""
    return tracking.store.exists(tracking.object_key(uuid_from_buffer(pack(blob(content)))))


def unused_content(Item, tracking, content):
    """Content tracked, unreferenced, with its object in the store."""
    Item.insert1({"id": 1000 + content, "content": content, "b": blob(content)})
    (Item & {"id": 1000 + content}).delete()
    assert len(tracking.unused()) >= 1 and object_present(tracking, content)


def test_insert_holding_locks_makes_the_collector_wait_and_keep(pipe, monkeypatch):
    Item, tracking = pipe
    unused_content(Item, tracking, 1)
    locked, release = threading.Event(), threading.Event()
    track = ExternalTable.track

    def paused_track(self, entries):
        track(self, entries)
        if threading.current_thread() is inserter:
            locked.set()
            assert release.wait(WAIT)

    monkeypatch.setattr(ExternalTable, "track", paused_track)
    inserter = Runner(lambda: Item.insert1({"id": 1, "content": 1, "b": blob(1)}))
    inserter.start()
    assert locked.wait(WAIT)  # the insert holds the row's lock, its data row not yet inserted

    collector = Runner(lambda: gc.collect(tracking, 0))
    collector.start()
    collector.join(BLOCKED)
    assert collector.is_alive(), "the collector did not wait for the insert's lock"
    release.set()
    inserter.finish()
    report = collector.finish()

    assert report.deleted_rows == 0 and report.skipped + report.vanished == report.count >= 1
    assert object_present(tracking, 1)
    np.testing.assert_array_equal((Item & {"id": 1}).fetch1("b"), blob(1))


def test_collector_holding_a_page_makes_the_insert_wait_then_upload_again(pipe, monkeypatch):
    Item, tracking = pipe
    unused_content(Item, tracking, 2)
    removed, release = threading.Event(), threading.Event()
    remove = gc._remove_objects

    def paused_remove(tracking_, keys):
        failed = remove(tracking_, keys)
        removed.set()
        assert release.wait(WAIT)
        return failed

    monkeypatch.setattr(gc, "_remove_objects", paused_remove)
    collector = Runner(lambda: gc.collect(tracking, 0))
    collector.start()
    assert removed.wait(WAIT)  # the object is gone, the row's deletion not yet committed
    assert not object_present(tracking, 2)

    inserter = Runner(lambda: Item.insert1({"id": 2, "content": 2, "b": blob(2)}))
    inserter.start()
    inserter.join(BLOCKED)
    assert inserter.is_alive(), "the insert did not wait for the collector's lock"
    release.set()
    report = collector.finish()
    inserter.finish()

    assert report.deleted_rows == 1
    assert object_present(tracking, 2)
    np.testing.assert_array_equal((Item & {"id": 2}).fetch1("b"), blob(2))


def test_upload_collected_before_the_insert_locked_is_uploaded_again(pipe, monkeypatch, caplog):
    Item, tracking = pipe
    uploaded, release = threading.Event(), threading.Event()
    encode = external.encode_external_columns

    def paused_encode(*args):
        pending = encode(*args)  # uploads new objects, before the insert's transaction
        if threading.current_thread() is first:
            uploaded.set()
            assert release.wait(WAIT)
        return pending

    monkeypatch.setattr(external, "encode_external_columns", paused_encode)
    first = Runner(lambda: Item.insert1({"id": 3, "content": 3, "b": blob(3)}))
    first.start()
    assert uploaded.wait(WAIT)  # new content uploaded; nothing tracked or locked yet
    assert object_present(tracking, 3)

    Item.insert1({"id": 4, "content": 3, "b": blob(3)})  # another insert tracks the same content
    (Item & {"id": 4}).delete()
    report = gc.collect(tracking, 0)  # and the collector removes it
    assert report.deleted_rows == 1 and not object_present(tracking, 3)

    with caplog.at_level(logging.WARNING, logger="dj_flows.external"):
        release.set()
        first.finish()

    assert object_present(tracking, 3)
    np.testing.assert_array_equal((Item & {"id": 3}).fetch1("b"), blob(3))
    assert any("1 tracked objects" in r.getMessage() for r in caplog.records)


def test_an_insert_with_no_collector_in_between_checks_nothing(pipe, monkeypatch):
    Item, tracking = pipe
    gc.collect(tracking, 0)  # leaves an idle mark
    checked = []
    size = type(tracking.store).size

    def counting_size(self, key):
        checked.append(key)
        return size(self, key)

    monkeypatch.setattr(type(tracking.store), "size", counting_size)
    Item.insert([{"id": i, "content": 10 + i, "b": blob(10 + i)} for i in range(20)])
    assert checked == []  # new objects: no HEAD; the mark read before and after agree


def test_uploads_may_be_gone_reads_the_mark():
    assert not gc.uploads_may_be_gone("none", "none")
    assert not gc.uploads_may_be_gone("idle:a", "idle:a")
    assert gc.uploads_may_be_gone("idle:a", "idle:b")
    assert gc.uploads_may_be_gone("none", "idle:b")
    assert gc.uploads_may_be_gone("busy:a", "busy:a")
    assert gc.uploads_may_be_gone("idle:a", "busy:b")
    assert gc.uploads_may_be_gone("unknown:a", "unknown:a")
    assert gc.uploads_may_be_gone(None, "none")


def test_a_page_failing_after_removal_keeps_the_mark_busy_until_repaired(pipe, monkeypatch):
    Item, tracking = pipe
    unused_content(Item, tracking, 5)
    unused_content(Item, tracking, 6)
    forget = history.forget_collected

    def crash(*args):
        raise DataJointError("simulated crash before the commit")

    monkeypatch.setattr(history, "forget_collected", crash)
    report = gc.collect(tracking, 0)
    monkeypatch.setattr(history, "forget_collected", forget)
    assert report.deleted_rows == 0 and len(report.errors) == 2
    # rolled back: the rows are back, their objects gone, and the mark says busy
    assert len(tracking) == 2 and not object_present(tracking, 5)
    assert not object_present(tracking, 6)
    assert gc.read_mark(tracking).startswith("busy:")

    Item.insert1({"id": 5, "content": 5, "b": blob(5)})  # re-uses a row whose object is gone
    assert object_present(tracking, 5)
    np.testing.assert_array_equal((Item & {"id": 5}).fetch1("b"), blob(5))

    report = gc.collect(tracking, 0)  # sees the unfinished page, repairs, then goes on
    assert not report.errors and report.deleted_rows + report.vanished == 1
    assert len(tracking) == 1 and gc.read_mark(tracking).startswith("idle:")
    np.testing.assert_array_equal((Item & {"id": 5}).fetch1("b"), blob(5))


def test_a_sweep_settles_the_mark_once_and_never_over_a_failed_later_page(pipe, monkeypatch):
    Item, tracking = pipe
    for content in (7, 8, 9):
        unused_content(Item, tracking, content)
    monkeypatch.setattr(gc, "PAGE", 1)  # three pages
    marks = []
    write = gc.write_mark
    monkeypatch.setattr(gc, "write_mark", lambda t, mark: (marks.append(mark), write(t, mark)))
    report = gc.collect(tracking, 0)
    assert report.deleted_rows == 3 and not report.errors and len(tracking) == 0
    # busy for each page, idle once, with the last page's token
    assert [m.split(":")[0] for m in marks] == ["busy", "busy", "busy", "idle"]
    assert marks[-1] == "idle:" + marks[-2].split(":")[1] == gc.read_mark(tracking)

    # now the second of two pages removes its object and fails before its commit
    for content in (10, 11):
        unused_content(Item, tracking, content)
    forget, calls = history.forget_collected, []

    def crash_second(*args):
        calls.append(1)
        if len(calls) == 2:
            raise DataJointError("simulated crash before the commit")
        return forget(*args)

    monkeypatch.setattr(history, "forget_collected", crash_second)
    report = gc.collect(tracking, 0)
    monkeypatch.setattr(history, "forget_collected", forget)
    assert report.deleted_rows == 1 and len(report.errors) == 1
    assert gc.read_mark(tracking).startswith("busy:")  # the first page's token did not settle it
    report = gc.collect(tracking, 0)  # repairs, then settles
    assert not report.errors and len(tracking) == 0
    assert gc.read_mark(tracking).startswith("idle:")
