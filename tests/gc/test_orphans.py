"""Orphan scan: files no tracking row names, older than the grace period, removed on request through
the collector's safe sweep; names outside DataJoint's layout are never touched."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest

from dj_flows.codecs.blob import pack
from dj_flows.stores import gc
from dj_flows.stores.filestore import TEMP_SUFFIX
from dj_flows.stores.layout import object_key, uuid_from_buffer
from dj_flows.stores.orphans import parse_key, remove_orphans, scan_orphans

from .pipeline import STORE, blob, declare


@pytest.fixture
def pipe(make_schema, store_spec):
    schema = make_schema("o")
    tables = declare(schema)
    return tables["Item"], schema.external[STORE]


def blob_key(tracking, content):
    return tracking.object_key(uuid_from_buffer(pack(blob(content))))


def make_orphans(Item, tracking):
    """Content 0 in use; 1 orphaned by delete(delete_external_files=False); a stray hash-named
    file; a file outside the layout."""
    Item.insert({"id": i, "content": i, "b": blob(i)} for i in range(2))
    (Item & {"id": 1}).delete()
    tracking.delete(delete_external_files=False)
    stray = uuid.uuid4()
    stray_key = object_key(tracking.database, stray.hex, tracking.store.subfolding, "x.png")
    tracking.store.put(stray_key, b"stray")
    tracking.store.put(f"{tracking.database}/notes.txt", b"not ours")
    return stray, stray_key


def test_scan_lists_untracked_files_with_their_last_reference(pipe):
    Item, tracking = pipe
    stray, stray_key = make_orphans(Item, tracking)

    report = scan_orphans(tracking, 0)

    assert {o.key for o in report.orphans} == {blob_key(tracking, 1), stray_key}
    assert report.unrecognized == 1 and report.count == 2
    assert report.bytes == len(pack(blob(1))) + len(b"stray")
    orphan = next(o for o in report.orphans if o.key == blob_key(tracking, 1))
    assert orphan.last_reference.endswith(".item.b") and orphan.last_key == {"id": 1}
    by_hash = {o.hash: o for o in report.orphans}
    assert by_hash[stray].attachment_name == "x.png"
    json.dumps(report.to_dict())
    assert "2 files" in str(report) and "outside DataJoint's layout" in str(report)

    young = scan_orphans(tracking, 3600)  # every file was written just now
    assert young.count == 0 and young.young == 2


def test_remove_takes_only_the_orphans(pipe):
    Item, tracking = pipe
    _, stray_key = make_orphans(Item, tracking)
    report = remove_orphans(tracking, scan_orphans(tracking, 0))

    assert report.swept and report.removed == 2 and not report.errors
    assert not tracking.store.exists(stray_key)
    assert not tracking.store.exists(blob_key(tracking, 1))
    assert tracking.store.exists(f"{tracking.database}/notes.txt")
    np.testing.assert_array_equal((Item & {"id": 0}).fetch1("b"), blob(0))
    assert len(tracking) == 1  # adopted rows went with their files
    assert scan_orphans(tracking, 0).count == 0


def test_an_orphan_used_again_before_removal_is_kept(pipe):
    Item, tracking = pipe
    make_orphans(Item, tracking)
    report = scan_orphans(tracking, 0)
    Item.insert1({"id": 5, "content": 1, "b": blob(1)})  # content 1 is referenced again

    remove_orphans(tracking, report)

    assert report.removed == 1 and report.kept == 1
    np.testing.assert_array_equal((Item & {"id": 5}).fetch1("b"), blob(1))


def test_stale_temporary_files_of_folder_writes(pipe, backend, monkeypatch):
    if backend != "sqlite":
        pytest.skip("temporary files exist in folder stores (the SQLite module's store)")
    Item, tracking = pipe
    Item.insert1({"id": 0, "content": 0, "b": blob(0)})
    folder = tracking.store.root + f"/{tracking.database}"
    temp = f"{folder}/.abc.123{TEMP_SUFFIX}"
    with open(temp, "wb") as stream:
        stream.write(b"partial")
    assert scan_orphans(tracking, 0).temporary == []  # could be a write in progress
    monkeypatch.setattr(time, "time", lambda: 10**10)  # much later
    report = scan_orphans(tracking, 0)
    assert [o.key for o in report.temporary] == [f"{tracking.database}/.abc.123{TEMP_SUFFIX}"]
    remove_orphans(tracking, report)
    assert report.removed == 1 and not tracking.store.exists(report.temporary[0].key)


def test_run_gc_dry_run_reports_orphans_and_removes_nothing(pipe):
    Item, tracking = pipe
    _, stray_key = make_orphans(Item, tracking)
    dry = gc.run_gc(tracking.database, STORE, 0, dry_run=True, delete_orphans=True)
    assert dry["orphans"]["count"] == 2 and not dry["orphans"]["swept"]
    assert tracking.store.exists(stray_key)
    done = gc.run_gc(tracking.database, STORE, 0, dry_run=False, delete_orphans=True)
    assert done["orphans"]["removed"] == 2 and not tracking.store.exists(stray_key)


def test_parse_key_follows_the_layout():
    hex_ = "0123456789abcdef0123456789abcdef"
    folds = (2, 2)
    assert parse_key("db", f"db/01/23/{hex_}", folds) == (uuid.UUID(hex_), None)
    assert parse_key("db", f"db/01/23/{hex_}.a.b", folds) == (uuid.UUID(hex_), "a.b")
    assert parse_key("db", f"db/01/24/{hex_}", folds) is None
    assert parse_key("db", f"other/01/23/{hex_}", folds) is None
    assert parse_key("db", f"db/01/23/{hex_}x", folds) is None
    assert parse_key("db", f"db/01/23/{hex_}.", folds) is None
    assert parse_key("db", f"db/{hex_}", ()) == (uuid.UUID(hex_), None)
    assert parse_key("db", "db/.dj-gc-mark", folds) is None
