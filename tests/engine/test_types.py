"""Every declarable type round-trips its values on both backends, with DataJoint 0.14's Python types,
and out-of-range or ill-typed values fail with a DataValueError naming the attribute."""

from __future__ import annotations

import datetime
import decimal
import uuid
from types import SimpleNamespace

import numpy as np
import pytest

import dj_flows as dj
from dj_flows.errors import DataValueError, DeclarationError

try:
    from dj_flows.codecs import blob as _blob_codec  # noqa: F401 - lands from the codec helper

    HAVE_BLOB = True
except ImportError:  # pragma: no cover - only while the codec is missing
    HAVE_BLOB = False
needs_blob = pytest.mark.skipif(not HAVE_BLOB, reason="dj_flows.codecs.blob (the blob codec) is not there yet")

INT_TYPES = {
    "t": ("tinyint", -128, 127),
    "tu": ("tinyint unsigned", 0, 255),
    "s": ("smallint", -32768, 32767),
    "su": ("smallint unsigned", 0, 65535),
    "m": ("mediumint", -8388608, 8388607),
    "mu": ("mediumint unsigned", 0, 16777215),
    "i": ("int", -(2**31), 2**31 - 1),
    "iu": ("int unsigned", 0, 2**32 - 1),
    "b": ("bigint", -(2**63), 2**63 - 1),
}


@pytest.fixture(scope="module")
def db(make_schema):
    schema = make_schema("types")
    int_lines = "\n".join(f"{name} : {declared}" for name, (declared, _, _) in INT_TYPES.items())

    @schema
    class Ints(dj.Manual):
        definition = f"""
        id : int
        ---
        {int_lines}
        bu = null : bigint unsigned
        flag = 0 : bool
        """

    @schema
    class Numbers(dj.Manual):
        definition = """
        id : int
        ---
        f : float
        d : double
        dec : decimal(8,3)
        dec0 = 0 : decimal(5)
        fu = null : float unsigned
        """

    @schema
    class Texts(dj.Manual):
        definition = """
        id : int
        ---
        c : char(4)
        v : varchar(40)
        e : enum('red', 'green', 'it''s')
        """

    @schema
    class Times(dj.Manual):
        definition = """
        id : int
        ---
        day : date
        clock : time
        moment : datetime
        precise = null : datetime(6)
        stamp = CURRENT_TIMESTAMP : timestamp
        """

    @schema
    class Objects(dj.Manual):
        definition = """
        id : uuid
        ---
        doc = null : json
        other = null : uuid
        """

    @schema
    class Defaults(dj.Manual):
        definition = """
        id : int
        ---
        n = 5 : int
        word = "hello" : varchar(10)
        maybe = null : float
        choice = 'b' : enum('a', 'b')
        day = '2020-02-02' : date
        ratio = 0.25 : double
        """

    @schema
    class Keys(dj.Manual):
        definition = """
        name : varchar(16)
        day : date
        kind : enum('x', 'y')
        ---
        value : int
        """

    tables = dict(schema=schema, Ints=Ints, Numbers=Numbers, Texts=Texts, Times=Times,
                  Objects=Objects, Defaults=Defaults, Keys=Keys)
    if HAVE_BLOB:

        @schema
        class Files(dj.Manual):
            definition = """
            id : int
            ---
            data = null : longblob
            small = null : blob
            doc = null : attach
            """

        tables["Files"] = Files
    return SimpleNamespace(**tables)


def test_integer_ranges_round_trip(db, backend):
    low = {"id": 1, **{n: lo for n, (_, lo, _) in INT_TYPES.items()}, "bu": 0, "flag": False}
    high = {"id": 2, **{n: hi for n, (_, _, hi) in INT_TYPES.items()}, "flag": True}
    high["bu"] = 2**64 - 1 if backend == "mysql" else 2**63 - 1
    db.Ints.insert([low, high])
    rows = db.Ints.fetch(order_by="id")
    assert rows.dtype["i"] == np.int64 and rows.dtype["iu"] == np.int64
    assert rows.dtype["bu"].kind == "O"  # nullable integers come back as objects (DataJoint's rule)
    for name in INT_TYPES:
        assert rows[name].tolist() == [low[name], high[name]], name
    assert rows["bu"].tolist() == [0, high["bu"]]
    assert rows["flag"].tolist() == [0, 1]
    assert (db.Ints & {"id": 2}).fetch1("bu") == high["bu"]


@pytest.mark.parametrize("name", list(INT_TYPES))
@pytest.mark.parametrize("side", ["below", "above"])
def test_integer_out_of_range(db, name, side):
    declared, low, high = INT_TYPES[name]
    row = {"id": 100, **{n: 0 for n in INT_TYPES}}
    row[name] = low - 1 if side == "below" else high + 1
    with pytest.raises(DataValueError, match=rf"'{name}'.*{declared}"):
        db.Ints.insert1(row)
    assert not db.Ints & {"id": 100}


def test_bigint_unsigned_beyond_int64_on_sqlite(db, backend):
    row = {"id": 101, **{n: 0 for n in INT_TYPES}, "bu": 2**64 - 1}
    if backend == "sqlite":
        with pytest.raises(DataValueError, match="'bu'"):
            db.Ints.insert1(row)
    else:
        db.Ints.insert1(row)
        assert (db.Ints & {"id": 101}).fetch1("bu") == 2**64 - 1
        (db.Ints & {"id": 101}).delete_quick()


@pytest.mark.parametrize("value", ["abc", 1.5, [1], b"1"])
def test_integer_wrong_type(db, value):
    with pytest.raises(DataValueError, match="'t'.*integer"):
        db.Ints.insert1({"id": 102, **{n: 0 for n in INT_TYPES}, "t": value})


def test_numpy_and_text_integers_accepted(db):
    row = {"id": 103, **{n: np.int16(3) for n in INT_TYPES}, "t": "7", "tu": np.uint8(200), "s": 4.0}
    db.Ints.insert1(row)
    got = (db.Ints & {"id": 103}).fetch1()
    assert (got["t"], got["tu"], got["s"], got["i"]) == (7, 200, 4, 3)
    (db.Ints & {"id": 103}).delete_quick()


def test_floats_and_decimals(db):
    third = 1 / 3
    db.Numbers.insert1({"id": 1, "f": 1.5, "d": third, "dec": decimal.Decimal("12345.678"), "fu": 2.25})
    db.Numbers.insert1({"id": 2, "f": -0.125, "d": 1e300, "dec": 1.2345, "dec0": 99999})
    db.Numbers.insert1({"id": 3, "f": np.float32(2.5), "d": np.float64(-2.0), "dec": "-0.001"})
    rows = db.Numbers.fetch(order_by="id")
    assert rows.dtype["f"] == np.float64 and rows.dtype["d"] == np.float64
    assert rows["f"].tolist() == [1.5, -0.125, 2.5]
    assert rows["d"].tolist() == [third, 1e300, -2.0]
    assert rows["dec"].tolist() == [decimal.Decimal("12345.678"), decimal.Decimal("1.235"), decimal.Decimal("-0.001")]
    assert all(isinstance(v, decimal.Decimal) for v in rows["dec"])
    assert rows["dec0"].tolist() == [0, 99999, 0]
    assert rows["fu"][0] == 2.25 and np.isnan(rows["fu"][1])  # NULL floats come back as NaN


def test_decimals_compare_and_sort_as_numbers(db):
    ids = db.Numbers.fetch("id", order_by="dec").tolist()
    assert ids == [3, 2, 1]  # -0.001 < 1.235 < 12345.678
    assert sorted((db.Numbers & "`dec` > 5").fetch("id").tolist()) == [1]
    assert sorted((db.Numbers & "`dec` > 1.2").fetch("id").tolist()) == [1, 2]
    assert (db.Numbers & {"dec": decimal.Decimal("1.235")}).fetch1("id") == 2
    assert (db.Numbers & {"dec": "12345.678"}).fetch1("id") == 1
    got = db.Numbers.proj(twice="`dec` * 2").fetch("twice", order_by="id").tolist()
    assert [round(float(v), 3) for v in got] == [24691.356, 2.47, -0.002]


@pytest.mark.parametrize(
    "change, match",
    [
        ({"dec": 123456.5}, "'dec'"),  # 9 digits in decimal(8,3)
        ({"dec": "abc"}, "'dec'"),
        ({"dec0": 123456}, "'dec0'"),
        ({"f": "fast"}, "'f'"),
        ({"d": float("inf")}, "'d'"),
        ({"fu": -1.0}, "'fu'"),
    ],
)
def test_bad_numbers(db, change, match):
    row = {"id": 50, "f": 1.0, "d": 1.0, "dec": 1, **change}
    with pytest.raises(DataValueError, match=match):
        db.Numbers.insert1(row)
    assert not db.Numbers & {"id": 50}


def test_strings_and_enums(db):
    db.Texts.insert1({"id": 1, "c": "abcd", "v": "naïve 日本語 ✓", "e": "red"})
    db.Texts.insert1({"id": 2, "c": "", "v": "x" * 40, "e": "it's"})
    db.Texts.insert1({"id": 3, "c": "ab   ", "v": "quote ' and \" and \\ and %s", "e": "green"})
    rows = db.Texts.fetch(as_dict=True, order_by="id")
    assert [r["c"] for r in rows] == ["abcd", "", "ab"]  # CHAR drops trailing spaces, as on MySQL
    assert rows[0]["v"] == "naïve 日本語 ✓"
    assert rows[1]["v"] == "x" * 40
    assert rows[2]["v"] == "quote ' and \" and \\ and %s"
    assert [r["e"] for r in rows] == ["red", "it's", "green"]
    assert len(db.Texts & {"e": "it's"}) == 1
    assert len(db.Texts & "e = 'green'") == 1


@pytest.mark.parametrize(
    "change, match",
    [({"c": "abcde"}, "'c'.*char\\(4\\)"), ({"v": "y" * 41}, "'v'"), ({"e": "blue"}, "'e'.*red"), ({"v": b"bytes"}, "'v'")],
)
def test_bad_strings(db, change, match):
    with pytest.raises(DataValueError, match=match):
        db.Texts.insert1({"id": 9, "c": "a", "v": "b", "e": "red", **change})
    assert not db.Texts & {"id": 9}


def test_temporal_types(db):
    before = datetime.datetime.now().replace(microsecond=0) - datetime.timedelta(seconds=2)
    db.Times.insert1(
        {
            "id": 1,
            "day": datetime.date(2024, 2, 29),
            "clock": datetime.timedelta(hours=25, minutes=3, seconds=4),
            "moment": datetime.datetime(2024, 1, 2, 3, 4, 5),
            "precise": datetime.datetime(2024, 1, 2, 3, 4, 5, 123456),
        }
    )
    db.Times.insert1({"id": 2, "day": "1999-12-31", "clock": "-01:30:00", "moment": "2000-01-01 00:00:01"})
    db.Times.insert1({"id": 3, "day": np.datetime64("2021-06-01"), "clock": 90, "moment": datetime.date(2010, 5, 6)})
    after = datetime.datetime.now() + datetime.timedelta(seconds=2)
    rows = db.Times.fetch(as_dict=True, order_by="id")
    assert [r["day"] for r in rows] == [datetime.date(2024, 2, 29), datetime.date(1999, 12, 31), datetime.date(2021, 6, 1)]
    assert all(type(r["day"]) is datetime.date for r in rows)
    assert [r["clock"] for r in rows] == [
        datetime.timedelta(hours=25, minutes=3, seconds=4),
        -datetime.timedelta(hours=1, minutes=30),
        datetime.timedelta(seconds=90),
    ]
    assert [r["moment"] for r in rows] == [
        datetime.datetime(2024, 1, 2, 3, 4, 5),
        datetime.datetime(2000, 1, 1, 0, 0, 1),
        datetime.datetime(2010, 5, 6),
    ]
    assert rows[0]["precise"] == datetime.datetime(2024, 1, 2, 3, 4, 5, 123456)
    assert rows[1]["precise"] is None
    for row in rows:
        assert isinstance(row["stamp"], datetime.datetime)
        assert before <= row["stamp"] <= after, row["stamp"]


def test_fractional_seconds_follow_declared_precision(db):
    """A fraction finer than the declared precision is cut off before it is stored, as MariaDB cuts it
    (MySQL would round): `datetime` and `time` keep whole seconds, `datetime(6)` keeps microseconds.
    Every backend then stores, restricts and returns the same values."""
    db.Times.insert1(
        {"id": 10, "day": "2020-01-01", "clock": datetime.timedelta(seconds=1, microseconds=900000),
         "moment": datetime.datetime(2020, 1, 1, 0, 0, 0, 400000), "precise": datetime.datetime(2020, 1, 1, 0, 0, 0, 400000)}
    )
    db.Times.insert1(
        {"id": 11, "day": "2020-01-01", "clock": "-00:00:01.7", "moment": datetime.datetime(2020, 1, 1, 0, 0, 1, 999999)}
    )
    rows = (db.Times & "id >= 10").fetch(as_dict=True, order_by="id")
    assert [r["moment"] for r in rows] == [datetime.datetime(2020, 1, 1), datetime.datetime(2020, 1, 1, 0, 0, 1)]
    assert [r["clock"] for r in rows] == [datetime.timedelta(seconds=1), -datetime.timedelta(seconds=1)]
    assert rows[0]["precise"] == datetime.datetime(2020, 1, 1, 0, 0, 0, 400000)
    assert len(db.Times & {"moment": "2020-01-01 00:00:01"}) == 1
    assert len(db.Times & {"moment": datetime.datetime(2020, 1, 1, 0, 0, 1, 300000)}) == 1
    assert len(db.Times & {"clock": "0:00:01", "id": 10}) == 1
    (db.Times & "id >= 10").delete_quick()


@pytest.mark.parametrize(
    "change, match",
    [({"day": "2024-02-30"}, "'day'"), ({"day": "yesterday"}, "'day'"), ({"moment": "2024-13-01 00:00:00"}, "'moment'"),
     ({"clock": [1]}, "'clock'"), ({"clock": "noon"}, "'clock'"), ({"clock": "10:75:00"}, "'clock'"),
     ({"clock": "900:00:00"}, "'clock'"), ({"day": datetime.datetime(2020, 1, 1, 5)}, "'day'")],
)
def test_bad_temporal_values(db, change, match):
    with pytest.raises(DataValueError, match=match):
        db.Times.insert1({"id": 20, "day": "2020-01-01", "clock": "00:00:00", "moment": "2020-01-01 00:00:00", **change})
    assert not db.Times & {"id": 20}


def test_uuid_and_json(db):
    first, second, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    doc = {"name": "x", "values": [1, 2.5, None, True], "nested": {"a": "ü"}}
    db.Objects.insert1({"id": first, "doc": doc, "other": str(other)})
    db.Objects.insert1({"id": str(second), "doc": [1, "two"]})
    db.Objects.insert1({"id": uuid.uuid4(), "doc": None})
    assert (db.Objects & {"id": first}).fetch1("doc") == doc
    got = (db.Objects & {"id": str(first)}).fetch1()
    assert got["id"] == first and isinstance(got["id"], uuid.UUID)
    assert got["other"] == other and isinstance(got["other"], uuid.UUID)
    assert (db.Objects & {"id": second}).fetch1("doc") == [1, "two"]
    assert (db.Objects & {"id": second}).fetch1("other") is None
    assert set(db.Objects.fetch("id")) >= {first, second}
    assert len(db.Objects & [{"id": first}, {"id": second}]) == 2
    with pytest.raises(DataValueError, match="'id'.*UUID"):
        db.Objects.insert1({"id": "not-a-uuid"})
    with pytest.raises(DataValueError, match="'doc'.*JSON"):
        db.Objects.insert1({"id": uuid.uuid4(), "doc": {"bad": object()}})


def test_defaults_and_nulls(db):
    db.Defaults.insert1({"id": 1})
    db.Defaults.insert1({"id": 2, "n": None, "word": None, "maybe": None, "ratio": np.nan})  # None: the default
    db.Defaults.insert1({"id": 3, "n": 7, "word": "bye", "maybe": 0.5, "choice": "a", "day": "2021-01-01", "ratio": 2})
    rows = db.Defaults.fetch(as_dict=True, order_by="id")
    expected_default = {"n": 5, "word": "hello", "maybe": None, "choice": "b", "day": datetime.date(2020, 2, 2), "ratio": 0.25}
    for row in rows[:2]:
        assert {k: row[k] for k in expected_default} == expected_default
    assert rows[2] == {"id": 3, "n": 7, "word": "bye", "maybe": 0.5, "choice": "a",
                       "day": datetime.date(2021, 1, 1), "ratio": 2.0}
    assert np.isnan(db.Defaults.fetch("maybe", order_by="id")[0].astype(float))


def test_non_integer_keys(db):
    db.Keys.insert([("ann", "2020-01-01", "x", 1), ("ann", "2020-01-01", "y", 2), ("bob", datetime.date(2020, 1, 2), "x", 3)])
    assert (db.Keys & {"name": "ann", "day": "2020-01-01", "kind": "y"}).fetch1("value") == 2
    assert (db.Keys & {"day": datetime.date(2020, 1, 2)}).fetch1("name") == "bob"
    keys = db.Keys.fetch("KEY", order_by="KEY")
    assert keys[0] == {"name": "ann", "day": datetime.date(2020, 1, 1), "kind": "x"}


@needs_blob
def test_blobs_round_trip(db):
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    record = {"a": np.array([1, 2, 3]), "b": "text", "c": [1.5, "x"]}
    db.Files.insert1({"id": 1, "data": array, "small": 3.5})
    db.Files.insert1({"id": 2, "data": record})
    db.Files.insert1({"id": 3})
    got = (db.Files & {"id": 1}).fetch1()
    np.testing.assert_array_equal(got["data"], array)
    assert got["data"].dtype == np.float32
    assert got["small"] == 3.5
    second = (db.Files & {"id": 2}).fetch1("data")
    np.testing.assert_array_equal(second["a"], record["a"])
    assert second["b"] == "text" and second["c"] == [1.5, "x"]
    assert (db.Files & {"id": 3}).fetch1("data") is None
    large = np.random.default_rng(0).normal(size=(300, 300))
    db.Files.insert1({"id": 4, "data": large})
    np.testing.assert_array_equal((db.Files & {"id": 4}).fetch1("data"), large)


@needs_blob
def test_internal_attachment_round_trip(db, tmp_path):
    source = tmp_path / "in" / "notes.txt"
    source.parent.mkdir()
    contents = b"attached bytes \x00\xff" * 100
    source.write_bytes(contents)
    db.Files.insert1({"id": 10, "doc": source})
    download = tmp_path / "out"
    download.mkdir()
    path = (db.Files & {"id": 10}).fetch1("doc", download_path=download)
    assert str(path).startswith(str(download))
    assert path.endswith("notes.txt") if isinstance(path, str) else path.name == "notes.txt"
    with open(path, "rb") as handle:
        assert handle.read() == contents
    with pytest.raises(dj.DataJointError, match="'doc'"):
        db.Files.insert1({"id": 11, "doc": tmp_path / "missing.txt"})


def test_blob_and_json_cannot_be_keys(make_schema):
    schema = make_schema("badkey")
    with pytest.raises(DeclarationError, match="blob"):

        @schema
        class BadKey(dj.Manual):
            definition = """
            data : longblob
            """
    assert "bad_key" not in schema.list_tables()
