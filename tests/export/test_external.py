"""External objects and remote destinations, on both backends: `blob@store` values fetched and
laid out like internal blobs, `attach@store` exported as name/hash/size/URI (bytes on request) and
imported back from the URI; exports written to S3 through a configured store or storage_options."""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import dj_flows as dj
from dj_flows import export
from dj_flows.stores.layout import attachment_uuid
from tests.codec.same import assert_same

DEFINITION = """
k : int
---
image : blob@local
ragged = null : blob@local
doc : attach@local
"""


@pytest.fixture(scope="module")
def db(make_schema, tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    dj.config["stores"] = {
        "local": {"protocol": "file", "location": str(store)}
    }  # restored by `backend`
    schema = make_schema("e")

    @schema
    class Ext(dj.Manual):
        definition = DEFINITION

    @schema
    class ExtCopy(dj.Manual):
        definition = DEFINITION

    files = tmp_path_factory.mktemp("files")
    rng = np.random.default_rng(3)
    rows = []
    for k in range(5):
        doc = files / str(k) / f"page{k}.txt"
        doc.parent.mkdir()
        doc.write_bytes(rng.bytes(50 + k))
        rows.append(
            dict(
                k=k,
                image=rng.standard_normal((3, 2)).astype("f8"),
                ragged=None if k == 1 else np.ones((k, 2), "u1"),
                doc=str(doc),
            )
        )
    Ext.insert(rows)
    return SimpleNamespace(Ext=Ext, ExtCopy=ExtCopy, rows=rows, store=store)


def fetched(table, folder):
    rows = table.fetch(as_dict=True, order_by="KEY", download_path=str(folder))
    for row in rows:
        row["doc"] = (Path(row["doc"]).name, Path(row["doc"]).read_bytes())
    return rows


@pytest.fixture
def clean_copy(db):
    db.ExtCopy.delete()
    yield db.ExtCopy
    db.ExtCopy.delete()


def test_external_blobs_take_the_layouts_of_their_values(db):
    table = db.Ext.to_arrow()
    assert isinstance(table.schema.field("image").type, pa.FixedShapeTensorType)
    assert table.schema.field("ragged").type.names == ["data", "shape"]
    frame = db.Ext.to_pandas()
    for row in db.rows:
        assert_same(frame.loc[row["k"], "image"], row["image"])
        assert (
            frame.loc[row["k"], "ragged"] is None
            if row["ragged"] is None
            else np.array_equal(frame.loc[row["k"], "ragged"], row["ragged"])
        )


def test_external_attachments_are_referenced_not_downloaded(db, tmp_path):
    target = tmp_path / "ext.parquet"
    export.to_parquet(db.Ext, target)
    docs = pq.read_table(target).column("doc").to_pylist()
    for row, doc in zip(db.rows, docs):
        contents = Path(row["doc"]).read_bytes()
        assert doc["name"] == Path(row["doc"]).name and doc["size"] == len(contents)
        assert doc["hash"] == attachment_uuid(doc["name"], contents)
        assert doc["uri"].startswith("file://") and str(db.store) in doc["uri"]
        with fsspec.open(doc["uri"], "rb") as stream:  # any fsspec client can follow the URI
            assert stream.read() == contents
    assert "bytes" not in pq.read_schema(target).field("doc").type.names


@pytest.mark.parametrize("with_bytes", [False, True])
def test_external_roundtrip(db, clean_copy, tmp_path, with_bytes):
    target = tmp_path / "ext.parquet"
    export.to_parquet(db.Ext, target, attachment_bytes=with_bytes, batch_rows=2)
    assert export.import_parquet(target, clean_copy).rows == len(db.rows)
    for a, b in zip(fetched(db.Ext, tmp_path / "a"), fetched(clean_copy, tmp_path / "b")):
        assert_same(a, b)


@pytest.fixture(scope="module")
def s3(s3_server, db):  # after db, which sets the stores of this backend
    bucket = s3_server.new_bucket("export")
    stores = dict(dj.config["stores"])
    stores["shared"] = s3_server.store_spec(bucket, "lab/exports")
    dj.config["stores"] = stores
    return SimpleNamespace(server=s3_server, bucket=bucket)


def test_export_to_s3_through_a_configured_store(db, clean_copy, s3, tmp_path):
    result = export.to_parquet(
        db.Ext, f"runs/{uuid.uuid4().hex}.parquet", store="shared", attachment_bytes=True
    )
    [path] = result.files
    assert path.startswith(f"{s3.bucket}/lab/exports/runs/")
    with s3.server.filesystem().open(path, "rb") as stream:
        assert pq.read_table(stream).num_rows == len(db.rows)
    assert export.read_provenance(result.url, store="shared")["row_count"] == len(db.rows)
    export.import_parquet(result.url, clean_copy, store="shared")
    assert len(clean_copy) == len(db.rows)


def test_export_to_an_s3_url_with_storage_options(db, s3):
    options = {
        "key": s3.server.access_key,
        "secret": s3.server.secret_key,
        "client_kwargs": {"endpoint_url": s3.server.url},
    }
    url = f"s3://{s3.bucket}/direct/{uuid.uuid4().hex}"
    single = export.to_parquet(db.Ext, url + ".parquet", storage_options=options)
    folder = export.to_parquet(db.Ext, url, storage_options=options, partition_by=["k"])
    assert single.rows == folder.rows == len(db.rows) and len(folder.files) == len(db.rows)
    fs = s3.server.filesystem()
    with fs.open(single.files[0], "rb") as stream:
        assert pq.read_table(stream).column("k").to_pylist() == [r["k"] for r in db.rows]
    assert export.read_provenance(url, storage_options=options)["partition_by"] == ["k"]
    secret = s3.server.secret_key
    assert secret not in str(export.read_provenance(url + ".parquet", storage_options=options))


def test_batches_are_sized_by_the_external_objects_they_read(db):
    from dj_flows.codecs.blob import pack

    per_row = len(pack(db.rows[0]["image"])) + 16  # the object, plus 8 bytes for each stored value
    batches = list(export.to_batches(db.Ext.proj("image"), batch_bytes=2 * per_row + 10))
    assert [b.num_rows for b in batches] == [2, 2, 1]  # a hash is 16 bytes; the object is not
    references_only = list(export.to_batches(db.Ext.proj("doc"), batch_bytes=2 * per_row + 10))
    assert [b.num_rows for b in references_only] == [5]  # names and hashes only: nothing to read
