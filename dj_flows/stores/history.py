"""Who last referenced an external object: recorded when a referencing row is deleted.

DataJoint's tracking table records only a hash, so a garbage-collection report cannot say where an
unused object came from. Here every delete from a table with external attributes first copies
(hash, table, attribute, primary key) of the doomed rows into `~reference_<store>`, one set-based
INSERT ... SELECT per attribute inside the delete's transaction, so GC reports can group by origin.
The table is declared together with the store's tracking table (never inside a transaction, since
MySQL DDL would commit it); if it is missing, nothing is recorded.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..backends import PH
from ..table import FreeTable

if TYPE_CHECKING:
    from ..table import Table
    from .external import ExternalTable

PREFIX = "~reference_"
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


def record_releases(table: Table) -> None:
    """Before deleting the restricted rows of `table`, remember what they referenced."""
    connection = table.connection
    backend = connection.backend
    quote = backend.quote
    heading = table.heading
    where, params = table._where_sql()
    key_pairs = ", ".join(f"'{k}', {quote(k)}" for k in heading.primary_key)
    for attribute in heading:
        if not attribute.is_external:
            continue
        history = history_table(connection, table.database, attribute.store)
        if not history.is_declared:
            continue
        column = quote(attribute.name)
        condition = f"{column} IS NOT NULL" + (f" AND ({where[len(' WHERE ') :]})" if where else "")
        source = (
            f"SELECT {column} AS {quote('h')}, {PH} AS {quote('t')}, {PH} AS {quote('a')}, "
            f"json_object({key_pairs}) AS {quote('k')} FROM {table.full_table_name} WHERE {condition}"
        )
        statement = backend.insert_statement(
            history.full_table_name,
            ["hash", "referencing_table", "attribute_name", "key_json"],
            "replace",
            ["hash"],
            source=source,
        )
        connection.query(
            statement, (f"{table.database}.{table.table_name}", attribute.name, *params)
        )


def last_references(tracking: ExternalTable) -> dict[bytes, tuple[str, Any]]:
    """hash -> ('schema.table.attribute', primary key) of the last row that referenced it."""
    history = history_table(tracking.connection, tracking.database, tracking.store_name)
    if not history.is_declared:
        return {}
    quote = tracking.connection.backend.quote
    rows = tracking.connection.query(
        f"SELECT {quote('hash')}, {quote('referencing_table')}, {quote('attribute_name')}, {quote('key_json')} "
        f"FROM {history.full_table_name}"
    ).fetchall()
    found = {}
    for hash_, table, attribute, key_json in rows:
        try:
            key = json.loads(key_json)
        except (TypeError, ValueError):
            key = key_json
        found[bytes(hash_)] = (f"{table}.{attribute}", key)
    return found
