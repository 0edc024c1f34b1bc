"""Tables of a schema found by name alone: populate status and queries for export.

Neither needs the pipeline's Python code: the key source of an auto-populated table follows from
the foreign keys the database reports, so `dj-flows status` works on any schema, including one
declared by DataJoint itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..connection import Connection, conn
from ..errors import DataJointError, MissingTableError
from ..naming import to_snake_case
from ..schema import Schema
from ..table import FreeTable
from ..tiers import Computed, Imported

COUNTS = ("reserved", "expired", "error", "ignore")


def _schema(name: str, connection: Connection) -> Schema:
    if name not in connection.backend.list_schemas(connection._cursor()):
        raise MissingTableError(f"schema {name!r} does not exist on {connection.backend.describe_target()}")
    return Schema(name, connection=connection, create_schema=False, create_tables=False)


def auto_tables(schema_name: str, connection: Connection | None = None) -> list[type]:
    """Classes for the Imported and Computed tables of a schema, parents before children."""
    connection = connection or conn()
    schema = _schema(schema_name, connection)
    context: dict[str, Any] = {}
    schema.spawn_missing_classes(context)
    classes = [c for c in context.values() if isinstance(c, type) and issubclass(c, Imported | Computed)]
    connection.invalidate()
    order = connection.dependencies.topological_order({(schema_name, c.table_name) for c in classes})
    rank = {node: i for i, node in enumerate(order)}
    return sorted(classes, key=lambda c: rank[(schema_name, c.table_name)])


def schema_status(schema_name: str, connection: Connection | None = None) -> list[dict[str, Any]]:
    """One row per auto-populated table: total and remaining keys, and jobs by status."""
    connection = connection or conn()
    rows = []
    for cls in auto_tables(schema_name, connection):
        table = cls()
        remaining, total = table.progress()
        counts = _job_counts(table)
        rows.append(
            {
                "table": cls.__name__,
                "table_name": table.table_name,
                "tier": cls._tier,
                "total": total,
                "done": total - remaining,
                "remaining": remaining,
                **counts,
            }
        )
    return rows


def _job_counts(table: Any) -> dict[str, int]:
    try:
        from ..jobs import JobTable
    except ImportError:  # job reservation not available: nothing can be reserved
        return dict.fromkeys(COUNTS, 0)
    jobs = JobTable(table.connection, table.database, declare=False)
    if not jobs.is_declared:
        return dict.fromkeys(COUNTS, 0)
    found = jobs.status(table.table_name).get(table.table_name, {})
    return {name: int(found.get(name, 0)) for name in COUNTS}


def free_table(connection: Connection, schema_name: str, name: str) -> FreeTable:
    """A table by its table name (`__slide`) or class name (`Slide`)."""
    tables = connection.backend.list_tables(connection._cursor(), schema_name)
    if name in tables:
        return FreeTable(connection, schema_name, name)
    try:
        snake = to_snake_case(name)
    except DataJointError:
        snake = None
    for table in tables:
        if not table.startswith("~") and table.lstrip("#_") == snake:
            return FreeTable(connection, schema_name, table)
    raise MissingTableError(
        f"schema {schema_name!r} has no table {name!r} "
        f"(it has {', '.join(t for t in tables if not t.startswith('~'))})"
    )


def query_of(
    connection: Connection,
    schema_name: str,
    tables: Sequence[str],
    restrictions: Sequence[Any] = (),
    attributes: Sequence[str] | None = None,
) -> Any:
    """The join of `tables` of a schema, restricted, optionally projected to `attributes`."""
    if not tables:
        raise DataJointError("export needs at least one table")
    _schema(schema_name, connection)
    query: Any = None
    for name in tables:
        table = free_table(connection, schema_name, name)
        query = table if query is None else query * table
    for restriction in restrictions:
        query = query & restriction
    if attributes:
        keep = [a for a in attributes if a not in query.primary_key]
        query = query.proj(*keep)
    return query
