"""Injection attempts through restrictions, values, attachment names, table comments, store
locations and schema names: no effect beyond a clear error or a faithful round trip; the tables
and their rows are intact afterwards."""

from __future__ import annotations

import pytest

import dj_flows as dj
from dj_flows.errors import DataJointError

HOSTILE = [
    "x'); DROP TABLE person; --",
    'x"); DROP TABLE person; --',
    "`; DROP DATABASE mysql; --",
    "' OR '1'='1",
    "\\'; DELETE FROM person; --",
    "\\",
    "a\\nb\x00c",
    "%_*?",
    "Robert'); DROP TABLE students;--",
    "é漢字🙂'\"`",
]
COMMENT = "it's a \"test\" with `ticks`, back\\slashes\\ and ; DROP TABLE person; --"


@pytest.fixture(scope="module")
def people(backend, make_schema, tmp_path_factory):
    schema = make_schema("inj")

    class Person(dj.Manual):
        definition = f"""
        # {COMMENT}
        name : varchar(64)
        ---
        note : varchar(255)   # {COMMENT}
        doc = null : attach
        """

    schema(Person)
    Person.insert([{"name": f"p{i}", "note": "plain"} for i in range(3)])
    return schema, Person


def intact(schema, Person, extra: int = 0) -> None:
    assert "person" in schema.list_tables() or any("person" in t for t in schema.list_tables())
    assert len(Person()) == 3 + extra
    assert sorted(Person.fetch("name").tolist())[:3] == ["p0", "p1", "p2"]


@pytest.mark.parametrize("value", HOSTILE)
def test_dict_and_string_restrictions(people, value):
    schema, Person = people
    assert len(Person & {"name": value}) == 0
    assert len(Person & {"note": value}) == 0
    assert len(Person - {"name": value}) == 3
    assert len(Person & [{"name": value}, {"name": "p1"}]) == 1
    for key in (value, f"name`={value}", "name` OR 1=1 OR `name"):
        try:
            len(Person & {key: 1})
        except DataJointError:
            pass
    try:
        len(Person & f"name = '{value}'")  # a raw SQL string is the user's own SQL
    except DataJointError:
        pass
    intact(schema, Person)


def test_values_round_trip(people, tmp_path):
    schema, Person = people
    rows = [{"name": f"h{i}", "note": value} for i, value in enumerate(HOSTILE) if "\x00" not in value]
    Person.insert(rows)
    stored = dict(zip(*(Person & [{"name": r["name"]} for r in rows]).fetch("name", "note")))
    assert stored == {r["name"]: r["note"] for r in rows}
    for row in rows:
        assert (Person & {"note": row["note"]}).fetch1("name") == row["name"]
    (Person & [{"name": r["name"]} for r in rows]).delete()
    intact(schema, Person)


def test_attachment_names(people, tmp_path):
    schema, Person = people
    names = ["it's.txt", 'q"uote.txt', "back`tick.txt", "semi;DROP TABLE person;.txt", "ü漢.txt"]
    source = tmp_path / "in"
    source.mkdir()
    for i, name in enumerate(names):
        (source / name).write_bytes(f"content {i}".encode())
        Person.insert1({"name": f"a{i}", "note": "att", "doc": str(source / name)})
    out = tmp_path / "out"
    out.mkdir()
    for i in range(len(names)):
        path = (Person & {"name": f"a{i}"}).fetch1("doc", download_path=str(out))
        assert str(path).startswith(str(out))
        assert open(path, "rb").read() == f"content {i}".encode()
    (Person & 'note = "att"').delete()
    intact(schema, Person)


def test_table_comment_with_quotes_and_backslashes(people):
    schema, Person = people
    assert Person.heading.table_comment == COMMENT
    assert Person.heading.attributes["note"].comment == COMMENT
    assert COMMENT in Person.describe()
    intact(schema, Person)


@pytest.mark.parametrize("name", ["x`; DROP DATABASE mysql; --", "a'b", 'a"b', "a b", "a;b",
                                  "", "a" * 100, "a/b", "a.b"])
def test_hostile_schema_names_are_refused(backend, name):
    before = dj.list_schemas() if hasattr(dj, "list_schemas") else None
    with pytest.raises(DataJointError):
        dj.Schema(name)
    if before is not None:
        assert dj.list_schemas() == before


@pytest.mark.parametrize("location", ["x'; DROP TABLE person; --", "a`b", 'q"s', "ü漢"])
def test_hostile_store_locations(people, location, tmp_path):
    schema, Person = people
    folder = tmp_path / location
    store = f"hostile{abs(hash(location)) % 10000}"  # a store of its own: a location is fixed
    with dj.config(stores={**dj.config["stores"], store: {"protocol": "file", "location": str(folder)}}):
        Stored = type(f"Stored{store[7:]}", (dj.Manual,), {"definition": f"""
            id : int
            ---
            data : blob@{store}
            """})
        try:
            schema(Stored)
        except DataJointError:
            return
        Stored.insert1({"id": 1, "data": [1, 2, 3]})
        assert list(Stored.fetch1("data")) == [1, 2, 3]
        assert any(folder.rglob("*")), "the object went somewhere else than the location"
        Stored.drop()
    intact(schema, Person)
