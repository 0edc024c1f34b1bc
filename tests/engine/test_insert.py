"""Inserting on both backends: every row form (dicts, sequences, numpy records, DataFrames, fetched
rows), skip_duplicates / ignore_extra_fields / replace, auto_increment, insert from a query, and
all-or-nothing batches."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import dj_flows as dj
from dj_flows.errors import (
    DataValueError,
    DuplicateError,
    IntegrityError,
    MissingAttributeError,
    QueryError,
)


@pytest.fixture(scope="module")
def db(make_schema):
    schema = make_schema("ins")

    @schema
    class Animal(dj.Manual):
        definition = """
        animal_id : int
        ---
        name : varchar(20)
        weight = null : float
        born = null : date
        """

    @schema
    class Copy(dj.Manual):
        definition = """
        animal_id : int
        ---
        name : varchar(20)
        weight = null : float
        """

    @schema
    class Renamed(dj.Manual):
        definition = """
        pet_id : int
        ---
        label : varchar(20)
        heavy : tinyint
        """

    @schema
    class Event(dj.Manual):
        definition = """
        event_id : int unsigned auto_increment
        ---
        -> Animal
        what : varchar(30)
        """

    @schema
    class Setting(dj.Manual):
        definition = """
        setting : int
        ---
        label : varchar(10)
        level = 3 : int
        note = null : varchar(20)
        changed = CURRENT_TIMESTAMP : timestamp
        """

    return SimpleNamespace(schema=schema, Animal=Animal, Copy=Copy, Renamed=Renamed, Event=Event, Setting=Setting)


@pytest.fixture
def empty(db):
    for table in (db.Event, db.Copy, db.Renamed, db.Animal):
        table.delete_quick()
    return db


def test_row_forms(empty):
    db = empty
    db.Animal.insert1({"animal_id": 1, "name": "dict"})
    db.Animal.insert1((2, "tuple", 1.5, "2020-01-01"))
    db.Animal.insert1([3, "list", None, None])
    db.Animal.insert([{"animal_id": 4, "name": "many-a"}, {"animal_id": 5, "name": "many-b", "weight": 2.0}])
    db.Animal.insert(row for row in [(6, "generator", 3.0, None)])
    records = np.array([(7, "rec", 4.0), (8, "rec2", 5.0)], dtype=[("animal_id", "i4"), ("name", "U10"), ("weight", "f8")])
    db.Animal.insert(records)
    db.Animal.insert1(records[0].copy().astype(records.dtype), skip_duplicates=True)
    dated = np.array([(11, "dated", np.datetime64("2022-02-03"))],
                     dtype=[("animal_id", "i8"), ("name", "U10"), ("born", "datetime64[D]")])
    db.Animal.insert(dated)
    assert (db.Animal & {"animal_id": 11}).fetch1("born") == datetime.date(2022, 2, 3)
    (db.Animal & {"animal_id": 11}).delete_quick()
    frame = pd.DataFrame({"animal_id": [9, 10], "name": ["frame-a", "frame-b"], "weight": [np.nan, 6.5],
                          "born": pd.to_datetime(["2021-03-04", None])})
    db.Animal.insert(frame)
    assert len(db.Animal) == 10
    assert (db.Animal & {"animal_id": 2}).fetch1("born") == datetime.date(2020, 1, 1)
    assert (db.Animal & {"animal_id": 9}).fetch1("weight") is None or np.isnan((db.Animal & {"animal_id": 9}).fetch1("weight"))
    assert (db.Animal & {"animal_id": 9}).fetch1("born") == datetime.date(2021, 3, 4)
    assert (db.Animal & {"animal_id": 10}).fetch1("born") is None
    assert (db.Animal & {"animal_id": 8}).fetch1("name") == "rec2"


def test_dataframe_indexed_by_key_and_fetched_frames(empty):
    db = empty
    frame = pd.DataFrame({"animal_id": [1, 2], "name": ["a", "b"], "weight": [1.0, 2.0]}).set_index("animal_id")
    db.Animal.insert(frame)
    fetched = db.Animal.fetch(format="frame")
    assert list(fetched.index) == [1, 2] and fetched.index.name == "animal_id"
    db.Copy.insert(db.Animal.fetch(format="frame"), ignore_extra_fields=True)
    db.Copy.delete_quick()
    db.Copy.insert(db.Animal.fetch(), ignore_extra_fields=True)  # numpy records as fetched
    db.Copy.delete_quick()
    db.Copy.insert(db.Animal.fetch(as_dict=True), ignore_extra_fields=True)
    assert sorted(db.Copy.fetch("name")) == ["a", "b"]


def test_skip_duplicates(empty):
    db = empty
    db.Animal.insert([(1, "one", None, None), (2, "two", None, None)])
    db.Animal.insert([(2, "changed", None, None), (3, "three", None, None)], skip_duplicates=True)
    assert dict(zip(*db.Animal.fetch("animal_id", "name"))) == {1: "one", 2: "two", 3: "three"}
    with pytest.raises(DuplicateError):
        db.Animal.insert1((3, "again", None, None))


def test_replace_updates_in_place(empty):
    db = empty
    db.Animal.insert1({"animal_id": 1, "name": "old", "weight": 1.0})
    db.Event.insert1({"animal_id": 1, "what": "born"})
    db.Animal.insert1({"animal_id": 1, "name": "new", "weight": 2.0}, replace=True)
    assert (db.Animal & {"animal_id": 1}).fetch1("name", "weight") == ("new", 2.0)
    assert len(db.Event & {"animal_id": 1}) == 1  # the dependent row survives: an update, not delete+insert
    db.Animal.insert1({"animal_id": 2, "name": "fresh"}, replace=True)  # replace also inserts
    assert len(db.Animal) == 2
    with pytest.raises(dj.DataJointError, match="replace and skip_duplicates"):
        db.Animal.insert1({"animal_id": 1, "name": "x"}, replace=True, skip_duplicates=True)


def test_ignore_extra_fields(empty):
    db = empty
    with pytest.raises(MissingAttributeError, match="'color'"):
        db.Animal.insert1({"animal_id": 1, "name": "x", "color": "red"})
    db.Animal.insert1({"animal_id": 1, "name": "x", "color": "red"}, ignore_extra_fields=True)
    assert (db.Animal & {"animal_id": 1}).fetch1("name") == "x"


def test_auto_increment(empty):
    db = empty
    db.Animal.insert1({"animal_id": 1, "name": "x"})
    db.Event.insert([{"animal_id": 1, "what": "a"}, {"animal_id": 1, "what": "b"}])
    db.Event.insert1({"event_id": 100, "animal_id": 1, "what": "explicit"})
    db.Event.insert1({"event_id": None, "animal_id": 1, "what": "after"})
    ids = db.Event.fetch("event_id", order_by="event_id").tolist()
    assert ids[1] == ids[0] + 1 and ids[2] == 100 and ids[3] > 100  # the counter survives deletes


def test_insert_from_query(empty):
    db = empty
    db.Animal.insert([(i, f"name{i}", float(i), None) for i in range(1, 6)])
    db.Copy.insert(db.Animal & "animal_id <= 3", ignore_extra_fields=True)
    assert sorted(db.Copy.fetch("animal_id")) == [1, 2, 3]
    with pytest.raises(MissingAttributeError, match="born"):
        db.Copy.insert(db.Animal)
    with pytest.raises(MissingAttributeError, match="'name', which has no default"):
        db.Copy.insert(db.Animal.proj("weight") & "animal_id > 100")  # even when no row would go in
    with pytest.raises(DuplicateError, match="from a query"):
        db.Copy.insert(db.Animal.proj("name", "weight") & "animal_id = 1")
    db.Copy.insert(db.Animal.proj("name", "weight"), skip_duplicates=True)
    assert len(db.Copy) == 5
    with pytest.raises(DuplicateError):
        db.Copy.insert(db.Animal.proj("name", "weight"))
    db.Renamed.insert(db.Animal.proj(pet_id="animal_id", label="name", heavy="weight > 2"))
    assert dict(zip(*db.Renamed.fetch("pet_id", "heavy"))) == {1: 0, 2: 0, 3: 1, 4: 1, 5: 1}
    db.Copy.insert(db.Animal.proj("name", weight="weight * 10"), replace=True)
    assert (db.Copy & {"animal_id": 2}).fetch1("weight") == 20.0
    db.Copy.delete_quick()
    db.Copy.insert(db.Animal.proj("name", "weight") & (db.Renamed & "heavy").proj(animal_id="pet_id"))
    assert sorted(db.Copy.fetch("animal_id")) == [3, 4, 5]


def test_batches_are_all_or_nothing(empty):
    db = empty
    db.Animal.insert1((1, "existing", None, None))
    with pytest.raises(DuplicateError):
        db.Animal.insert([(2, "ok", None, None), (3, "ok", None, None), (1, "dup", None, None)])
    assert len(db.Animal) == 1
    with pytest.raises(DataValueError):
        db.Animal.insert([(4, "ok", None, None), (5, "x" * 50, None, None)])
    assert len(db.Animal) == 1
    with pytest.raises(IntegrityError):
        db.Event.insert([{"animal_id": 1, "what": "fine"}, {"animal_id": 77, "what": "orphan"}])
    assert len(db.Event) == 0
    # rows giving different columns go in as separate statements of one transaction
    with pytest.raises(DuplicateError):
        db.Animal.insert([{"animal_id": 6, "name": "a"}, {"animal_id": 7, "name": "b", "weight": 1.0},
                          {"animal_id": 1, "name": "dup", "weight": 2.0}])
    assert len(db.Animal) == 1


def test_nothing_to_insert_and_bad_collections(empty):
    db = empty
    db.Animal.insert([])
    db.Animal.insert(np.array([], dtype=[("animal_id", "i4"), ("name", "U3")]))
    assert len(db.Animal) == 0
    with pytest.raises(QueryError, match="insert1"):
        db.Animal.insert({"animal_id": 1, "name": "x"})
    with pytest.raises(QueryError):
        db.Animal.insert("not rows")
    with pytest.raises(DataValueError, match="4 values"):
        db.Animal.insert1((1, "too few"))
    with pytest.raises(DataValueError, match="row of type"):
        db.Animal.insert([42])


def test_failed_batch_inside_a_transaction_leaves_the_rest(empty):
    """Inside a caller's transaction a refused batch is undone on its own (a savepoint): the
    caller's earlier work stays and can still be committed."""
    db = empty
    connection = db.schema.connection
    with connection.transaction():
        db.Animal.insert1((1, "kept", None, None))
        with pytest.raises(DuplicateError, match=r"\{'animal_id': 1\} already exists"):
            db.Animal.insert([(2, "undone", None, None), (1, "dup", None, None)])
        db.Animal.insert1((3, "also kept", None, None))
    assert sorted(db.Animal.fetch("animal_id").tolist()) == [1, 3]


def test_update1(db):
    db.Setting.delete_quick()
    db.Setting.insert1({"setting": 1, "label": "first", "level": 7, "note": "n",
                        "changed": datetime.datetime(2001, 1, 1)})
    db.Setting.update1({"setting": 1, "label": "renamed"})  # only what is given changes
    assert (db.Setting & {"setting": 1}).fetch1("label", "level", "note") == ("renamed", 7, "n")
    db.Setting.update1({"setting": 1, "note": None, "level": None})  # NULL, and the declared default
    assert (db.Setting & {"setting": 1}).fetch1("note", "level") == (None, 3)
    before = datetime.datetime.now().replace(microsecond=0) - datetime.timedelta(seconds=2)
    db.Setting.update1({"setting": 1, "changed": None})
    assert (db.Setting & {"setting": 1}).fetch1("changed") >= before
    db.Setting.update1({"setting": 1, "level": np.int64(9), "label": "np"})
    assert (db.Setting & {"setting": 1}).fetch1("level", "label") == (9, "np")
    with pytest.raises(dj.DataJointError, match="no row with key"):
        db.Setting.update1({"setting": 2, "label": "x"})
    with pytest.raises(MissingAttributeError, match="full primary key"):
        db.Setting.update1({"label": "x"})
    with pytest.raises(MissingAttributeError, match="'colour'"):
        db.Setting.update1({"setting": 1, "colour": "red"})
    with pytest.raises(DataValueError, match="'label'.*cannot be set to null"):
        db.Setting.update1({"setting": 1, "label": None})
    with pytest.raises(DataValueError, match="'label'.*varchar\\(10\\)"):
        db.Setting.update1({"setting": 1, "label": "far too long for it"})
    assert (db.Setting & {"setting": 1}).fetch1("label") == "np"
