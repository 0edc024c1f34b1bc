"""Bad input on both backends raises a DataJointError subclass whose message names the table, the
definition line or attribute, and the key at fault; failed connections name host and user but never
the password; nothing half-declared or half-inserted is left behind."""

from __future__ import annotations

import socket
import types

import pytest

import dj_flows as dj
from dj_flows import errors
from dj_flows.connection import Connection

PASSWORD = "Very-Secret-Pa55"


@pytest.fixture(scope="module")
def db(make_schema):
    schema = make_schema("err")

    @schema
    class Subject(dj.Manual):
        definition = """
        subject_id : int
        ---
        name : varchar(8)
        """

    @schema
    class Session(dj.Manual):
        definition = """
        -> Subject
        session : int
        ---
        rating = null : tinyint unsigned
        """

    Subject.insert([(1, "ann"), (2, "bob")])
    return types.SimpleNamespace(schema=schema, Subject=Subject, Session=Session)


def declare(schema, name, definition, context=None):
    cls = type(name, (dj.Manual,), {"definition": definition})
    return schema(cls, context=context or {})


@pytest.mark.parametrize(
    "definition, pieces",
    [
        ("id : int\n---\nx : notatype", ["'bad_table'", "line 3", "x : notatype", "notatype"]),
        ("id : int\n---\nx int", ["'bad_table'", "line 3", "x int"]),
        ("id : int\n---\nx = abc : int", ["'bad_table'", "x = abc : int", "'x'"]),
        ("-> Nowhere\nid : int", ["'bad_table'", "-> Nowhere", "Nowhere"]),
        ("id : int\n---\nid : float", ["'bad_table'", "'id'"]),
        ("id : int\n---\nindex(nope)", ["'bad_table'", "nope"]),
        ("---\nx : int", ["'bad_table'", "primary key"]),
    ],
)
def test_bad_definitions(db, definition, pieces):
    with pytest.raises(errors.DeclarationError) as caught:
        declare(db.schema, "BadTable", definition)
    message = str(caught.value)
    for piece in pieces:
        assert piece.lower() in message.lower(), (piece, message)
    assert "bad_table" not in db.schema.list_tables()


def test_nothing_half_declared(db):
    """A master whose part cannot be declared is dropped again."""

    class Master(dj.Manual):
        definition = """
        master_id : int
        """

        class Broken(dj.Part):
            definition = """
            -> master
            piece : nosuchtype
            """

    with pytest.raises(errors.DeclarationError, match="nosuchtype"):
        db.schema(Master, context={})
    assert "master" not in db.schema.list_tables()
    assert "master__broken" not in db.schema.list_tables()

    class Listing(dj.Lookup):
        definition = """
        item : int
        """
        contents = [(1,), ("not a number",)]

    with pytest.raises(errors.DataValueError, match="'item'"):
        db.schema(Listing, context={})
    assert "#listing" not in db.schema.list_tables()


def test_wrong_value_type_names_table_attribute_and_key(db):
    with pytest.raises(errors.DataValueError) as caught:
        db.Session.insert1({"subject_id": 1, "session": 7, "rating": 300})
    message = str(caught.value)
    assert db.schema.database in message and "session" in message
    assert "'rating'" in message and "{'subject_id': 1, 'session': 7}" in message
    with pytest.raises(errors.DataValueError, match="'name'.*varchar\\(8\\)"):
        db.Subject.insert1({"subject_id": 3, "name": "far too long"})


def test_missing_and_extra_attributes(db):
    with pytest.raises(errors.MissingAttributeError) as caught:
        db.Subject.insert1({"subject_id": 3})
    assert "'name'" in str(caught.value) and "{'subject_id': 3}" in str(caught.value)
    assert db.schema.database in str(caught.value)
    with pytest.raises(errors.MissingAttributeError, match="primary-key attribute 'session'"):
        db.Session.insert1({"subject_id": 1})
    with pytest.raises(errors.MissingAttributeError, match="'colour'.*ignore_extra_fields"):
        db.Subject.insert1({"subject_id": 3, "name": "c", "colour": "red"})
    assert isinstance(errors.MissingAttributeError("x"), KeyError)


def test_duplicate_key_is_named(db):
    with pytest.raises(errors.DuplicateError) as caught:
        db.Subject.insert([(5, "new"), (2, "again")])
    message = str(caught.value)
    assert f"{db.schema.database}.subject" in message and "{'subject_id': 2}" in message
    assert "skip_duplicates" in message
    with pytest.raises(errors.DuplicateError, match="'subject_id': 6.*twice"):
        db.Subject.insert([(6, "x"), (6, "y")])
    assert not db.Subject & "subject_id in (5, 6)"


def test_missing_parent_is_named(db):
    with pytest.raises(errors.IntegrityError) as caught:
        db.Session.insert([(1, 1, None), (9, 1, None)])
    message = str(caught.value)
    assert f"{db.schema.database}.session" in message
    assert f"{db.schema.database}.subject" in message and "{'subject_id': 9}" in message
    assert len(db.Session) == 0


def test_bad_restrictions_and_fetches(db):
    with pytest.raises(errors.QueryError) as caught:
        len(db.Subject & "no_such_column = 1")
    assert "no_such_column" in str(caught.value) and f"{db.schema.database}.subject" in str(caught.value)
    with pytest.raises(errors.QueryError, match="subject"):
        (db.Subject * db.Session & "rating >>> 2").fetch()
    with pytest.raises(errors.QueryError, match="'subject_id'"):
        db.Subject & {"subject_id": "one"}  # noqa: B018
    with pytest.raises(errors.QueryError, match="unsupported restriction type"):
        db.Subject & object()  # noqa: B018
    with pytest.raises(errors.MissingAttributeError, match="'age'"):
        db.Subject.fetch("age")
    with pytest.raises(errors.MissingAttributeError, match="'age'"):
        db.Subject.proj("age")
    with pytest.raises(errors.DataJointError):
        (db.Subject & {"subject_id": 1}).fetch1("KEY", "nope")


def test_every_error_is_a_datajoint_error():
    for name in ("ConfigError", "DatabaseConnectionError", "LostConnectionError", "DeclarationError",
                 "QueryError", "MissingTableError", "MissingAttributeError", "DataValueError",
                 "DuplicateError", "IntegrityError", "AccessError", "BlobError", "StoreError",
                 "TransientStoreError", "PopulateError"):
        assert issubclass(getattr(errors, name), errors.DataJointError), name
    assert dj.DataJointError is errors.DataJointError
    hinted = errors.DuplicateError("base").suggest("try this")
    assert isinstance(hinted, errors.DuplicateError) and "try this" in str(hinted.args)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_mysql_names_host_and_user_not_password():
    port = _free_port()
    settings = {"database.backend": "mysql", "database.host": "127.0.0.1", "database.port": port,
                "database.user": "someone", "database.password": PASSWORD}
    with pytest.raises(errors.DatabaseConnectionError) as caught:
        Connection(settings)
    message = str(caught.value)
    assert "127.0.0.1" in message and str(port) in message and "someone" in message
    assert PASSWORD not in message and PASSWORD not in repr(caught.value)
    assert caught.value.__cause__ is None or PASSWORD not in str(caught.value.__cause__)


def test_refused_mysql_login_names_host_and_user_not_password(backend):
    if backend != "mysql":
        pytest.skip("a MySQL login check: it runs in the mysql half of this module")
    settings = {k: dj.config[k] for k in ("database.host", "database.port")}
    settings.update({"database.backend": "mysql", "database.user": "nobody_here", "database.password": PASSWORD})
    with pytest.raises(errors.DatabaseConnectionError) as caught:
        Connection(settings)
    message = str(caught.value)
    assert "nobody_here" in message and str(settings["database.host"]) in message
    assert "denied" in message.lower()
    assert PASSWORD not in message and PASSWORD not in repr(caught.value)


def test_unusable_sqlite_location(tmp_path):
    settings = {"database.backend": "sqlite", "database.sqlite_path": str(tmp_path / "missing" / "x.sqlite")}
    with pytest.raises(errors.DatabaseConnectionError, match="missing"):
        Connection(settings)


def test_connection_repr_hides_the_password(backend, tmp_path):
    connection = dj.conn()
    assert repr(connection).startswith("DataJoint connection (connected)")
    settings = {"database.backend": "sqlite", "database.sqlite_path": str(tmp_path / "p.sqlite"),
                "database.password": PASSWORD, "database.user": "me"}
    connection = Connection(settings)
    for text in (repr(connection), str(connection), repr(connection.backend), connection.backend.describe_target()):
        assert PASSWORD not in text
    connection.close()
