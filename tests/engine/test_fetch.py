"""fetch() and friends on both backends: records, attributes, dicts, frames, KEY, ordering, limits,
fetch1, head/tail, and the text/HTML preview that follows display.limit."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import dj_flows as dj
from dj_flows.errors import DataJointError, MissingAttributeError, QueryError

ROWS = [(i, f"n{i:02d}", "F" if i % 2 else "M", i * 1.5, datetime.date(2020, 1, i)) for i in range(1, 21)]


@pytest.fixture(scope="module")
def db(make_schema):
    schema = make_schema("f")

    @schema
    class Item(dj.Manual):
        definition = """
        # things to fetch
        item_id : int
        ---
        name : varchar(8)
        grp : enum('F', 'M')
        value : double
        day : date
        """

    @schema
    class Empty(dj.Manual):
        definition = """
        k : int
        ---
        v : float
        """

    @schema
    class Holder(dj.Manual):
        definition = """
        h : int
        ---
        payload = null : longblob
        """

    Item.insert(ROWS)
    return SimpleNamespace(schema=schema, Item=Item, Empty=Empty, Holder=Holder)


def test_fetch_records(db):
    rows = db.Item.fetch()
    assert isinstance(rows, np.ndarray) and rows.dtype.names == ("item_id", "name", "grp", "value", "day")
    assert rows.dtype["item_id"] == np.int64 and rows.dtype["value"] == np.float64
    assert len(rows) == 20
    first = rows[rows["item_id"] == 1][0]
    assert (first["name"], first["grp"], first["value"], first["day"]) == ("n01", "F", 1.5, datetime.date(2020, 1, 1))


def test_fetch_attributes(db):
    names = db.Item.fetch("name", order_by="item_id")
    assert isinstance(names, np.ndarray) and names.tolist()[:3] == ["n01", "n02", "n03"]
    ids, values = db.Item.fetch("item_id", "value", order_by="item_id")
    assert ids.tolist() == list(range(1, 21)) and values[-1] == 30.0
    keys = db.Item.fetch("KEY", order_by="item_id")
    assert keys[:2] == [{"item_id": 1}, {"item_id": 2}]
    keys, names = db.Item.fetch("KEY", "name", order_by="item_id", limit=2)
    assert keys == [{"item_id": 1}, {"item_id": 2}] and names.tolist() == ["n01", "n02"]
    with pytest.raises(MissingAttributeError, match="nothing"):
        db.Item.fetch("nothing")


def test_fetch_dicts_and_frames(db):
    dicts = (db.Item & "item_id < 3").fetch(as_dict=True, order_by="item_id")
    assert dicts == [
        {"item_id": 1, "name": "n01", "grp": "F", "value": 1.5, "day": datetime.date(2020, 1, 1)},
        {"item_id": 2, "name": "n02", "grp": "M", "value": 3.0, "day": datetime.date(2020, 1, 2)},
    ]
    assert (db.Item & "item_id < 3").fetch("name", as_dict=True, order_by="item_id") == [
        {"name": "n01"}, {"name": "n02"}]
    frame = db.Item.fetch(format="frame", order_by="item_id")
    assert isinstance(frame, pd.DataFrame) and frame.index.name == "item_id"
    assert list(frame.columns) == ["name", "grp", "value", "day"]
    assert frame.loc[3, "name"] == "n03"
    columns = db.Item.fetch("name", "value", format="frame", order_by="item_id")
    assert list(columns.columns) == ["name", "value"] and len(columns) == 20
    with dj.config(fetch_format="frame"):
        assert isinstance(db.Item.fetch(), pd.DataFrame)
    assert isinstance(db.Item.fetch(), np.ndarray)
    with pytest.raises(QueryError):
        db.Item.fetch(format="list")


def test_fetch_empty(db):
    rows = db.Empty.fetch()
    assert len(rows) == 0 and rows.dtype.names == ("k", "v")
    assert db.Empty.fetch(as_dict=True) == []
    assert db.Empty.fetch("KEY") == []
    assert len(db.Empty.fetch("v")) == 0
    frame = db.Empty.fetch(format="frame")
    assert len(frame) == 0 and list(frame.columns) == ["v"]


def test_order_limit_offset(db):
    assert db.Item.fetch("item_id", order_by="item_id DESC", limit=3).tolist() == [20, 19, 18]
    assert db.Item.fetch("item_id", order_by="KEY DESC", limit=2).tolist() == [20, 19]
    assert db.Item.fetch("item_id", order_by=("grp", "item_id desc"), limit=3).tolist() == [19, 17, 15]
    assert db.Item.fetch("item_id", order_by="value", limit=5, offset=5).tolist() == [6, 7, 8, 9, 10]
    assert db.Item.fetch("item_id", limit=3).tolist() == [1, 2, 3]  # a limit orders by the key
    assert db.Item.fetch("item_id", limit=0).tolist() == []
    with pytest.raises(QueryError, match="limit"):
        db.Item.fetch(offset=3)
    with pytest.raises(QueryError):
        db.Item.fetch(limit=-1)
    with pytest.raises(QueryError):
        db.Item.fetch(order_by="name; DROP TABLE x")


def test_fetch1(db):
    one = db.Item & {"item_id": 4}
    assert one.fetch1() == {"item_id": 4, "name": "n04", "grp": "M", "value": 6.0, "day": datetime.date(2020, 1, 4)}
    assert one.fetch1("name") == "n04"
    assert one.fetch1("name", "value") == ("n04", 6.0)
    assert one.fetch1("KEY") == {"item_id": 4}
    assert one.fetch1("KEY", "grp") == ({"item_id": 4}, "M")
    with pytest.raises(DataJointError, match="exactly one.*0 rows"):
        (db.Item & {"item_id": 99}).fetch1()
    with pytest.raises(DataJointError, match="exactly one.*10 rows"):
        (db.Item & {"grp": "F"}).fetch1()
    with pytest.raises(DataJointError, match="exactly one.*20 rows"):
        db.Item.fetch1("name")


def test_head_and_tail(db):
    assert db.Item.head(3)["item_id"].tolist() == [1, 2, 3]
    assert db.Item.tail(2)["item_id"].tolist() == [19, 20]
    assert [r["item_id"] for r in db.Item.head(2, as_dict=True)] == [1, 2]
    assert len(db.Item.head()) == 20 and len(db.Item.tail()) == 20


def test_preview_follows_display_limit(db):
    with dj.config(display__limit=5):
        text = repr(db.Item())
    lines = text.splitlines()
    assert lines[0] == "# things to fetch"
    assert "*item_id" in lines[1] and "name" in lines[1]
    body = [line for line in lines if line.strip().startswith(("n0", "1 ", "2 ", "3 ", "4 ", "5 ", "6 "))]
    assert len(body) == 5
    assert "..." in text and "Total: 20" in text
    with dj.config(display__limit=50):
        full = repr(db.Item())
    assert "..." not in full and "n20" in full
    assert "Total: 1" in repr(db.Item & {"item_id": 7})
    html = db.Item()._repr_html_()
    assert html.count("<tr>") == 1 + dj.config["display.limit"] and "Total: 20" in html
    with dj.config(display__show_tuple_count=False):
        assert "Total" not in repr(db.Item())


def test_preview_hides_blobs(db):
    db.Holder.insert1({"h": 1, "payload": np.arange(3)})
    text = repr(db.Holder())
    assert "=BLOB=" in text and "Total: 1" in text
    assert "=BLOB=" in repr(db.Holder.proj("payload"))


def test_preview_of_expressions(db):
    text = repr(db.Item.proj(twice="value * 2") & "item_id = 2")
    assert "twice" in text and "6.0" in text
    assert "Total: 2" in repr(db.Item.aggr(db.Item.proj(g2="grp"), n="count(*)") & "item_id < 3")
