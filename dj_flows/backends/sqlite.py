"""SQLite (standard library): the embedded default backend, no server needed.

Every schema of a pipeline lives in one database file, with tables named `"schema.table"`, so foreign
keys work across schemas (SQLite cannot reference a table in another attached file). SQLite has no
column comments, so a small catalog (`~dj_schemas`, `~dj_tables`) keeps schemas and DataJoint's
attribute types. Tables are STRICT and carry CHECK constraints for ranges, lengths and enums, so bad
values fail as they do on MySQL in strict mode.
"""

from __future__ import annotations

import datetime
import decimal
import json
import random
import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import errors
from ..errors import DataJointError
from ..heading import Attribute, Heading
from .base import (
    CURRENT_TIMESTAMP,
    NO_DEFAULT,
    PH,
    Backend,
    ForeignKeyEdge,
    TableInfo,
    parse_literal,
    string_literal,
)

if TYPE_CHECKING:
    from ..declare import TableSpec

CATALOG_DDL = (
    'CREATE TABLE IF NOT EXISTS "~dj_schemas" (name TEXT PRIMARY KEY, created TEXT NOT NULL) STRICT',
    'CREATE TABLE IF NOT EXISTS "~dj_tables" (schema TEXT NOT NULL REFERENCES "~dj_schemas" (name) '
    "ON DELETE CASCADE, name TEXT NOT NULL, comment TEXT NOT NULL, heading TEXT NOT NULL, "
    "PRIMARY KEY (schema, name)) STRICT",
)
STORAGE = {
    "int": "INTEGER",
    "bool": "INTEGER",
    "float": "REAL",
    "decimal": "TEXT",
    "string": "TEXT",
    "enum": "TEXT",
    "date": "TEXT",
    "time": "TEXT",
    "datetime": "TEXT",
    "timestamp": "TEXT",
    "json": "TEXT",
    "uuid": "BLOB",
    "blob": "BLOB",
    "attach": "BLOB",
    "filepath": "BLOB",
    "native": "ANY",
}
TIME_TEXT = re.compile(r"^(-)?(\d+):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$")


def _decimal_as_real(attribute: Attribute) -> bool:
    """Decimals of up to 15 digits are stored as REAL, so they compare and sort as numbers (as TEXT,
    '9.5' > '12'); a double holds 15 significant digits exactly, and fetching rounds back to the
    declared scale. Wider decimals stay TEXT to keep every digit."""
    return attribute.kind == "decimal" and (attribute.type.precision or 10) <= 15


def _index_order(item: tuple[str, tuple, bool]) -> tuple[int, str]:
    """Declared indexes are named "schema.table$<number>": sort them by that number."""
    number = item[0].rpartition("$")[2]
    return (int(number), "") if number.isdigit() else (1 << 30, item[0])


def _mysql_concat(*args: Any) -> Any:
    return None if any(a is None for a in args) else "".join(str(a) for a in args)


class SQLiteBackend(Backend):
    name = "sqlite"
    lacks = frozenset({"column_comments", "unsigned_bigint_above_int64", "cross_process_row_locks"})
    native_ints = 2**63  # SQLite integers are 64-bit signed
    begin_statement = "BEGIN IMMEDIATE"
    lock_suffix = ""
    now_sql = "strftime('%Y-%m-%d %H:%M:%S', 'now', 'localtime')"

    def older_than(self, column: str, seconds: int) -> str:
        return f"{self.quote(column)} <= strftime('%Y-%m-%d %H:%M:%S', 'now', 'localtime', '-{int(seconds)} seconds')"

    # -- connecting ---------------------------------------------------------------------------
    @property
    def path(self) -> str:
        return str(self.settings.get("database.sqlite_path") or "dj_flows.sqlite")

    def describe_target(self) -> str:
        return f"SQLite file {self.path}"

    def connect(self) -> Any:
        path = self.path
        if path != ":memory:" and not path.startswith("file:"):
            folder = Path(path).expanduser().resolve().parent
            if not folder.is_dir():
                raise errors.DatabaseConnectionError(f"cannot open {self.describe_target()}: folder {folder} does not exist")
        try:
            raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60, uri=path.startswith("file:"))
            raw.execute("PRAGMA foreign_keys = ON")
            raw.execute("PRAGMA busy_timeout = 60000")
            if path != ":memory:":
                raw.execute("PRAGMA journal_mode = WAL")
                raw.execute("PRAGMA synchronous = NORMAL")
            for statement in CATALOG_DDL:
                raw.execute(statement)
        except sqlite3.Error as error:
            raise errors.DatabaseConnectionError(f"cannot open {self.describe_target()}: {error}") from None
        raw.create_function("concat", -1, _mysql_concat, deterministic=True)
        raw.create_function("rand", 0, random.random)
        raw.create_function("greatest", -1, lambda *a: None if None in a else max(a), deterministic=True)
        raw.create_function("least", -1, lambda *a: None if None in a else min(a), deterministic=True)
        return raw

    def is_connected(self, raw: Any) -> bool:
        try:
            raw.execute("SELECT 1")
            return True
        except sqlite3.Error:
            return False

    # -- SQL text -------------------------------------------------------------------------------
    def quote(self, identifier: str) -> str:
        return '"' + identifier.replace('"', '""') + '"'

    def table_ref(self, schema: str, table: str) -> str:
        return self.quote(f"{schema}.{table}")

    def finalize(self, sql: str) -> str:
        return sql.replace(PH, "?")

    def insert_statement(
        self, table: str, columns: Sequence[str], mode: str, primary_key: Sequence[str], source: str | None = None
    ) -> str:
        names = ", ".join(self.quote(c) for c in columns)
        if source is None:
            sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join([PH] * len(columns))})"
        else:
            sql = f"INSERT INTO {table} ({names}) SELECT * FROM ({source}) AS {self.quote('$insert')} WHERE 1=1"
        if mode == "skip":
            sql += " ON CONFLICT DO NOTHING"
        elif mode == "touch":
            conflict = ", ".join(self.quote(k) for k in primary_key)
            sql += f" ON CONFLICT ({conflict}) DO UPDATE SET \"timestamp\" = strftime('%Y-%m-%d %H:%M:%S', 'now', 'localtime')"
        elif mode == "replace":
            updates = [c for c in columns if c not in primary_key]
            conflict = ", ".join(self.quote(k) for k in primary_key)
            if updates:
                sql += f" ON CONFLICT ({conflict}) DO UPDATE SET " + ", ".join(
                    f"{self.quote(c)} = excluded.{self.quote(c)}" for c in updates
                )
            else:
                sql += f" ON CONFLICT ({conflict}) DO NOTHING"
        return sql

    # -- schemas ------------------------------------------------------------------------------
    def create_schema(self, cursor: Any, schema: str) -> None:
        cursor.execute(
            'INSERT INTO "~dj_schemas" (name, created) VALUES (?, ?) ON CONFLICT DO NOTHING',
            (schema, datetime.datetime.now().isoformat(sep=" ")),
        )

    def drop_schema(self, cursor: Any, schema: str) -> None:
        tables = self.list_tables(cursor, schema)
        edges = [e for e in self.foreign_keys(cursor) if e.child[0] == schema and e.parent[0] == schema]
        remaining = set(tables)
        while remaining:  # drop children before parents
            leaves = [t for t in remaining if not any(e.parent[1] == t and e.child[1] in remaining and e.child[1] != t for e in edges)]
            if not leaves:
                leaves = list(remaining)
            for table in sorted(leaves):
                self.drop_table(cursor, schema, table)
                remaining.discard(table)
        cursor.execute('DELETE FROM "~dj_schemas" WHERE name = ?', (schema,))

    def list_schemas(self, cursor: Any) -> list[str]:
        cursor.execute('SELECT name FROM "~dj_schemas" ORDER BY name')
        return [row[0] for row in cursor.fetchall()]

    def list_tables(self, cursor: Any, schema: str) -> list[str]:
        cursor.execute('SELECT name FROM "~dj_tables" WHERE schema = ? ORDER BY name', (schema,))
        return [row[0] for row in cursor.fetchall()]

    # -- tables -------------------------------------------------------------------------------
    def _checks(self, attribute: Attribute) -> list[str]:
        name, info = self.quote(attribute.name), attribute.type
        checks = []
        if info.int_range and info.kind in ("int", "bool"):
            low, high = info.int_range
            high = min(high, 2**63 - 1)
            checks.append(f"{name} BETWEEN {low} AND {high}")
        elif info.kind == "float" and info.unsigned:
            checks.append(f"{name} >= 0")
        elif info.kind == "string" and info.length is not None:
            checks.append(f"length({name}) <= {info.length}")
        elif info.kind == "enum":
            checks.append(f"{name} IN (" + ", ".join(string_literal(v, False) for v in info.enum_values) + ")")
        elif info.kind == "json":
            checks.append(f"{name} IS NULL OR json_valid({name})")  # json_valid(NULL) is 0 before 3.45
        elif info.kind in ("uuid", "filepath") or (info.kind in ("blob", "attach") and info.store):
            checks.append(f"length({name}) = 16")
        return checks

    def _column_sql(self, attribute: Attribute, inline_primary_key: bool) -> str:
        parts = [self.quote(attribute.name), "REAL" if _decimal_as_real(attribute) else STORAGE[attribute.kind]]
        if inline_primary_key:
            parts.append("PRIMARY KEY AUTOINCREMENT")
        default = parse_literal(attribute.default)
        if not attribute.nullable:
            parts.append("NOT NULL")
        if default is CURRENT_TIMESTAMP:
            parts.append("DEFAULT (strftime('%Y-%m-%d %H:%M:%S', 'now', 'localtime'))")
        elif default is not NO_DEFAULT and default is not None:
            if attribute.kind == "decimal" and _decimal_as_real(attribute):
                parts.append(f"DEFAULT {float(default)!r}")
            elif isinstance(default, str):
                parts.append(f"DEFAULT {string_literal(default, False)}")
            elif attribute.kind == "decimal":
                parts.append(f"DEFAULT {string_literal(str(default), False)}")
            else:
                parts.append(f"DEFAULT {default!r}")
        for check in self._checks(attribute):
            parts.append(f"CHECK ({check})")
        return " ".join(parts)

    def create_table(self, cursor: Any, schema: str, spec: TableSpec) -> None:
        autoincrement = [a for a in spec.attributes if a.autoincrement]
        inline = bool(autoincrement) and len(spec.primary_key) == 1 and autoincrement[0].in_key
        if autoincrement and not inline:
            raise errors.DeclarationError(
                f"table {spec.table!r}: SQLite can auto-increment only a single-attribute primary key"
            )
        lines = [self._column_sql(a, inline and a.autoincrement) for a in spec.attributes]
        if not inline:
            lines.append("PRIMARY KEY (" + ", ".join(self.quote(k) for k in spec.primary_key) + ")")
        for fk in spec.foreign_keys:
            children = ", ".join(self.quote(c) for c in fk.attr_map)
            parents = ", ".join(self.quote(p) for p in fk.attr_map.values())
            on_update = "RESTRICT" if fk.parent_table.startswith("~external") else "CASCADE"
            lines.append(
                f"FOREIGN KEY ({children}) REFERENCES {self.table_ref(fk.parent_schema, fk.parent_table)} "
                f"({parents}) ON UPDATE {on_update} ON DELETE RESTRICT"
            )
        ref = self.table_ref(schema, spec.table)
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {ref} (\n" + ",\n".join(lines) + "\n) STRICT")
        for number, index in enumerate(spec.indexes):
            kind = "UNIQUE INDEX" if index.unique else "INDEX"
            index_name = self.quote(f"{schema}.{spec.table}${number}")
            columns = ", ".join(self.quote(a) for a in index.attributes)
            cursor.execute(f"CREATE {kind} IF NOT EXISTS {index_name} ON {ref} ({columns})")
        for fk in spec.foreign_keys:  # SQLite does not index foreign keys by itself
            index_name = self.quote(f"{schema}.{spec.table}$fk_{fk.parent_table}_{'_'.join(fk.attr_map)}")
            columns = ", ".join(self.quote(c) for c in fk.attr_map)
            cursor.execute(f"CREATE INDEX IF NOT EXISTS {index_name} ON {ref} ({columns})")
        heading = json.dumps([a.to_dict() for a in spec.attributes])
        cursor.execute(
            'INSERT INTO "~dj_tables" (schema, name, comment, heading) VALUES (?, ?, ?, ?)',
            (schema, spec.table, spec.comment, heading),
        )

    def drop_table(self, cursor: Any, schema: str, table: str) -> None:
        # SQLite would drop a referenced parent (leaving its children dangling); MySQL refuses
        dependents = sorted(
            f"{e.child[0]}.{e.child[1]}" for e in self.foreign_keys(cursor)
            if e.parent == (schema, table) and e.child != (schema, table)
        )
        if dependents:
            raise errors.IntegrityError(
                f"cannot drop table {schema}.{table}: {', '.join(dependents)} reference it (drop them first)"
            )
        cursor.execute(f"DROP TABLE IF EXISTS {self.table_ref(schema, table)}")
        cursor.execute('DELETE FROM "~dj_tables" WHERE schema = ? AND name = ?', (schema, table))

    def table_info(self, cursor: Any, schema: str, table: str) -> TableInfo | None:
        cursor.execute('SELECT comment, heading FROM "~dj_tables" WHERE schema = ? AND name = ?', (schema, table))
        row = cursor.fetchone()
        if row is None:
            return None
        attributes = [Attribute.from_dict(a) for a in json.loads(row[1])]
        return TableInfo(Heading(attributes, row[0]), row[0])

    def indexes(self, cursor: Any, schema: str, table: str) -> list[tuple[tuple[str, ...], bool]]:
        ref = self.table_ref(schema, table)
        cursor.execute(f"PRAGMA index_list({ref})")
        found = []
        for _seq, name, unique, origin, *_ in cursor.fetchall():
            if origin == "pk" or "$fk_" in name:  # the primary key, or our index for a foreign key
                continue
            cursor.execute(f"PRAGMA index_info({self.quote(name)})")
            columns = tuple(column for _rank, _cid, column in sorted(cursor.fetchall()))
            found.append((name, columns, bool(unique)))
        return [(columns, unique) for _name, columns, unique in sorted(found, key=_index_order)]

    def foreign_keys(self, cursor: Any) -> list[ForeignKeyEdge]:
        cursor.execute('SELECT schema, name FROM "~dj_tables"')
        edges = []
        for schema, table in cursor.fetchall():
            cursor.execute(f"PRAGMA foreign_key_list({self.table_ref(schema, table)})")
            grouped: dict[int, tuple[str, dict[str, str]]] = {}
            for fk_id, _seq, parent, child_column, parent_column, *_ in cursor.fetchall():
                grouped.setdefault(fk_id, (parent, {}))[1][child_column] = parent_column
            for parent, attr_map in grouped.values():
                parent_schema, _, parent_table = parent.partition(".")
                edges.append(ForeignKeyEdge((schema, table), (parent_schema, parent_table), attr_map))
        return edges

    # -- values -------------------------------------------------------------------------------
    def to_db(self, attribute: Attribute, value: Any) -> Any:
        if value is None:
            return None
        kind = attribute.kind
        if kind == "decimal":
            return float(value) if _decimal_as_real(attribute) else str(value)
        if kind in ("date", "datetime", "timestamp") and isinstance(value, datetime.date):
            if isinstance(value, datetime.datetime):
                return value.isoformat(sep=" ", timespec="microseconds" if value.microsecond else "seconds")
            return value.isoformat()
        if kind == "time" and isinstance(value, datetime.timedelta):
            seconds = value.total_seconds()
            sign = "-" if seconds < 0 else ""
            whole = abs(int(seconds))
            micro = round(abs(seconds) * 1e6) % 1_000_000
            text = f"{sign}{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"
            return text + (f".{micro:06d}" if micro else "")
        if kind == "time" and isinstance(value, datetime.time):
            return value.isoformat()
        if kind == "int" and isinstance(value, int) and value > 2**63 - 1:
            raise errors.DataValueError(
                f"attribute {attribute.name!r}: {value} does not fit SQLite's 64-bit integers"
            )
        return value

    def from_db(self, attribute: Attribute, value: Any) -> Any:
        if isinstance(value, float) and attribute.kind == "decimal":  # back to the declared scale
            return decimal.Decimal(f"{value:.{attribute.type.scale or 0}f}")
        if value is None or not isinstance(value, str):
            return value
        kind = attribute.kind
        try:
            if kind == "decimal":
                return decimal.Decimal(value)
            if kind in ("datetime", "timestamp"):
                return datetime.datetime.fromisoformat(value)
            if kind == "date":
                return datetime.date.fromisoformat(value)
            if kind == "time":
                match = TIME_TEXT.match(value)
                if match:
                    sign, hours, minutes, seconds, fraction = match.groups()
                    delta = datetime.timedelta(
                        hours=int(hours), minutes=int(minutes), seconds=int(seconds),
                        microseconds=int((fraction or "0").ljust(6, "0")),
                    )
                    return -delta if sign else delta
        except ValueError:
            return value
        return value

    # -- errors -------------------------------------------------------------------------------
    def is_lost_connection(self, error: Exception) -> bool:
        return isinstance(error, sqlite3.ProgrammingError) and "closed" in str(error).lower()

    def translate_error(self, error: Exception, sql: str) -> DataJointError | None:
        if not isinstance(error, sqlite3.Error):
            return None
        message = str(error)
        lowered = message.lower()
        if self.is_lost_connection(error):
            return errors.LostConnectionError(f"{self.describe_target()}: {message}")
        if isinstance(error, sqlite3.IntegrityError):
            if "unique constraint" in lowered or "primary key" in lowered:
                return errors.DuplicateError(f"duplicate entry: {message}")
            if "foreign key" in lowered:
                return errors.IntegrityError(f"foreign key constraint failed: {message}")
            if "not null" in lowered:
                return errors.DataValueError(f"missing value: {message}")
            if "check constraint" in lowered:
                return errors.DataValueError(f"value out of range or not allowed: {message}")
            if "cannot store" in lowered:
                return errors.DataValueError(f"wrong value type: {message}")
            return errors.IntegrityError(message)
        if "no such table" in lowered:
            return errors.MissingTableError(message)
        if "no such column" in lowered:
            return errors.QueryError(message)
        if "database is locked" in lowered or "busy" in lowered:
            return errors.LostConnectionError(f"{self.describe_target()} is busy: {message}")
        if "too big" in lowered:
            return errors.DataValueError(f"value too large for SQLite (at most 10^9 bytes per value): {message}")
        if "syntax error" in lowered or "no such function" in lowered:
            return errors.QueryError(message)
        if "already exists" in lowered:
            return errors.DeclarationError(message)
        return DataJointError(f"SQLite error: {message}")
