"""Every external object is checked against its tracking row before it is returned: a missing or
corrupted object raises StoreError naming the store, table, attribute and key (never a secret)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

import dj_flows as dj
from dj_flows.backends import PH
from dj_flows.errors import StoreError
from dj_flows.stores import get_store

from .helpers import write

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def schema(stores, make_schema):
    return make_schema("integ")


@pytest.fixture(scope="module")
def tables(schema):
    @schema
    class Subject(dj.Manual):
        definition = """
        subject : varchar(16)
        """

    @schema
    class Record(dj.Manual):
        definition = """
        -> Subject
        rec : int
        ---
        b_local = null : blob@local
        b_shared = null : blob@shared
        a_local = null : attach@local
        a_shared = null : attach@shared
        """

    Subject.insert([("mouse",), ("rat",)])
    return Subject, Record


STORE_OF = {"b_local": "local", "b_shared": "shared", "a_local": "local", "a_shared": "shared"}


def raw_hash(Record, column: str, key: dict) -> uuid.UUID:
    """The hash a row holds in an external column, read with plain SQL."""
    table = Record()
    quote = table.connection.backend.quote
    sql = (
        f"SELECT {quote(column)} FROM {table.full_table_name} "
        f"WHERE {quote('subject')} = {PH} AND {quote('rec')} = {PH}"
    )
    (value,) = table.connection.query(sql, (key["subject"], key["rec"])).fetchone()
    return uuid.UUID(bytes=bytes(value))


def stored_key(schema, column: str, key: dict, Record) -> str:
    """The object key (relative to the store root) of the value in `column` of row `key`."""
    tracking = schema.external[STORE_OF[column]]
    hash_ = raw_hash(Record, column, key)
    _, attachment_name, filepath, _ = tracking.tracked([hash_.bytes])[hash_.bytes]
    return tracking.object_key(hash_, attachment_name, filepath)


def insert(Record, tmp_path, rec: int, column: str) -> dict:
    key = {"subject": "mouse", "rec": rec}
    if column.startswith("b_"):
        value = np.arange(50.0) + rec
    else:
        value = write(tmp_path / f"file{rec}.bin", bytes([rec % 256]) * 300)
    Record.insert1({**key, column: value})
    return key


def check_message(text: str, column: str, key: dict, s3_server, problem: str) -> None:
    assert problem in text
    assert repr(column) in text and ".record'" in text  # 'schema.record'
    assert "'mouse'" in text and f"'rec': {key['rec']}" in text  # the row's key
    store = STORE_OF[column]
    assert f"store {store!r}" in text
    if store == "shared":
        assert s3_server.endpoint in text
    assert s3_server.secret_key not in text


@pytest.mark.parametrize("column", list(STORE_OF))
def test_missing_object_names_store_table_attribute_key(
    schema, tables, column, tmp_path, s3_server
):
    _, Record = tables
    key = insert(Record, tmp_path, 10 + list(STORE_OF).index(column), column)
    object_key = stored_key(schema, column, key, Record)
    get_store(STORE_OF[column]).remove(object_key)
    with pytest.raises(StoreError) as info:
        (Record & key).fetch1(column, download_path=tmp_path / "out")
    check_message(str(info.value), column, key, s3_server, "is missing")
    with pytest.raises(StoreError) as info:  # through a join, too
        (tables[0] * Record & key).fetch(column, download_path=tmp_path / "out")
    check_message(str(info.value), column, key, s3_server, "is missing")


@pytest.mark.parametrize("same_size", [True, False], ids=["same-size", "other-size"])
@pytest.mark.parametrize("column", list(STORE_OF))
def test_corrupted_object_is_never_returned(schema, tables, column, same_size, tmp_path, s3_server):
    _, Record = tables
    key = insert(Record, tmp_path, 20 + 4 * same_size + list(STORE_OF).index(column), column)
    store = get_store(STORE_OF[column])
    object_key = stored_key(schema, column, key, Record)
    data = bytearray(store.get(object_key))
    if same_size:
        data[len(data) // 2] ^= 0xFF
    else:
        data += b"trailing"
    store.put(object_key, bytes(data))
    out = tmp_path / "out"
    with pytest.raises(StoreError) as info:
        (Record & key).fetch1(column, download_path=out)
    check_message(str(info.value), column, key, s3_server, "is corrupted")
    assert not out.exists() or not list(out.iterdir())  # no attachment written either


def test_untracked_hash_is_reported(schema, tables, tmp_path):
    """A row pointing at a hash with no tracking row (only possible without foreign keys, e.g. an
    external table emptied by hand on SQLite) fails with the same kind of message."""
    _, Record = tables
    key = insert(Record, tmp_path, 40, "b_local")
    tracking = schema.external["local"]
    hash_ = raw_hash(Record, "b_local", key)
    connection = tracking.connection
    if connection.backend.name != "sqlite":
        pytest.skip("MySQL's foreign key keeps tracking rows that rows reference")
    connection.query("PRAGMA foreign_keys = OFF")
    try:
        quote = connection.backend.quote
        connection.query(
            f"DELETE FROM {tracking.full_table_name} WHERE {quote('hash')} = {PH}", (hash_.bytes,)
        )
    finally:
        connection.query("PRAGMA foreign_keys = ON")
    with pytest.raises(StoreError) as info:
        (Record & key).fetch1("b_local")
    assert "is not tracked" in str(info.value) and str(hash_) in str(info.value)


def test_good_rows_still_fetch_beside_bad_ones(schema, tables, tmp_path):
    _, Record = tables
    rows = [{"subject": "rat", "rec": i, "b_shared": np.full(10, i)} for i in range(30)]
    Record.insert(rows)
    values = (Record & {"subject": "rat"}).fetch("b_shared", order_by="rec")
    assert [v[0] for v in values] == list(range(30))
