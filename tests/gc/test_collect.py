"""plan() reports, sweep() removes only what is unused and past the grace period, on both backends;
the DataJoint API (unused/used/delete) and run_gc() on the same mechanism."""

from __future__ import annotations

import datetime
import json
import uuid

import numpy as np
import pytest

import dj_flows as dj
from dj_flows.stores import gc
from dj_flows.stores.history import SENTINEL, history_table

from .pipeline import STORE, attachment, blob, declare


@pytest.fixture
def pipe(make_schema, store_spec, tmp_path):
    schema = make_schema("c")
    tables = declare(schema)
    tables["schema"] = schema
    tables["tracking"] = schema.external[STORE]
    tables["folder"] = tmp_path
    return tables


def fill(pipe, ids, content=lambda i: i, with_attachment=True):
    pipe["Item"].insert(
        {
            "id": i,
            "content": content(i),
            "b": blob(content(i)),
            "a": attachment(pipe["folder"], content(i)) if with_attachment else None,
        }
        for i in ids
    )


def keys_in_store(tracking):
    return {
        item.key
        for item in tracking.store.list(tracking.database)
        if not item.key.endswith(gc.MARK)
    }


def tracked_keys(tracking):
    rows = tracking.fetch("hash", "attachment_name", "filepath", as_dict=True)
    return {tracking.object_key(r["hash"], r["attachment_name"], r["filepath"]) for r in rows}


def test_plan_reports_unused_objects_by_last_reference(pipe):
    Item, Note, tracking = pipe["Item"], pipe["Note"], pipe["tracking"]
    fill(pipe, range(4))
    Note.insert1({"name": "n", "day": datetime.date(2024, 5, 1), "b": blob(100)})
    before = keys_in_store(tracking)
    (Item & "id < 2").delete()
    (Note & {"name": "n"}).delete()

    report = gc.plan(tracking, 0)

    assert report.count == 5  # two blobs and two attachments of Item, one blob of Note
    sizes = dict(zip(*tracking.fetch("hash", "size")))
    assert report.bytes == sum(sizes[c.hash] for c in report.candidates)
    groups = report.by_reference()
    item_table = f"{pipe['schema'].database}.item"
    assert groups[f"{item_table}.b"]["count"] == 2
    assert groups[f"{item_table}.a"]["count"] == 2
    note = groups[f"{pipe['schema'].database}.note.b"]
    assert note["count"] == 1
    note_candidate = next(c for c in report.candidates if c.last_reference.endswith("note.b"))
    assert note_candidate.last_key == {"name": "n", "day": "2024-05-01"}
    assert {c.last_key["id"] for c in report.candidates if c.last_reference.endswith("item.b")} == {0, 1}
    text = str(report)
    assert "would remove 5 objects" in text and f"{item_table}.a: 2 objects" in text
    json.dumps(report.to_dict())  # JSON-able as it is
    assert keys_in_store(tracking) == before  # a dry run removes nothing
    assert len(tracking) == 9


def test_sweep_removes_unused_rows_and_objects_only(pipe):
    Item, tracking = pipe["Item"], pipe["tracking"]
    fill(pipe, range(6), content=lambda i: i % 4)  # ids 4, 5 share contents of 0, 1
    (Item & "id in (0, 2, 3)").delete()  # content 0 still used by id 4; 2 and 3 unused

    report = gc.sweep(tracking, gc.plan(tracking, 0))

    assert report.swept and report.deleted_rows == 4 and report.deleted_files == 4
    assert report.skipped == 0 and not report.errors
    assert len(tracking.unused()) == 0
    assert keys_in_store(tracking) == tracked_keys(tracking)
    rows = Item.fetch(as_dict=True, order_by="id", download_path=str(pipe["folder"] / "dl"))
    assert [r["id"] for r in rows] == [1, 4, 5]
    for row in rows:
        np.testing.assert_array_equal(row["b"], blob(row["content"]))
    assert "removed 4 of 4 unused objects" in str(report)


def test_grace_period_counts_from_upload_and_from_release(pipe):
    Item, tracking = pipe["Item"], pipe["tracking"]
    connection = tracking.connection
    quote = connection.backend.quote
    fill(pipe, range(3), with_attachment=False)
    (Item & "id < 2").delete()
    assert gc.plan(tracking, 3600).count == 0  # uploaded just now

    connection.query(
        f"UPDATE {tracking.full_table_name} SET {quote('timestamp')} = '2001-01-01 00:00:00'"
    )
    # uploaded long ago, but the references went just now (recorded in ~reference_<store>)
    assert gc.plan(tracking, 3600).count == 0
    history = history_table(connection, tracking.database, STORE)
    connection.query(
        f"UPDATE {history.full_table_name} SET {quote('released')} = '2001-01-01 00:00:00'"
    )
    report = gc.plan(tracking, 3600)
    assert report.count == 2
    gc.sweep(tracking, report)
    assert len(tracking) == 1 and len(Item) == 1


def test_sweep_rechecks_candidates_used_again(pipe):
    Item, tracking = pipe["Item"], pipe["tracking"]
    fill(pipe, range(2), with_attachment=False)
    Item.delete()
    report = gc.plan(tracking, 0)
    assert report.count == 2
    fill(pipe, [7], content=lambda i: 0, with_attachment=False)  # content 0 used again

    gc.sweep(tracking, report)

    assert report.deleted_rows == 1 and report.skipped == 1
    np.testing.assert_array_equal((Item & {"id": 7}).fetch1("b"), blob(0))
    assert "1 candidates were in use again and kept" in str(report)


def test_touched_candidate_is_kept_under_a_grace_period(pipe):
    Item, tracking = pipe["Item"], pipe["tracking"]
    quote = tracking.connection.backend.quote
    fill(pipe, range(2), with_attachment=False)
    Item.delete()
    old = "2001-01-01 00:00:00"
    history = history_table(tracking.connection, tracking.database, STORE)
    for table, column in ((tracking, "timestamp"), (history, "released")):
        tracking.connection.query(f"UPDATE {table.full_table_name} SET {quote(column)} = '{old}'")
    report = gc.plan(tracking, 3600)
    assert report.count == 2
    fill(pipe, [5], content=lambda i: 1, with_attachment=False)  # touches content 1's row
    (Item & {"id": 5}).delete()  # and releases it again: unused, but recently

    gc.sweep(tracking, report)

    assert report.deleted_rows == 1 and report.skipped == 1
    assert len(tracking) == 1


def test_history_keeps_the_last_reference_and_forgets_collected(pipe):
    Item, tracking = pipe["Item"], pipe["tracking"]
    fill(pipe, [1, 2], content=lambda i: 0, with_attachment=False)  # both rows share one blob
    (Item & {"id": 1}).delete()
    (Item & {"id": 2}).delete()
    [candidate] = gc.plan(tracking, 0).candidates
    assert candidate.last_key == {"id": 2}
    gc.collect(tracking, 0)
    history = history_table(tracking.connection, tracking.database, STORE)
    left = {h.bytes for h in history.fetch("hash")}
    assert left <= {SENTINEL}


def test_uuid_and_long_keys_are_recorded_without_failing_the_delete(
    make_schema, store_spec, backend
):
    schema = make_schema("k")
    length = 700 if backend == "mysql" else 4000  # MySQL keys are at most 3072 bytes

    @schema
    class Keyed(dj.Manual):
        definition = f"""
        token : uuid
        label : varchar({length})
        ---
        b : blob@{STORE}
        """

    token = uuid.uuid4()
    label = '"' * length  # every character escaped in JSON
    Keyed.insert1({"token": token, "label": label, "b": blob(3)})
    Keyed.delete()
    [candidate] = gc.plan(schema.external[STORE], 0).candidates
    assert candidate.last_reference.endswith("keyed.b")
    if backend == "mysql":
        assert candidate.last_key == {"token": token.hex, "label": label}
    else:  # longer than key_json holds: kept as truncated text
        assert isinstance(candidate.last_key, str)
        assert candidate.last_key.startswith('{"token":') and len(candidate.last_key) == 4000


def test_a_reference_the_catalog_missed_fails_the_page_before_any_file_goes(pipe, monkeypatch):
    Item, tracking = pipe["Item"], pipe["tracking"]
    fill(pipe, range(3), with_attachment=False)
    before = keys_in_store(tracking)
    monkeypatch.setattr(type(tracking), "references", property(lambda self: []))

    report = gc.collect(tracking, 0)  # every row looks unused without the references

    assert report.count == 3 and report.deleted_rows == 0 and len(report.errors) == 3
    assert keys_in_store(tracking) == before
    assert len(tracking) == 3
    monkeypatch.undo()
    for row in Item.fetch(as_dict=True):
        np.testing.assert_array_equal(row["b"], blob(row["content"]))


def test_datajoint_api_unused_used_delete(pipe):
    Item, tracking = pipe["Item"], pipe["tracking"]
    fill(pipe, range(4))
    (Item & "id < 2").delete()
    assert len(tracking.unused()) == 4 and len(tracking.used()) == 4
    unused_keys = {str(p) for _, p in tracking.unused().fetch_external_paths()}
    with pytest.raises(dj.DataJointError):
        tracking.delete()

    assert tracking.delete(delete_external_files=False) == []
    assert len(tracking) == 4  # rows gone, files stay (orphans now)
    in_store = {str(tracking.full_path(k)) for k in keys_in_store(tracking)}
    assert unused_keys <= in_store

    fill(pipe, [9], content=lambda i: 2)
    (Item & {"id": 9}).delete()
    assert tracking.delete(delete_external_files=True) == []
    assert len(tracking.unused()) == 0 and len(tracking) == 4


def test_run_gc_dry_run_then_sweep_with_progress(pipe):
    Item, tracking, schema = pipe["Item"], pipe["tracking"], pipe["schema"]
    fill(pipe, range(3))
    Item.delete()
    events = []

    dry = gc.run_gc(schema.database, STORE, 0, dry_run=True, progress=lambda *e: events.append(e))
    assert dry["unused"]["count"] == 6 and not dry["unused"]["swept"]
    assert dry["orphans"] is None and "would remove 6 objects" in dry["text"]
    assert len(tracking) == 6
    assert ("plan", 6, None) in events

    done = gc.run_gc(schema.database, STORE, 0, dry_run=False, delete_orphans=True,
                     progress=lambda *e: events.append(e))
    json.dumps(done)
    assert done["unused"]["deleted_rows"] == 6 and done["unused"]["deleted_files"] == 6
    assert done["orphans"]["count"] == 0
    assert ("sweep", 6, 6) in events
    assert len(tracking) == 0 and keys_in_store(tracking) == set()


def test_log_progress_logs_at_most_every_interval(caplog):
    report = gc.log_progress(every=3600)
    with caplog.at_level("INFO", logger="dj_flows.gc"):
        report("sweep", 1, 10)
        report("sweep", 2, 10)
        report("sweep", 10, 10)
    assert [r.getMessage() for r in caplog.records] == ["gc sweep: 1/10", "gc sweep: 10/10"]


def test_negative_grace_is_refused(pipe):
    with pytest.raises(dj.DataJointError, match="grace"):
        gc.plan(pipe["tracking"], -1)
