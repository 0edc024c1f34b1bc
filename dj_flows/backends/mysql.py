"""MySQL/MariaDB through pymysql: the production backend, layout-compatible with DataJoint 0.14.

Tables are declared as DataJoint 0.14 declares them (InnoDB, `:type:` column comments, foreign keys
ON UPDATE CASCADE ON DELETE RESTRICT), and introspected from SHOW FULL COLUMNS and
information_schema, so a schema declared by either side reads the same on the other.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pymysql

from .. import errors
from ..errors import DataJointError
from ..heading import Attribute, Heading, TypeInfo, parse_type
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

SQL_MODE = "NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION"
SPECIAL_COMMENT = re.compile(r"^:(?P<type>[^:]+):(?P<comment>.*)$", re.S)
LOST_CONNECTION_CODES = {2006, 2013, 2014, 2045, 2055, 1927, 4031}
UNREACHABLE_CODES = {2002, 2003, 2005}


class MySQLBackend(Backend):
    name = "mysql"
    lacks = frozenset()
    begin_statement = "START TRANSACTION WITH CONSISTENT SNAPSHOT"
    lock_suffix = " FOR UPDATE"
    read_committed_statement = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED"
    session_id_sql = "CONNECTION_ID()"
    current_user_sql = "USER()"
    update_counts_matched_rows = False

    def older_than(self, column: str, seconds: int) -> str:
        return f"{self.quote(column)} <= NOW() - INTERVAL {int(seconds)} SECOND"

    # -- connecting ---------------------------------------------------------------------------
    def describe_target(self) -> str:
        user = self.settings.get("database.user") or "root"
        return f"{user}@{self.settings.get('database.host')}:{self.settings.get('database.port')}"

    def connect(self) -> Any:
        host = str(self.settings.get("database.host") or "localhost")
        port = int(self.settings.get("database.port") or 3306)
        if ":" in host:  # DataJoint accepts "host:port"
            host, _, port_text = host.partition(":")
            port = int(port_text)
        use_tls = self.settings.get("database.use_tls")
        # use_tls False: no TLS at all (pymysql otherwise builds a default TLS context on every
        # connect, ~50-300 ms of CA loading, to try TLS opportunistically); None: that attempt
        ssl = {"ssl": {}} if use_tls else {"ssl_disabled": True} if use_tls is False else {}
        try:
            raw = pymysql.connect(
                host=host,
                port=port,
                user=self.settings.get("database.user") or "root",
                password=self.settings.get("database.password") or "",
                charset=self.settings.get("connection.charset") or "utf8mb4",
                autocommit=True,
                sql_mode=SQL_MODE,
                init_command=None,
                connect_timeout=10,
                **ssl,
            )
        except pymysql.err.OperationalError as error:
            code = error.args[0] if error.args else None
            reason = "access denied" if code == 1045 else (error.args[1] if len(error.args) > 1 else str(error))
            raise errors.DatabaseConnectionError(
                f"cannot connect to MySQL at {self.describe_target()}: {reason}"
            ) from None
        return raw

    def is_connected(self, raw: Any) -> bool:
        try:
            raw.ping(reconnect=False)
            return True
        except Exception:
            return False

    # -- SQL text -------------------------------------------------------------------------------
    def quote(self, identifier: str) -> str:
        return "`" + identifier.replace("`", "``") + "`"

    def table_ref(self, schema: str, table: str) -> str:
        return f"{self.quote(schema)}.{self.quote(table)}"

    def finalize(self, sql: str) -> str:
        return sql.replace("%", "%%").replace(PH, "%s")

    def insert_statement(
        self, table: str, columns: Sequence[str], mode: str, primary_key: Sequence[str], source: str | None = None
    ) -> str:
        names = ", ".join(self.quote(c) for c in columns)
        if source is None:
            sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join([PH] * len(columns))})"
        else:
            sql = f"INSERT INTO {table} ({names}) SELECT * FROM ({source}) AS {self.quote('$insert')}"
        # columns are qualified by the table: in INSERT ... SELECT a bare name would be ambiguous
        if mode == "skip":
            first = f"{table}.{self.quote(primary_key[0])}"
            sql += f" ON DUPLICATE KEY UPDATE {first}={first}"
        elif mode == "touch":
            sql += " ON DUPLICATE KEY UPDATE `timestamp`=CURRENT_TIMESTAMP"
        elif mode == "replace":
            updates = [c for c in columns if c not in primary_key] or [primary_key[0]]
            sql += " ON DUPLICATE KEY UPDATE " + ", ".join(
                f"{table}.{self.quote(c)}=VALUES({self.quote(c)})" for c in updates
            )
        return sql

    # -- schemas ------------------------------------------------------------------------------
    def create_schema(self, cursor: Any, schema: str) -> None:
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS {self.quote(schema)}")

    def drop_schema(self, cursor: Any, schema: str) -> None:
        cursor.execute(f"DROP DATABASE IF EXISTS {self.quote(schema)}")

    def list_schemas(self, cursor: Any) -> list[str]:
        cursor.execute(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT IN "
            "('information_schema', 'performance_schema', 'mysql', 'sys') ORDER BY schema_name"
        )
        return [row[0] for row in cursor.fetchall()]

    def list_tables(self, cursor: Any, schema: str) -> list[str]:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY table_name",
            (schema,),
        )
        return [row[0] for row in cursor.fetchall()]

    # -- tables -------------------------------------------------------------------------------
    def _column_sql(self, attribute: Attribute) -> str:
        parts = [self.quote(attribute.name), attribute.sql_type]
        default = parse_literal(attribute.default)
        if attribute.nullable:
            parts.append("DEFAULT NULL")
        else:
            parts.append("NOT NULL")
            if default is CURRENT_TIMESTAMP:
                parts.append("DEFAULT CURRENT_TIMESTAMP")
            elif default is not NO_DEFAULT and default is not None:
                rendered = string_literal(default, True) if isinstance(default, str) else repr(default)
                parts.append(f"DEFAULT {rendered}")
        if attribute.autoincrement:
            parts.append("AUTO_INCREMENT")
        parts.append(f"COMMENT {string_literal(attribute.mysql_comment, True)}")
        return " ".join(parts)

    def create_table_sql(self, schema: str, spec: TableSpec) -> str:
        lines = [self._column_sql(a) for a in spec.attributes]
        lines.append("PRIMARY KEY (" + ", ".join(self.quote(k) for k in spec.primary_key) + ")")
        for fk in spec.foreign_keys:
            children = ", ".join(self.quote(c) for c in fk.attr_map)
            parents = ", ".join(self.quote(p) for p in fk.attr_map.values())
            on_update = "RESTRICT" if fk.parent_table.startswith("~external") else "CASCADE"
            lines.append(
                f"FOREIGN KEY ({children}) REFERENCES {self.table_ref(fk.parent_schema, fk.parent_table)} "
                f"({parents}) ON UPDATE {on_update} ON DELETE RESTRICT"
            )
        for index in spec.indexes:
            kind = "UNIQUE INDEX" if index.unique else "INDEX"
            lines.append(f"{kind} (" + ", ".join(self.quote(a) for a in index.attributes) + ")")
        body = ",\n".join(lines)
        return (
            f"CREATE TABLE IF NOT EXISTS {self.table_ref(schema, spec.table)} (\n{body}\n) "
            f"ENGINE=InnoDB, COMMENT {string_literal(spec.comment, True)}"
        )

    def create_table(self, cursor: Any, schema: str, spec: TableSpec) -> None:
        cursor.execute(self.create_table_sql(schema, spec))

    def drop_table(self, cursor: Any, schema: str, table: str) -> None:
        cursor.execute(f"DROP TABLE IF EXISTS {self.table_ref(schema, table)}")

    def table_info(self, cursor: Any, schema: str, table: str) -> TableInfo | None:
        cursor.execute(
            "SELECT table_comment FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (schema, table),
        )
        row = cursor.fetchone()
        if row is None:
            return None
        comment = row[0] or ""
        cursor.execute(
            "SELECT constraint_name, check_clause FROM information_schema.check_constraints "
            "WHERE constraint_schema = %s AND table_name = %s",
            (schema, table),
        )
        json_columns = {name for name, clause in cursor.fetchall() if "json_valid" in (clause or "").lower()}
        cursor.execute(f"SHOW FULL COLUMNS FROM {self.table_ref(schema, table)}")
        attributes = [self._attribute_from_column(row, json_columns) for row in cursor.fetchall()]
        return TableInfo(Heading(attributes, comment), comment)

    def _attribute_from_column(self, row: tuple, json_columns: set[str]) -> Attribute:
        name, column_type, _collation, null, key, default, extra, _privileges, comment = row[:9]
        comment = comment or ""
        declared = column_type
        special = SPECIAL_COMMENT.match(comment)
        if special:
            declared, comment = special.group("type"), special.group("comment")
        elif name in json_columns or column_type.lower() == "json":
            declared = "json"
        if "auto_increment" in (extra or "").lower():
            declared += " auto_increment"
        try:
            type_info = parse_type(declared)
        except DataJointError:  # a native type DataJoint does not declare (text, year, set, ...)
            type_info = TypeInfo("native", column_type, column_type)
        nullable = null == "YES"
        if nullable:
            default_text = "null"
        elif default is None:
            default_text = None
        elif str(default).upper().startswith("CURRENT_TIMESTAMP"):
            default_text = "CURRENT_TIMESTAMP"
        elif type_info.kind in ("int", "float", "decimal", "bool") or str(default).startswith("'"):
            default_text = str(default)
        else:
            default_text = string_literal(str(default), True)
        return Attribute(
            name=name,
            type=type_info,
            in_key=key == "PRI",
            nullable=nullable,
            default=default_text,
            comment=comment,
        )

    def indexes(self, cursor: Any, schema: str, table: str) -> list[tuple[tuple[str, ...], bool]]:
        cursor.execute(
            "SELECT index_name, non_unique, column_name FROM information_schema.statistics "
            "WHERE table_schema = %s AND table_name = %s AND index_name != 'PRIMARY' "
            "ORDER BY index_name, seq_in_index",
            (schema, table),
        )
        grouped: dict[str, tuple[list[str], bool]] = {}
        for name, non_unique, column in cursor.fetchall():
            grouped.setdefault(name, ([], not int(non_unique)))[0].append(column)
        return [(tuple(columns), unique) for columns, unique in grouped.values()]

    def foreign_keys(self, cursor: Any) -> list[ForeignKeyEdge]:
        cursor.execute(
            "SELECT table_schema, table_name, constraint_name, column_name, "
            "referenced_table_schema, referenced_table_name, referenced_column_name "
            "FROM information_schema.key_column_usage WHERE referenced_table_name IS NOT NULL "
            "ORDER BY table_schema, table_name, constraint_name, ordinal_position"
        )
        grouped: dict[tuple, dict[str, str]] = {}
        parents: dict[tuple, tuple[str, str]] = {}
        for schema, table, constraint, column, parent_schema, parent_table, parent_column in cursor.fetchall():
            key = (schema, table, constraint)
            grouped.setdefault(key, {})[column] = parent_column
            parents[key] = (parent_schema, parent_table)
        return [
            ForeignKeyEdge(child=(key[0], key[1]), parent=parents[key], attr_map=attr_map)
            for key, attr_map in grouped.items()
        ]

    # -- values -------------------------------------------------------------------------------
    def from_db(self, attribute: Attribute, value: Any) -> Any:
        return value

    # -- errors -------------------------------------------------------------------------------
    def is_lost_connection(self, error: Exception) -> bool:
        if isinstance(error, pymysql.err.InterfaceError):
            return True
        if isinstance(error, pymysql.err.OperationalError) and error.args:
            return error.args[0] in LOST_CONNECTION_CODES | UNREACHABLE_CODES
        return isinstance(error, ConnectionError | BrokenPipeError)

    def translate_error(self, error: Exception, sql: str) -> DataJointError | None:
        if not isinstance(error, pymysql.err.Error):
            return None
        if self.is_lost_connection(error):
            return errors.LostConnectionError(f"lost connection to MySQL at {self.describe_target()}: {error}")
        code = error.args[0] if error.args else None
        message = error.args[1] if len(error.args) > 1 else str(error)
        mapping = {
            1062: errors.DuplicateError,
            1451: errors.IntegrityError,
            1452: errors.IntegrityError,
            1216: errors.IntegrityError,
            1217: errors.IntegrityError,
            1048: errors.DataValueError,
            1364: errors.MissingAttributeError,
            1054: errors.QueryError,
            1146: errors.MissingTableError,
            1049: errors.MissingTableError,
            1044: errors.AccessError,
            1045: errors.AccessError,
            1142: errors.AccessError,
            1143: errors.AccessError,
            1064: errors.QueryError,
            1264: errors.DataValueError,
            1265: errors.DataValueError,
            1292: errors.DataValueError,
            1366: errors.DataValueError,
            1406: errors.DataValueError,
            3140: errors.DataValueError,
            4025: errors.DataValueError,
            1050: errors.DeclarationError,
        }
        return mapping.get(code, DataJointError)(f"MySQL error {code}: {message}")
