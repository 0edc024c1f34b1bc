"""The query algebra on both backends: every restriction form, join, proj (rename, compute, exclude),
aggr (with keep_all_rows), union, and len / bool / in / iteration, each checked against the rows it
must return."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import dj_flows as dj
from dj_flows.errors import DataJointError, MissingAttributeError, QueryError

SUBJECTS = [
    (1, "ann", "F", datetime.date(2020, 1, 1)),
    (2, "bob", "M", datetime.date(2020, 6, 1)),
    (3, "cat", "F", None),
    (4, "dan", "M", datetime.date(2021, 1, 1)),
    (5, "eve", "F", datetime.date(2019, 5, 5)),
]
SESSIONS = [(1, 1, 10.0, "a"), (1, 2, 20.0, "b"), (2, 1, 5.0, ""), (4, 1, 1.0, "a"), (4, 2, 2.0, "a"), (4, 3, 3.0, "c")]


@pytest.fixture(scope="module")
def db(make_schema):
    schema = make_schema("q")

    @schema
    class Subject(dj.Manual):
        definition = """
        subject_id : int
        ---
        name : varchar(16)
        sex : enum('F', 'M')
        dob = null : date
        """

    @schema
    class Session(dj.Manual):
        definition = """
        -> Subject
        session : int
        ---
        duration : float
        note : varchar(8)
        """

    @schema
    class Pair(dj.Manual):
        definition = """
        -> Subject.proj(first='subject_id')
        -> Subject.proj(second='subject_id')
        ---
        strength : int
        """

    @schema
    class Color(dj.Lookup):
        definition = """
        color : varchar(8)
        """
        contents = [("red",), ("blue",)]

    Subject.insert(SUBJECTS)
    Session.insert(SESSIONS)
    Pair.insert([(1, 2, 5), (1, 3, 1), (4, 5, 9)])
    return SimpleNamespace(schema=schema, Subject=Subject, Session=Session, Pair=Pair, Color=Color)


def ids(query, attribute="subject_id"):
    return sorted(query.fetch(attribute).tolist())


def test_restrict_by_dict(db):
    assert ids(db.Subject & {"sex": "F"}) == [1, 3, 5]
    assert ids(db.Subject & {"sex": "F", "name": "eve"}) == [5]
    assert ids(db.Subject & {"sex": "F", "unknown_attribute": 1}) == [1, 3, 5]  # unknown keys ignored
    assert ids(db.Subject & {"dob": None}) == [3]
    assert ids(db.Subject & {"dob": "2020-01-01"}) == [1]
    assert ids(db.Subject & {}) == [1, 2, 3, 4, 5]
    assert ids(db.Session & {"subject_id": 4, "session": 2}) == [4]


def test_restrict_by_string(db):
    assert ids(db.Subject & "sex = 'M'") == [2, 4]
    assert ids(db.Subject & "dob > '2020-01-01'") == [2, 4]
    assert ids(db.Subject & "subject_id in (1, 2) and name like 'a%%'") == [1] or ids(
        db.Subject & "subject_id in (1, 2) and name like 'a%'") == [1]
    assert ids(db.Subject & "name like 'a%'") == [1]
    assert ids(db.Session & "duration * 2 > 15", "session") == [1, 2]


def test_restrict_by_lists_and_andlists(db):
    assert ids(db.Subject & [{"subject_id": 1}, "subject_id = 3", {"name": "eve"}]) == [1, 3, 5]
    assert ids(db.Subject & ({"subject_id": 2}, {"subject_id": 4})) == [2, 4]
    assert ids(db.Subject & []) == []
    assert ids(db.Subject - []) == [1, 2, 3, 4, 5]
    assert ids(db.Subject & dj.AndList([{"sex": "F"}, "subject_id > 1"])) == [3, 5]
    assert ids(db.Subject & dj.AndList([])) == [1, 2, 3, 4, 5]
    assert ids(db.Subject & [dj.AndList(["sex = 'F'", "subject_id < 3"]), {"subject_id": 4}]) == [1, 4]
    assert ids(db.Subject & {"sex": "F"} & "subject_id > 1" & {"name": "cat"}) == [3]


def test_restrict_by_query_and_negation(db):
    assert ids(db.Subject & db.Session) == [1, 2, 4]
    assert ids(db.Subject - db.Session) == [3, 5]
    assert ids(db.Subject & dj.Not(db.Session)) == [3, 5]
    assert ids(db.Subject & dj.Not({"sex": "F"})) == [2, 4]
    assert ids(db.Subject - {"sex": "F"}) == [2, 4]
    assert ids(db.Subject - "sex = 'F'") == [2, 4]
    assert ids(db.Subject - [{"subject_id": 1}, {"subject_id": 2}]) == [3, 4, 5]
    assert ids(db.Subject & (db.Session & "duration > 4")) == [1, 2]
    assert ids(db.Subject - (db.Session & "duration > 4")) == [3, 4, 5]
    assert ids(db.Subject & db.Pair.proj(subject_id="second")) == [2, 3, 5]
    assert ids(db.Subject & True) == [1, 2, 3, 4, 5] and ids(db.Subject & False) == []
    assert ids(db.Subject & db.Color) == [1, 2, 3, 4, 5]  # nothing shared: kept when the other is not empty
    assert ids(db.Subject & (db.Color & "color = 'green'")) == []
    assert ids(db.Subject - dj.Not(dj.Not({"sex": "M"}))) == [1, 3, 5]


def test_restrict_by_records_and_frames(db):
    records = db.Subject.fetch(order_by="subject_id")[:2]
    assert ids(db.Subject & records) == [1, 2]
    assert ids(db.Subject & records[0]) == [1]
    frame = pd.DataFrame({"subject_id": [3, 5]})
    assert ids(db.Subject & frame) == [3, 5]
    keys = (db.Session & {"subject_id": 4}).fetch("KEY")
    assert ids(db.Session & keys, "session") == [1, 2, 3]
    assert ids(db.Subject & np.int64(1) if False else db.Subject & {"subject_id": np.int64(1)}) == [1]


def test_bad_restrictions(db):
    with pytest.raises(QueryError):
        db.Subject & None  # noqa: B018
    with pytest.raises(QueryError):
        db.Subject & 3.5  # noqa: B018
    with pytest.raises(QueryError, match="'subject_id'"):
        db.Subject & {"subject_id": "not-a-number"}  # noqa: B018
    with pytest.raises(QueryError):
        len(db.Subject & "no_such_column = 1")
    with pytest.raises(QueryError):
        db.Subject & "   "  # noqa: B018


def test_join(db):
    joined = db.Subject * db.Session
    assert joined.primary_key == ["subject_id", "session"]
    assert set(joined.heading.names) == {"subject_id", "session", "name", "sex", "dob", "duration", "note"}
    assert len(joined) == len(SESSIONS)
    rows = (joined & {"name": "dan"}).fetch("session", "duration", order_by="session")
    assert rows[0].tolist() == [1, 2, 3] and rows[1].tolist() == [1.0, 2.0, 3.0]
    assert len(db.Session * db.Subject) == len(SESSIONS)
    assert len((db.Subject & {"sex": "F"}) * db.Session) == 2
    assert len(db.Subject * db.Color) == 10  # nothing shared: the cross product
    pairs = db.Pair * db.Subject.proj(first="subject_id", first_name="name")
    assert sorted(pairs.fetch("first_name").tolist()) == ["ann", "ann", "dan"]
    both = pairs * db.Subject.proj(second="subject_id", second_name="name")
    assert set(zip(*both.fetch("first_name", "second_name"))) == {("ann", "bob"), ("ann", "cat"), ("dan", "eve")}
    # joins are associative and commute (up to the order of attributes)
    a = (db.Subject * db.Session) * db.Color
    b = db.Subject * (db.Session * db.Color)
    assert len(a) == len(b) == 12


def test_join_compatibility(db):
    """Matching on an attribute that is secondary on both sides is refused (DataJoint's rule);
    `@` and `^` match on it anyway."""
    nicknames = db.Session.proj(name="note")
    with pytest.raises(QueryError, match="dependent attribute `name`"):
        db.Subject * nicknames  # noqa: B018
    with pytest.raises(QueryError, match="dependent attribute `name`"):
        db.Subject & nicknames  # noqa: B018
    with pytest.raises(QueryError, match="dependent attribute `name`"):
        db.Subject - nicknames  # noqa: B018
    with pytest.raises(QueryError, match="dependent attribute `name`"):
        db.Subject.aggr(nicknames, "name", n="count(*)")
    assert len(db.Subject @ nicknames) == 0  # no subject's name equals a session note
    assert len(db.Subject @ db.Session.proj(name="concat('a', 'nn')")) == 2  # ann's two sessions
    assert ids(db.Subject ^ db.Session.proj(name="concat('a', 'nn')")) == [1]
    assert ids(db.Subject ^ dj.Not(db.Session.proj(name="concat('a', 'nn')"))) == [2, 3, 4, 5]
    assert ids(db.Subject & -db.Session) == [3, 5]
    assert ids(db.Subject - -db.Session) == [1, 2, 4]
    assert ids(db.Subject & -(db.Session & "duration > 4")) == [3, 4, 5]


def test_left_join(db):
    left = db.Subject.join(db.Session, left=True)
    assert len(left) == len(SESSIONS) + 2
    assert sorted(set((left & "session IS NULL").fetch("subject_id").tolist())) == [3, 5]


def test_proj(db):
    assert db.Subject.proj().heading.names == ["subject_id"]
    assert db.Subject.proj("name").heading.names == ["subject_id", "name"]
    assert db.Subject.proj("-dob").heading.names == ["subject_id", "name", "sex"]
    assert db.Subject.proj(..., "-sex").heading.names == ["subject_id", "name", "dob"]
    assert db.Subject.proj(..., nick="name").heading.names == ["subject_id", "sex", "dob", "nick"]
    assert db.Subject.proj("...").heading.names == db.Subject.heading.names
    renamed = db.Subject.proj(sid="subject_id", who="name")
    assert renamed.primary_key == ["sid"]
    assert set(renamed.heading.names) == {"sid", "who"}
    assert (renamed & {"sid": 2}).fetch1("who") == "bob"
    computed = db.Session.proj(twice="duration * 2", label="concat(note, '!')")
    got = (computed & {"subject_id": 1, "session": 2}).fetch1()
    assert got == {"subject_id": 1, "session": 2, "twice": 40.0, "label": "b!"}
    assert ids(computed & "twice > 15", "session") == [1, 2]
    assert len(db.Session.proj(d="duration") & "d < 2.5") == 2
    both = db.Subject.proj("name", alias="name")
    assert both.fetch("name", "alias", order_by="subject_id")[1][0] == "ann"
    with pytest.raises(MissingAttributeError, match="nope"):
        db.Subject.proj("nope")
    with pytest.raises(QueryError):
        db.Subject.proj("-subject_id")


def test_aggr(db):
    counts = db.Subject.aggr(db.Session, n="count(*)")
    assert dict(zip(*counts.fetch("subject_id", "n"))) == {1: 2, 2: 1, 4: 3}
    all_rows = db.Subject.aggr(db.Session, n="count(session)", keep_all_rows=True)
    assert dict(zip(*all_rows.fetch("subject_id", "n"))) == {1: 2, 2: 1, 3: 0, 4: 3, 5: 0}
    totals = db.Subject.aggr(db.Session, "name", total="sum(duration)", longest="max(duration)")
    row = (totals & {"subject_id": 1}).fetch1()
    assert row["name"] == "ann" and row["total"] == 30.0 and row["longest"] == 20.0
    assert ids(counts & "n > 1") == [1, 4]
    assert ids(db.Subject & (counts & "n >= 3")) == [4]
    assert len(counts * db.Subject) == 3
    restricted = db.Subject.aggr(db.Session & "duration < 6", n="count(*)")
    assert dict(zip(*restricted.fetch("subject_id", "n"))) == {2: 1, 4: 3}
    by_sex = (db.Subject & {"sex": "M"}).aggr(db.Session, n="count(*)")
    assert ids(by_sex) == [2, 4]
    with pytest.raises(QueryError):
        db.Color.aggr(db.Session, n="count(*)")


def test_union(db):
    union = (db.Subject & {"subject_id": 1}) + (db.Subject & "subject_id in (2, 3)")
    assert ids(union) == [1, 2, 3]
    assert ids((db.Subject & "subject_id < 3") + (db.Subject & "subject_id < 4")) == [1, 2, 3]
    keys = db.Subject.proj() & db.Session
    assert ids(keys + (db.Subject.proj() & {"subject_id": 5})) == [1, 2, 4, 5]
    assert ids((union & {"subject_id": 2}) * db.Session) == [2]
    with pytest.raises(QueryError):
        db.Subject + db.Session  # noqa: B018
    with pytest.raises(QueryError):
        db.Subject.proj("name") + db.Subject.proj("sex")  # noqa: B018


def test_len_bool_in_iteration(db):
    assert len(db.Subject) == 5 and len(db.Subject()) == 5
    assert bool(db.Subject & {"subject_id": 1}) and not (db.Subject & {"subject_id": 99})
    assert {"subject_id": 1} in db.Subject
    assert {"subject_id": 99} not in db.Subject
    assert "sex = 'M'" in db.Subject
    rows = list(db.Subject & {"sex": "M"})
    assert [r["name"] for r in sorted(rows, key=lambda r: r["subject_id"])] == ["bob", "dan"]
    assert all(isinstance(r, dict) for r in db.Session)
    assert len(db.Subject.aggr(db.Session, n="count(*)")) == 3


def test_expressions_are_immutable_and_reusable(db):
    females = db.Subject & {"sex": "F"}
    older = females & "dob < '2020-01-02'"
    assert ids(females) == [1, 3, 5] and ids(older) == [1, 5]
    assert ids(db.Subject) == [1, 2, 3, 4, 5]
    assert "WHERE" in females.sql
    with pytest.raises(DataJointError):
        (db.Subject & {"subject_id": 1}).drop()
