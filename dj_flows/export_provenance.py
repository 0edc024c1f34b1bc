"""Where an export came from, recorded as JSON under the key `dj_flows` of the Parquet metadata.

It names the engine and its version, the backend, the source schemas and tables with their
definitions, the query's SQL, parameters and restriction, its heading and primary key, the row
count and the export time, so a file found on a share years later can be traced back to the query
that made it. Nothing secret goes in: no password, no store credentials.
"""

from __future__ import annotations

import datetime
import decimal
import json
import re
import uuid
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .backends import PH
from .errors import DataJointError
from .version import __version__

if TYPE_CHECKING:
    from .expression import QueryExpression

KEY = "dj_flows"
FORMAT = "dj_flows.export"
FORMAT_VERSION = 1
_TABLE_REFS = {
    "mysql": re.compile(r"`((?:[^`]|``)+)`\.`((?:[^`]|``)+)`"),
    "sqlite": re.compile(r'"([^".]+)\.((?:[^"]|"")+)"'),
}


def json_value(value: Any) -> Any:
    """A JSON-safe rendering of an SQL parameter."""
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    return value


def source_tables(query: QueryExpression) -> list[tuple[str, str]]:
    """The base tables a query reads, in order of first appearance."""
    database, table = getattr(query, "database", None), getattr(query, "_table_name", None)
    sql = query.make_sql()[0]
    pattern = _TABLE_REFS.get(query.connection.backend.name)
    found: list[tuple[str, str]] = [(database, table)] if database and table else []
    if pattern is not None:
        for schema, name in pattern.findall(sql):
            schema, name = schema.replace("``", "`"), name.replace('""', '"').replace("``", "`")
            if (schema, name) not in found and query.connection.table_info(
                schema, name
            ) is not None:
                found.append((schema, name))
    return found


def describe_table(connection: Any, schema: str, table: str) -> dict[str, Any]:
    from .table import FreeTable

    free = FreeTable(connection, schema, table)
    entry: dict[str, Any] = {"schema": schema, "table": table, "primary_key": free.primary_key}
    try:
        entry["definition"] = free.describe()
    except DataJointError as error:  # a table we may read but not introspect fully
        entry["definition"] = None
        entry["definition_error"] = str(error)
    return entry


def build(
    query: QueryExpression,
    schema: pa.Schema,
    *,
    row_count: int,
    started: datetime.datetime,
    extra: dict | None = None,
) -> dict[str, Any]:
    """The provenance record of an export of `query` that wrote `row_count` rows."""
    connection = query.connection
    sql, params = query.make_sql()
    restriction = [
        {"sql": c.sql.replace(PH, "?"), "params": [json_value(p) for p in c.params]}
        for c in query.restriction
    ]
    tables = [describe_table(connection, s, t) for s, t in source_tables(query)]
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "engine": {"name": "dj_flows", "version": __version__, "pyarrow": pa.__version__},
        "backend": connection.backend.name,
        "source": {"schemas": sorted({t["schema"] for t in tables}), "tables": tables},
        "query": {
            "class": type(query).__name__,
            "sql": sql.replace(PH, "?"),
            "params": [json_value(p) for p in params],
            "restriction": restriction,
        },
        "heading": [a.to_dict() for a in query.heading],
        "primary_key": list(query.primary_key),
        "columns": schema.names,
        "row_count": row_count,
        "started_at": started.isoformat(),
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    if extra:
        record.update(extra)
    return record


def encode(record: dict[str, Any]) -> dict[str, str]:
    return {KEY: json.dumps(record, default=json_value)}


def decode(metadata: dict | None) -> dict[str, Any] | None:
    """The provenance record in a Parquet key-value metadata map, if any."""
    if not metadata:
        return None
    raw = metadata.get(KEY.encode()) or metadata.get(KEY)
    return json.loads(raw) if raw else None
