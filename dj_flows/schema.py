"""Schemas: the `@schema` decorator that binds table classes to a database and declares them.

A schema is a database (MySQL) or a name prefix inside the pipeline file (SQLite). Decorating a
class names its table from the class name and tier, declares it if missing (resolving `-> Parent`
in the decorating module's namespace), fills a Lookup's `contents`, and does the same for its parts.
"""

from __future__ import annotations

import getpass
import inspect
import logging
import re
import socket
from collections.abc import Mapping
from typing import Any

from .connection import Connection, conn
from .errors import DataJointError, DeclarationError
from .naming import class_name_of, split_part, tier_of
from .settings import config
from .table import FreeTable, _ask, _interactive
from .tiers import Computed, Imported, Lookup, Manual, Part, UserTable
from .version import __version__

logger = logging.getLogger("dj_flows.schema")
SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_$]{1,64}$")
LOG_DEFINITION = """# event logging table for `{database}`
id       :int unsigned auto_increment     # event order id
---
timestamp = CURRENT_TIMESTAMP : timestamp # event timestamp
version  :varchar(12)                     # datajoint version
user     :varchar(255)                    # user@host
host=""  :varchar(255)                    # system hostname
event="" :varchar(255)                    # event message
"""


class _LogTable(FreeTable):
    definition = ""


class Schema:
    """A database of tables, used as a class decorator."""

    def __init__(
        self,
        schema_name: str | None = None,
        context: Mapping[str, Any] | None = None,
        *,
        connection: Connection | None = None,
        create_schema: bool = True,
        create_tables: bool = True,
        add_objects: Mapping[str, Any] | None = None,
    ) -> None:
        self.database: str | None = None
        self.context = context
        self.connection: Connection | None = connection
        self.create_tables = create_tables
        self.add_objects = add_objects
        self._external: Any = None
        self._jobs: Any = None
        if schema_name is not None:
            self.activate(schema_name, connection=connection, create_schema=create_schema, create_tables=create_tables, add_objects=add_objects)

    def activate(
        self,
        schema_name: str,
        *,
        connection: Connection | None = None,
        create_schema: bool = True,
        create_tables: bool = True,
        add_objects: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(schema_name, str) or not SCHEMA_NAME.match(schema_name):
            raise DataJointError(
                f"invalid schema name {schema_name!r}: use 1-64 letters, digits, '_' or '$'"
            )
        self.database = schema_name
        self.connection = connection or self.connection or conn()
        self.create_tables = create_tables
        if add_objects:
            self.add_objects = add_objects
        if not self.exists:
            if not create_schema:
                raise DataJointError(f"schema {schema_name!r} does not exist and create_schema=False")
            with self.connection.transaction():
                self.connection.backend.create_schema(self.connection._cursor(), schema_name)
            logger.info("created schema %s", schema_name)
        self.connection.schemas[schema_name] = self
        self._declare_log()

    def _declare_log(self) -> None:
        log = self.log_table
        if not log.is_declared and self.create_tables:
            log.definition = LOG_DEFINITION.format(database=self.database)
            log.declare({})

    @property
    def log_table(self) -> FreeTable:
        return _LogTable(self.connection, self.database, "~log")

    def log(self, event: str) -> None:
        """Record an event in the schema's `~log` table (DataJoint's format)."""
        log = self.log_table
        if not log.is_declared:
            return
        try:
            user = f"{config.get('database.user') or getpass.getuser()}"
        except Exception:  # noqa: BLE001 - no login name in some containers
            user = "unknown"
        log.insert1({"version": __version__[:12], "user": user[:255], "host": socket.gethostname()[:255], "event": event[:255]})

    def _check(self) -> None:
        if self.database is None or self.connection is None:
            raise DataJointError("the schema is not activated: call schema.activate(name)")

    @property
    def exists(self) -> bool:
        self._check()
        return self.database in self.connection.backend.list_schemas(self.connection._cursor())

    def __repr__(self) -> str:
        return f"Schema `{self.database}`"

    # -- decorating -----------------------------------------------------------------------------
    def __call__(self, cls: type, *, context: Mapping[str, Any] | None = None) -> type:
        self._check()
        if context is None:
            if self.context is not None:
                context = self.context
            else:
                frame = inspect.currentframe().f_back
                context = {**frame.f_globals, **frame.f_locals}
                del frame
        context = dict(context)
        if self.add_objects:
            context.update(self.add_objects)
        if not (isinstance(cls, type) and issubclass(cls, UserTable)):
            raise DataJointError(f"@schema decorates table classes (Manual, Lookup, Imported, Computed), not {cls!r}")
        if issubclass(cls, Part):
            raise DataJointError(f"part table {cls.__name__} must be nested inside its master, not decorated")
        declared: list[UserTable] = []
        try:
            self._decorate(cls, {**context, cls.__name__: cls}, declared)
        except BaseException:
            self._undeclare(declared)
            raise
        return cls

    def _undeclare(self, declared: list[UserTable]) -> None:
        """Drop the tables this decoration declared before it failed (a part's error, bad Lookup
        contents), so nothing half-declared is left behind."""
        for table in reversed(declared):
            try:
                table.drop_quick()
                self.log(f"Dropped {table.full_table_name} (its declaration failed)")
            except DataJointError as error:  # pragma: no cover - reported, the original error wins
                logger.warning("could not drop %s after a failed declaration: %s", table.full_table_name, error)

    def _decorate(self, cls: type, context: dict[str, Any], declared: list[UserTable]) -> None:
        cls.database = self.database
        cls._connection = self.connection
        cls._heading = None
        cls._table_name = None
        cls._table_name = cls._compute_table_name()
        instance = cls()
        if self.create_tables and not instance.is_declared:
            instance.declare(context)
            declared.append(instance)
            self.log(f"Declared {instance.full_table_name}")
        elif not instance.is_declared:
            raise DataJointError(f"table {cls.__name__} is not declared and create_tables=False")
        if issubclass(cls, Lookup) and getattr(cls, "contents", None) is not None:
            contents = list(cls.contents)
            if contents:
                instance.insert(contents, skip_duplicates=True)
        for part in cls.parts_of():
            part.master = cls
            part_context = {**context, "master": cls, cls.__name__: cls}
            part_context.update({name: value for name, value in vars(cls).items() if isinstance(value, type)})
            self._decorate(part, part_context, declared)

    # -- whole-schema operations ----------------------------------------------------------------
    def list_tables(self) -> list[str]:
        self._check()
        tables = self.connection.backend.list_tables(self.connection._cursor(), self.database)
        return [t for t in tables if not t.startswith("~")]

    def drop(self, force: bool = False) -> None:
        """Drop the schema and all its tables (asks first in safemode when interactive)."""
        self._check()
        if not self.exists:
            logger.info("schema %s does not exist; nothing to drop", self.database)
            return
        if config["safemode"] and not force and _interactive():
            if _ask(f"Proceed to delete entire schema `{self.database}`?") != "yes":
                return
        connection = self.connection
        connection.invalidate()
        graph = connection.dependencies
        ours = [(self.database, t) for t in connection.backend.list_tables(connection._cursor(), self.database)]
        outside = sorted({e.child for node in ours for e in graph.children(node) if e.child[0] != self.database})
        if outside:
            names = ", ".join(f"{s}.{t}" for s, t in outside)
            raise DataJointError(f"cannot drop schema {self.database!r}: tables in other schemas depend on it ({names})")
        with connection.transaction():
            connection.backend.drop_schema(connection._cursor(), self.database)
        connection.invalidate()
        connection.schemas.pop(self.database, None)
        self._external = None
        self._jobs = None

    def spawn_missing_classes(self, context: dict[str, Any] | None = None) -> None:
        """Create classes for tables declared elsewhere (e.g. by DataJoint) into `context`."""
        self._check()
        if context is None:
            frame = inspect.currentframe().f_back
            context = frame.f_locals
            del frame
        tiers = {"manual": Manual, "lookup": Lookup, "imported": Imported, "computed": Computed}
        tables = self.list_tables()
        masters: dict[str, type] = {}
        for table in sorted(tables, key=lambda t: (split_part(t) is not None, t)):
            try:
                tier = tier_of(table)
            except DeclarationError:
                continue
            if tier == "part":
                master_name, _ = split_part(table)
                master = masters.get(master_name)
                existing = getattr(master, class_name_of(table), None) if master is not None else None
                if master is None or (isinstance(existing, type) and issubclass(existing, Part)):
                    continue  # no master to attach it to, or the master's own class has it already
                part = type(class_name_of(table), (Part,), {"definition": ""})
                part.master = master
                part.database, part._connection, part._table_name = self.database, self.connection, table
                setattr(master, part.__name__, part)
                continue
            name = class_name_of(table)
            if name in context and isinstance(context[name], type) and issubclass(context[name], UserTable):
                masters[table] = context[name]
                continue
            cls = type(name, (tiers[tier],), {"definition": ""})
            if tier in ("imported", "computed"):
                cls.make = _spawned_make
            cls.database, cls._connection, cls._table_name = self.database, self.connection, table
            context[name] = cls
            masters[table] = cls

    # -- storage and jobs -----------------------------------------------------------------------
    @property
    def external(self) -> Any:
        """store name -> the `~external_<store>` tracking table of this schema."""
        self._check()
        from .stores.external import ExternalMapping

        if self._external is None:
            self._external = ExternalMapping(self)
        return self._external

    @property
    def jobs(self) -> Any:
        self._check()
        from .jobs import JobTable

        if self._jobs is None:
            self._jobs = JobTable(self.connection, self.database)
        return self._jobs


def _spawned_make(self: Any, key: dict) -> None:
    raise DataJointError(f"{type(self).__name__} was spawned from the database and has no make()")


def list_schemas(connection: Connection | None = None) -> list[str]:
    """Every schema the connection can see."""
    connection = connection or conn()
    return connection.backend.list_schemas(connection._cursor())


schema = Schema
