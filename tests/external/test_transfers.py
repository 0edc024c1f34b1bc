"""Moving objects: content is stored once, re-inserting it uploads nothing, many rows move in
concurrent batches (seen as simultaneous connections through a proxy), concurrent inserts of the
same content agree, and an insert that fails half-way leaves no rows behind."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import dj_flows as dj
from dj_flows.errors import BlobError, DataJointError
from dj_flows.stores import Store, clear_store_cache, get_store

from ..support.delay_proxy import DelayProxy
from .helpers import declare_item, objects_under, write

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def schema(stores, make_schema):
    return make_schema("xfer")


@pytest.fixture(scope="module")
def Item(schema):
    return declare_item(schema, blob="b", attach="a", local="f")


@pytest.fixture
def uploads(monkeypatch):
    """Keys written through Store.put_many (a recording pass-through: the real upload happens)."""
    seen: list[str] = []
    put_many = Store.put_many

    def recording(self, items):
        seen.extend(f"{self.name}:{key}" for key in items)
        return put_many(self, items)

    monkeypatch.setattr(Store, "put_many", recording)
    return seen


def s3_state(s3_server, bucket: str, prefix: str) -> dict[str, tuple]:
    """{path: (size, LastModified, ETag)} of the objects under bucket/prefix, from the server."""
    fs = s3_server.filesystem()
    found = fs.find(f"{bucket}/{prefix}", detail=True)
    return {p: (i["size"], i.get("LastModified"), i.get("ETag")) for p, i in found.items()}


def test_same_content_is_stored_once_and_reinserting_uploads_nothing(
    stores, schema, Item, uploads, s3_server, tmp_path
):
    doc = write(tmp_path / "doc.txt", b"shared attachment")
    value = np.arange(100.0)
    Item.insert([{"id": i, "b": value, "a": doc, "f": value} for i in range(5)])
    assert len(uploads) == 3  # one object per distinct content and store, for five rows
    assert len(schema.external["shared"]) == 2 and len(schema.external["local"]) == 1

    prefix = f"djtest/{schema.database}"
    before_s3 = s3_state(s3_server, stores.bucket, prefix)
    local_files = {
        k: (stores.local / k).stat().st_ino for k in objects_under("local", schema.database)
    }
    uploads.clear()
    time.sleep(1.1)  # S3 LastModified has one-second resolution
    Item.insert([{"id": 10 + i, "b": value, "a": doc, "f": value} for i in range(5)])
    Item.insert1({"id": 20, "b": value.copy(), "a": str(doc), "f": value + 0}, skip_duplicates=True)
    assert uploads == []
    assert s3_state(s3_server, stores.bucket, prefix) == before_s3
    assert {k: (stores.local / k).stat().st_ino for k in local_files} == local_files
    assert len(schema.external["shared"]) == 2

    (Item & "id >= 10").delete()
    uploads.clear()
    Item.insert1({"id": 30, "b": value})  # still tracked (unused): no upload either
    assert uploads == []


def test_many_rows_move_in_concurrent_batches(stores, schema, Item, s3_server, tmp_path):
    base = dict(stores.specs["shared"])
    proxies = [DelayProxy(s3_server.port, delay_ms=20), DelayProxy(s3_server.port, delay_ms=20)]
    ports = [p.start() for p in proxies]
    try:
        dj.config["stores"] = {
            **dj.config["stores"],
            "slow": {**base, "endpoint": f"127.0.0.1:{ports[0]}", "location": "slow"},
        }

        @schema
        class Slow(dj.Manual):
            definition = """
            id : int
            ---
            b : blob@slow
            a : attach@slow
            """

        rows = [
            {"id": i, "b": np.full(1000, i), "a": write(tmp_path / f"f{i}.bin", b"%05d" % i * 500)}
            for i in range(96)
        ]
        with dj.config(**{"external.transfer_concurrency": 8}):
            Slow.insert(rows)
            assert proxies[0].max_active >= 4  # uploads overlapped
            dj.config["stores"] = {
                **dj.config["stores"],
                "slow": {**base, "endpoint": f"127.0.0.1:{ports[1]}", "location": "slow"},
            }
            blobs, files = Slow.fetch("b", "a", order_by="id", download_path=tmp_path / "out")
            assert proxies[1].max_active >= 4  # downloads overlapped
        assert [b[0] for b in blobs] == list(range(96))
        assert [open(f, "rb").read() for f in files] == [b"%05d" % i * 500 for i in range(96)]
    finally:
        for proxy in proxies:
            proxy.stop()
        dj.config["stores"] = {k: v for k, v in dj.config["stores"].items() if k != "slow"}
        clear_store_cache()


def test_chunked_insert_and_fetch_keep_every_row_straight(schema, Item, tmp_path):
    """More objects than several chunks hold, with duplicates spread across chunks."""
    rows = [
        {
            "id": 1000 + i,
            "b": np.full(7, i % 37),
            "a": write(tmp_path / f"n{i % 23}.txt", b"name %d" % (i % 23)),
            "f": [i],
        }
        for i in range(300)
    ]
    with dj.config(**{"external.transfer_concurrency": 4}):
        Item.insert(rows)
        b, a, f = (Item & "id >= 1000").fetch(
            "b", "a", "f", order_by="id", download_path=tmp_path / "out"
        )
    assert [v[0] for v in b] == [i % 37 for i in range(300)]
    assert [open(p, "rb").read() for p in a] == [b"name %d" % (i % 23) for i in range(300)]
    assert [list(v) for v in f] == [[i] for i in range(300)]


def test_failure_half_way_leaves_no_rows(schema, Item, tmp_path):
    tracked = len(schema.external["shared"])
    rows = [{"id": 2000 + i, "b": np.full(5, 1000 + i)} for i in range(100)]
    rows[70]["b"] = object()  # cannot be packed, after several chunks went out
    with pytest.raises(BlobError) as info:
        Item.insert(rows)
    assert "'b'" in str(info.value)
    assert not (Item & "id >= 2000 and id < 3000")
    assert len(schema.external["shared"]) == tracked  # uploaded objects are not tracked


def test_concurrent_inserts_of_the_same_content(stores, schema, Item, tmp_path):
    """Threads (each with its own connection) insert rows sharing content; all rows fetch."""
    value = np.arange(64.0) * 3
    doc = write(tmp_path / "same.txt", b"the same for everyone")
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def insert(worker: int) -> None:
        try:
            barrier.wait(30)
            for batch in range(3):
                base = 3000 + worker * 100 + batch * 10
                Item.insert([{"id": base + i, "b": value, "a": doc} for i in range(10)])
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=insert, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    rows = Item & "id >= 3000 and id < 4000"
    assert len(rows) == 90
    blobs, docs = rows.fetch("b", "a", download_path=tmp_path / "out")
    assert all(np.array_equal(b, value) for b in blobs)
    assert {open(d, "rb").read() for d in docs} == {b"the same for everyone"}
    tracking = schema.external["shared"]
    hash_ = (tracking & {"attachment_name": "same.txt"}).fetch1("hash")
    assert get_store("shared").get(tracking.object_key(hash_, "same.txt")) == doc.read_bytes()


def test_insert_errors_are_datajoint_errors(Item):
    with pytest.raises(DataJointError):
        Item.insert1({"id": 4000, "a": "/definitely/not/here.txt"})
