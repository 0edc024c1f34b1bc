"""Who last referenced an external object, and since when it is unreferenced.

DataJoint's tracking table records only a hash, so a garbage-collection report cannot say where an
unused object came from, and its grace period can only count from the object's upload. Here every
delete from a table with external attributes first records (hash, table, attribute, primary key,
time) of the doomed rows in `~reference_<store>`, with set-based statements inside the delete's
transaction. GC reports group candidates by that origin, and the collector's grace period also
counts from `released` (the time the last known reference went), not only from the upload.

The table also holds one sentinel row (the nil UUID, which no MD5 hash is) that collectors lock
for the span of each page, so pages of different collectors of one store never interleave; its
`key_json` holds the token of the last page that committed (see the collector mark in gc.py).
Inserts and deletes never touch that row.

The table is declared together with the store's tracking table (never inside a transaction, since
MySQL DDL would commit it); if it is missing (a schema DataJoint 0.14 created), nothing is recorded
and collection falls back to the tracking timestamp.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..backends import PH
from ..table import FreeTable

if TYPE_CHECKING:
    from ..table import Table
    from .external import ExternalTable

PREFIX = "~reference_"
SENTINEL = uuid.UUID(int=0).bytes  # the collectors' lock row
KEY_CHARS = 4000
PAGE = 1000
DEFINITION = """
# the last row that referenced each object of an external store
hash : uuid    # the object's hash in ~external_{store}
---
referencing_table : varchar(255)   # schema.table of the row
attribute_name : varchar(64)       # the attribute that held the hash
key_json : varchar(4000)           # the row's primary key as JSON
released = CURRENT_TIMESTAMP : timestamp  # when the row was deleted
"""


def history_table(connection: Any, database: str, store: str) -> FreeTable:
    table = FreeTable(connection, database, PREFIX + store)
    table.definition = DEFINITION.format(store=store)
    return table


def declare_history(connection: Any, database: str, store: str) -> None:
    table = history_table(connection, database, store)
    if not table.is_declared and not connection.in_transaction:
        table.declare({})


def _key_item(backend: Any, attribute: Any) -> str:
    """The JSON value of one primary-key attribute (uuids as hex text: JSON has no bytes)."""
    column = backend.quote(attribute.name)
    return f"lower(hex({column}))" if attribute.kind == "uuid" else column


def record_releases(table: Table) -> None:
    """Before deleting the restricted rows of `table`, remember what they referenced and when.

    Per external attribute: one SELECT of the doomed hashes, a DELETE of their old history rows by
    primary key (a thousand at a time), and one INSERT ... SELECT of the new ones (their `released`
    takes the server's current time by default)."""
    connection = table.connection
    backend = connection.backend
    quote = backend.quote
    heading = table.heading
    where, params = table._where_sql()
    restriction = f" AND ({where[len(' WHERE ') :]})" if where else ""
    pairs = ", ".join(
        f"'{name}', {_key_item(backend, heading[name])}" for name in heading.primary_key
    )
    for attribute in heading:
        if not attribute.is_external:
            continue
        history = history_table(connection, table.database, attribute.store)
        if not history.is_declared:
            continue
        column = quote(attribute.name)
        doomed = connection.query(
            f"SELECT DISTINCT {column} FROM {table.full_table_name} WHERE {column} IS NOT NULL"
            f"{restriction}",
            params,
        ).fetchall()
        if not doomed:
            continue
        forget(table, history, [bytes(row[0]) for row in doomed])
        source = (
            f"SELECT {column} AS {quote('h')}, {PH} AS {quote('t')}, {PH} AS {quote('a')}, "
            f"substr(json_object({pairs}), 1, {KEY_CHARS}) AS {quote('k')} "
            f"FROM {table.full_table_name} WHERE {column} IS NOT NULL{restriction}"
        )
        statement = backend.insert_statement(
            history.full_table_name,
            ["hash", "referencing_table", "attribute_name", "key_json"],
            "skip",
            ["hash"],
            source=source,
        )
        connection.query(
            statement, (f"{table.database}.{table.table_name}", attribute.name, *params)
        )


def last_references(
    tracking: ExternalTable, hashes: Iterable[bytes] | None = None
) -> dict[bytes, tuple[str, Any]]:
    """hash -> ('schema.table.attribute', primary key) of the last row that referenced it.

    With `hashes`, only those (one query per thousand); without, the whole history."""
    history = history_table(tracking.connection, tracking.database, tracking.store_name)
    if not history.is_declared:
        return {}
    quote = tracking.connection.backend.quote
    select = (
        f"SELECT {quote('hash')}, {quote('referencing_table')}, {quote('attribute_name')}, "
        f"{quote('key_json')} FROM {history.full_table_name} WHERE {quote('hash')} <> {PH}"
    )
    if hashes is None:
        rows = tracking.connection.query(select, (SENTINEL,)).fetchall()
    else:
        hashes = list(hashes)
        rows = []
        for start in range(0, len(hashes), PAGE):
            page = hashes[start : start + PAGE]
            sql = f"{select} AND {quote('hash')} IN ({', '.join([PH] * len(page))})"
            rows += tracking.connection.query(sql, (SENTINEL, *page)).fetchall()
    return {bytes(row[0]): origin(*row[1:]) for row in rows}


def origin(table: str | None, attribute: str | None, key_json: str | None) -> tuple[str, Any]:
    """('schema.table.attribute', primary key) of a history row ('unknown', None) without one."""
    if table is None:
        return "unknown", None
    try:
        key = json.loads(key_json) if key_json is not None else None
    except (TypeError, ValueError):
        key = key_json
    return f"{table}.{attribute}", key


def released_within(tracking: ExternalTable, seconds: int, column: str) -> str | None:
    """SQL condition on the tracking table's hash `column` (quoted, qualified): the object lost a
    reference less than `seconds` ago (None when there is no history to ask, or no grace period)."""
    history = history_table(tracking.connection, tracking.database, tracking.store_name)
    if seconds <= 0 or not history.is_declared:
        return None
    backend = tracking.connection.backend
    quote = backend.quote
    return (
        f"{column} IN (SELECT {quote('hash')} FROM {history.full_table_name} "
        f"WHERE NOT ({backend.older_than('released', seconds)}))"
    )


def lock_collectors(tracking: ExternalTable) -> str | None:
    """Inside a collector's transaction: wait for, then hold, this store's collector lock.

    Returns the token of the last collector page that committed (the sentinel's `key_json`;
    '' before any), or None when there is no history table (no lock then)."""
    history = history_table(tracking.connection, tracking.database, tracking.store_name)
    if not history.is_declared:
        return None
    connection = tracking.connection
    backend = connection.backend
    quote = backend.quote
    columns = ["hash", "referencing_table", "attribute_name", "key_json"]
    statement = backend.insert_statement(history.full_table_name, columns, "skip", ["hash"])
    connection.query(statement, (SENTINEL, "~collector", "", ""))
    row = connection.query(
        f"SELECT {quote('key_json')} FROM {history.full_table_name} WHERE {quote('hash')} = {PH}"
        f"{backend.lock_suffix}",
        (SENTINEL,),
    ).fetchone()
    return (row[0] or "") if row else ""


def set_collector_token(tracking: ExternalTable, token: str) -> None:
    """Inside the collector's transaction (after lock_collectors): record the page's token."""
    history = history_table(tracking.connection, tracking.database, tracking.store_name)
    quote = tracking.connection.backend.quote
    tracking.connection.query(
        f"UPDATE {history.full_table_name} SET {quote('key_json')} = {PH} "
        f"WHERE {quote('hash')} = {PH}",
        (token, SENTINEL),
    )


def forget_collected(tracking: ExternalTable, hashes: list[bytes]) -> None:
    """Drop the history of collected objects (keeps the table as small as the tracking table)."""
    history = history_table(tracking.connection, tracking.database, tracking.store_name)
    if hashes and history.is_declared:
        forget(tracking, history, hashes)


def forget(table: Any, history: FreeTable, hashes: list[bytes]) -> None:
    """Delete the history rows of `hashes`, by primary key, a thousand at a time."""
    quote = table.connection.backend.quote
    for start in range(0, len(hashes), PAGE):
        page = hashes[start : start + PAGE]
        table.connection.query(
            f"DELETE FROM {history.full_table_name} WHERE {quote('hash')} IN "
            f"({', '.join([PH] * len(page))})",
            page,
        )
