"""Export -> Parquet -> import on both backends: every column kind keeps its dtype, shape and value;
the file opens in plain pyarrow and pandas; provenance, paging, layouts and partitioning."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import dj_flows as dj
from dj_flows import export
from dj_flows.codecs.matlab import MatStruct
from dj_flows.errors import DataJointError, DataValueError
from tests.codec.same import assert_same

DEFINITION = """
subject : varchar(16)
trial : int unsigned
---
small : tinyint
big : bigint unsigned
x : float
y : double
money : decimal(10,2)
label : enum('go','stop')
day : date
at : datetime
span : time
token : uuid
meta : json
note = null : varchar(100)
image : longblob          # one shape: fixed_shape_tensor
ragged : longblob         # varying shape
wave : longblob           # complex
params : longblob         # dict -> struct
mat : longblob            # MATLAB struct
cell = null : longblob    # lists: kept as blob bytes
gain : longblob           # numpy scalar
doc : attach
"""


def matstruct(**fields):
    record = np.empty(1, [(name, object) for name in fields])
    for name, value in fields.items():
        record[name][0] = value
    return record.reshape((1, 1), order="F").view(MatStruct)


def make_rows(folder: Path, count: int = 7) -> list[dict]:
    rng = np.random.default_rng(7)
    rows = []
    for i in range(count):
        doc = folder / f"doc{i}" / ("notes.txt" if i % 2 else "scan.bin")
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_bytes(rng.bytes(100 + i))
        rows.append(
            dict(
                subject=f"s{i % 3}",
                trial=i,
                small=-i,
                big=2**63 - 1 - i,
                x=0.5 * i,
                y=np.pi * i,
                money=decimal.Decimal(f"{i}.25"),
                label="go" if i % 2 else "stop",
                day=datetime.date(2024, 1, 1 + i),
                at=datetime.datetime(2024, 1, 1, 12, i, 30),
                span=datetime.timedelta(hours=-i, minutes=5),
                token=uuid.UUID(int=i + 1),
                meta={"i": i, "tags": ["a", "b"]},
                note=None if i % 3 == 0 else f"note {i}",
                image=rng.standard_normal((4, 5)).astype("f4"),
                ragged=np.arange((i + 1) * 2, dtype="i2").reshape(i + 1, 2),
                wave=(rng.standard_normal(6) + 1j * rng.standard_normal(6)).astype("c16"),
                params={"gain": float(i), "window": np.arange(3, dtype="f8") + i},
                mat=matstruct(a=np.array([[float(i)]]), name=f"m{i}"),
                cell=None if i == 2 else [i, "x", np.ones(2)],
                gain=np.float32(i / 2),
                doc=str(doc),
            )
        )
    return rows


@pytest.fixture(scope="module")
def db(make_schema, tmp_path_factory):
    schema = make_schema("x")

    @schema
    class Kinds(dj.Manual):
        definition = DEFINITION

    @schema
    class KindsCopy(dj.Manual):
        definition = DEFINITION

    @schema
    class Subject(dj.Lookup):
        definition = """
        subject : varchar(16)
        """
        contents = [("s0",), ("s1",), ("s2",), ("s9",)]

    @schema
    class Shapes(dj.Manual):
        definition = """
        k : int
        ---
        arr = null : longblob
        """

    folder = tmp_path_factory.mktemp("docs")
    rows = make_rows(folder)
    Kinds.insert(rows)
    Shapes.insert(
        [dict(k=i, arr=np.ones((3, 3)) if i < 6 else np.ones((2, 7))) for i in range(8)]
        + [dict(k=8)]
    )
    return SimpleNamespace(
        schema=schema,
        Subject=Subject,
        Kinds=Kinds,
        KindsCopy=KindsCopy,
        Shapes=Shapes,
        rows=rows,
        tmp=tmp_path_factory.mktemp("out"),
    )


def fetched(table, download_path):
    rows = table.fetch(as_dict=True, order_by="KEY", download_path=str(download_path))
    for row in rows:
        row["doc"] = (Path(row["doc"]).name, Path(row["doc"]).read_bytes())
    return rows


@pytest.fixture
def clean_copy(db):
    db.KindsCopy.delete_quick()
    yield db.KindsCopy
    db.KindsCopy.delete_quick()


def test_parquet_roundtrip_preserves_every_kind(db, clean_copy, tmp_path):
    target = tmp_path / "kinds.parquet"
    result = export.to_parquet(db.Kinds, target, attachment_bytes=True, batch_rows=3)
    assert result.rows == len(db.rows) and result.files == [str(target)]
    imported = export.import_parquet(target, clean_copy)
    assert imported.rows == len(db.rows) and imported.row_groups == 3
    original, copy = fetched(db.Kinds, tmp_path / "a"), fetched(clean_copy, tmp_path / "b")
    assert len(copy) == len(original)
    for a, b in zip(original, copy):
        assert_same(a, b)


def test_file_opens_in_plain_pyarrow_and_pandas(db, tmp_path):
    target = tmp_path / "kinds.parquet"
    export.to_parquet(db.Kinds, target)
    table = pq.read_table(target)
    types = {f.name: f.type for f in table.schema}
    assert isinstance(types["image"], pa.FixedShapeTensorType) and types["image"].shape == [4, 5]
    assert types["image"].value_type == pa.float32()
    assert types["ragged"].names == ["data", "shape"]
    assert types["wave"].names == ["real", "imag"]
    assert types["params"].names == ["gain", "window"] and types["mat"].names == ["a", "name"]
    assert types["cell"] == pa.large_binary()
    assert types["doc"].names == ["name", "hash", "size", "uri"]
    assert types["token"] == pa.uuid() and types["meta"] == pa.json_()
    assert (
        types["money"] == pa.decimal128(10, 2)
        and types["big"] == pa.uint64()
        and types["small"] == pa.int8()
    )
    assert (
        types["day"] == pa.date32()
        and types["at"] == pa.timestamp("us")
        and types["span"] == pa.duration("us")
    )
    assert pa.types.is_dictionary(types["label"])
    images = table.column("image").combine_chunks().to_numpy_ndarray()
    expected = db.Kinds.fetch("image", order_by="KEY")
    assert images.dtype == np.float32 and np.array_equal(images, np.stack(expected))

    frame = pd.read_parquet(target)
    assert len(frame) == len(db.rows)
    assert np.array_equal(frame["image"][2].reshape(4, 5), expected[2])
    ragged = frame["ragged"][3]
    assert np.array_equal(
        ragged["data"].reshape(ragged["shape"]), db.Kinds.fetch("ragged", order_by="KEY")[3]
    )
    back = export.read_pandas(target)
    for name in ("image", "ragged", "wave", "params", "mat", "cell", "gain"):
        for a, b in zip(back[name], db.Kinds.to_pandas()[name]):
            assert_same(a, b)
    rows = db.Kinds.proj(..., "-doc").fetch(
        as_dict=True, order_by="KEY"
    )  # s0: 0, 3, 6; s1: 1, 4; s2: 2, 5
    assert [r["trial"] for r in rows] == list(frame["trial"]) == [0, 3, 6, 1, 4, 2, 5]
    assert list(frame["token"]) == [r["token"] for r in rows]
    assert [json.loads(m) for m in frame["meta"]] == [r["meta"] for r in rows]
    assert list(frame["span"]) == [pd.Timedelta(r["span"]) for r in rows]
    assert list(frame["money"]) == [r["money"] for r in rows]


def test_provenance_records_source_query_and_count(db, tmp_path):
    target = tmp_path / "restricted.parquet"
    query = db.Kinds & "trial > 2" & {"subject": "s1"}
    export.to_parquet(query, target)
    record = export.read_provenance(target)
    assert record["row_count"] == len(query) == 1  # s1: trials 1 and 4
    assert json.loads(pq.ParquetFile(target).metadata.metadata[b"dj_flows"]) == record
    assert record["format"] == "dj_flows.export" and record["engine"]["version"] == dj.__version__
    assert record["backend"] == dj.conn().backend.name
    [source] = record["source"]["tables"]
    assert (source["schema"], source["table"]) == (db.schema.database, "kinds")
    assert "ragged : longblob" in source["definition"]
    assert record["primary_key"] == ["subject", "trial"]
    assert "trial > 2" in record["query"]["sql"] and record["query"]["params"] == ["s1"]
    assert [r["sql"] for r in record["query"]["restriction"]][0] == "trial > 2"
    assert datetime.datetime.fromisoformat(record["exported_at"]).tzinfo is not None
    in_memory = query.to_arrow()
    assert json.loads(in_memory.schema.metadata[b"dj_flows"])["row_count"] == len(query)


def test_to_pandas_and_to_arrow_agree_with_fetch(db):
    frame = db.Kinds.to_pandas()
    # as dicts: a fetched frame would turn np.float32 into float
    reference = db.Kinds.proj(..., "-doc").fetch(as_dict=True, order_by="KEY")
    assert list(frame.index.names) == ["subject", "trial"] and len(frame) == len(reference)
    for name in ("image", "ragged", "wave", "gain", "params", "mat", "cell", "money"):
        for a, row in zip(frame[name], reference):
            assert_same(a, row[name])
    table = (db.Kinds & "trial < 3").to_arrow()
    assert table.column("trial").to_pylist() == [0, 1, 2]


def test_query_expressions_export_like_they_fetch(db, tmp_path):
    queries = [
        db.Kinds.proj("image", double="2 * y"),
        db.Kinds.proj(renamed="x") & "trial >= 1",
        db.Kinds.proj("label") * db.Shapes.proj("arr", trial="k"),
        db.Subject.aggr(db.Kinds, n="count(*)", top="max(y)"),
        db.Kinds - {"subject": "s0"},
    ]
    for query in queries:
        table = export.to_arrow(query, batch_rows=2)
        rows = query.fetch(as_dict=True, order_by="KEY", download_path=str(tmp_path))
        assert table.num_rows == len(rows)
        exported = export.table_to_pandas(table, index=False).to_dict("records")
        for a, b in zip(rows, exported):
            for name in a:
                if name == "doc":
                    assert (
                        Path(a[name]).read_bytes()[:0] == b""
                        and b[name]["size"] == Path(a[name]).stat().st_size
                    )
                elif isinstance(a[name], np.ndarray):
                    assert_same(a[name], b[name])
                elif isinstance(a[name], float | int) and not isinstance(a[name], bool):
                    assert float(a[name]) == pytest.approx(float(b[name]))
                else:
                    assert str(a[name]) == str(b[name]) or a[name] == b[name]


def test_pages_follow_the_key_without_gaps_or_repeats(db):
    keys = db.Kinds.fetch("KEY", order_by="KEY")
    for rows, ahead in [(1, False), (2, False), (3, True), (100, True), (2, True)]:
        batches = list(export.to_batches(db.Kinds.proj(), batch_rows=rows, read_ahead=ahead))
        assert [b.num_rows for b in batches[:-1]] == [rows] * (len(batches) - 1)
        got = [
            dict(subject=s, trial=t)
            for b in batches
            for s, t in zip(b.column("subject").to_pylist(), b.column("trial").to_pylist())
        ]
        assert got == keys
    small = list(export.to_batches(db.Kinds.proj("image"), batch_bytes=300))  # ~140 bytes a row
    assert [b.num_rows for b in small] == [2, 2, 2, 1]


def test_a_later_shape_widens_the_layout(db, tmp_path):
    with pytest.raises(export.ExportLayoutError, match="arr"):
        list(export.to_batches(db.Shapes, batch_rows=4))
    table = export.to_arrow(db.Shapes, batch_rows=4)  # starts over with a variable-shape column
    layout = export.column_layouts(table.schema)["arr"]
    assert layout.kind == "var_tensor" and layout.ndim == 2
    arrays = export.table_to_pandas(table, index=False)["arr"]
    assert arrays[7].shape == (2, 7) and arrays[0].shape == (3, 3) and arrays[8] is None
    hinted = list(export.to_batches(db.Shapes, batch_rows=4, layouts={"arr": "variable"}))
    assert len(hinted) == 3
    target = tmp_path / "shapes.parquet"
    assert export.to_parquet(db.Shapes, target, batch_rows=4).rows == 9
    as_blob = export.to_arrow(db.Shapes, layouts={"arr": "blob"})
    assert as_blob.schema.field("arr").type == pa.large_binary()
    with pytest.raises(DataJointError, match="fixed type"):
        export.to_arrow(db.Shapes, layouts={"k": "blob"})


def test_partitioned_export_and_import(db, clean_copy, tmp_path):
    folder = tmp_path / "by_subject"
    result = export.to_parquet(db.Kinds, folder, partition_by=["subject"], attachment_bytes=True)
    assert sorted(p.name for p in folder.iterdir()) == [
        "_common_metadata",
        "subject=s0",
        "subject=s1",
        "subject=s2",
    ]
    assert result.rows == len(db.rows) and len(result.files) == 3
    assert export.read_provenance(folder)["partition_by"] == ["subject"]
    frame = pd.read_parquet(folder)
    assert len(frame) == len(db.rows)
    export.import_parquet(folder, clean_copy)
    for a, b in zip(fetched(db.Kinds, tmp_path / "a"), fetched(clean_copy, tmp_path / "b")):
        assert_same(a, b)
    with pytest.raises(DataJointError, match="primary-key"):
        export.to_parquet(db.Kinds, tmp_path / "bad", partition_by=["label"])
    back = export.read_pandas(folder)  # partition columns restored with their exported type
    assert list(back.index.names) == ["subject", "trial"] and len(back) == len(db.rows)
    assert export.read_arrow(folder).schema.field("subject").type == pa.string()


def test_attachments_without_bytes_cannot_be_imported(db, clean_copy, tmp_path):
    target = tmp_path / "refs.parquet"
    export.to_parquet(db.Kinds, target)
    docs = pq.read_table(target).column("doc").to_pylist()
    first = db.rows[0]
    assert (
        docs[0]["name"] == Path(first["doc"]).name
        and docs[0]["size"] == Path(first["doc"]).stat().st_size
    )
    assert docs[0]["uri"] is None
    with pytest.raises(DataValueError, match="attachment_bytes=True"):
        export.import_parquet(target, clean_copy)
    assert len(clean_copy) == 0


def test_import_verifies_hashes_and_shapes(db, clean_copy, tmp_path):
    good = tmp_path / "good.parquet"
    export.to_parquet(db.Kinds, good, attachment_bytes=True)
    table = pq.read_table(good)
    metadata = pq.ParquetFile(good).metadata.metadata

    def rewrite(name, column, path):
        tampered = table.set_column(
            table.schema.get_field_index(name), table.schema.field(name), column
        )
        pq.write_table(tampered, path)
        with pq.ParquetWriter(path, tampered.schema) as writer:
            writer.write_table(tampered)
            writer.add_key_value_metadata(
                {k.decode(): v.decode() for k, v in metadata.items() if k != b"ARROW:schema"}
            )

    docs = table.column("doc").combine_chunks()
    contents = docs.field("bytes").to_pylist()
    contents[1] = contents[1][:-1] + b"!"
    forged = pa.StructArray.from_arrays(
        [docs.field(n) for n in ("name", "hash", "size", "uri")]
        + [pa.array(contents, pa.large_binary())],
        fields=list(docs.type),
    )
    rewrite("doc", forged, tmp_path / "bad_hash.parquet")
    with pytest.raises(DataValueError, match="hash"):
        export.import_parquet(tmp_path / "bad_hash.parquet", clean_copy)
    assert len(clean_copy) == 0

    ragged = table.column("ragged").combine_chunks()
    shapes = ragged.field("shape").to_pylist()
    shapes[2] = [shapes[2][1], shapes[2][0] + 1]
    forged = pa.StructArray.from_arrays(
        [ragged.field("data"), pa.array(shapes, ragged.type.field("shape").type)],
        names=["data", "shape"],
    )
    rewrite("ragged", forged, tmp_path / "bad_shape.parquet")
    with pytest.raises(DataJointError, match="shape"):
        export.import_parquet(tmp_path / "bad_shape.parquet", clean_copy)
    assert len(clean_copy) == 0

    truncated = tmp_path / "short.parquet"
    rewrite("trial", table.column("trial"), truncated)
    short = pq.read_table(truncated).slice(0, 3)
    with pq.ParquetWriter(truncated, short.schema) as writer:
        writer.write_table(short)
        writer.add_key_value_metadata({"dj_flows": metadata[b"dj_flows"].decode()})
    with pytest.raises(DataJointError, match="provenance records 7"):
        export.import_parquet(truncated, clean_copy)
    assert len(clean_copy) == 0


def test_empty_result(db, clean_copy, tmp_path):
    target = tmp_path / "empty.parquet"
    result = export.to_parquet(db.Kinds & "trial < 0", target)
    assert result.rows == 0 and pq.read_table(target).num_rows == 0
    assert export.import_parquet(target, clean_copy).rows == 0
    assert export.to_pandas(db.Kinds & "trial < 0").empty


@pytest.mark.parametrize("rows", [1, 2, 3, 5, 8])
def test_parquet_gets_every_row_once_with_read_ahead(db, tmp_path, rows):
    # the writer reads the next pages in the background while it writes: none lost or repeated
    target = tmp_path / f"rows{rows}.parquet"
    result = export.to_parquet(db.Kinds.proj("image", "ragged"), target, batch_rows=rows)
    table = pq.read_table(target)
    keys = db.Kinds.fetch("KEY", order_by="KEY")
    assert result.rows == table.num_rows == len(keys)
    assert [
        dict(subject=s, trial=t)
        for s, t in zip(table.column("subject").to_pylist(), table.column("trial").to_pylist())
    ] == keys
    assert pq.ParquetFile(target).metadata.num_row_groups == -(-len(keys) // rows)
    # row groups written from page-sized chunks hold what record batches hold
    whole = export.to_arrow(db.Kinds.proj("image", "ragged"), batch_rows=rows)
    assert table.equals(whole, check_metadata=False)
