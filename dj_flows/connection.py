"""Connections: one per thread (and so per process), explicit transactions, reconnect on loss.

A `Connection` owns a backend and a raw DB-API connection. It is the only place that executes SQL:
it finalizes the engine's placeholders, translates driver errors into the engine's error family, and
reconnects once when the link was lost outside a transaction (inside one, the transaction is gone,
so it raises `LostConnectionError` for the caller to retry the whole unit of work).

The raw link and the transaction depth belong to the calling thread in the calling process: table
classes share one `Connection`, so threads (populate workers, Prefect task threads) each get their
own link from it, and a forked child never touches (or closes) the link it inherited.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .backends import Backend, TableInfo, make_backend
from .errors import DataJointError, LostConnectionError, QueryError
from .heading import Heading
from .settings import config

logger = logging.getLogger("dj_flows.connection")
CONNECTION_KEYS = (
    "database.backend",
    "database.sqlite_path",
    "database.host",
    "database.port",
    "database.user",
    "database.password",
    "database.use_tls",
    "database.reconnect",
    "connection.charset",
)


class Connection:
    """A live link to one database server (or SQLite file)."""

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        settings = dict(settings) if settings is not None else {k: config[k] for k in CONNECTION_KEYS}
        self.backend: Backend = make_backend(settings)
        self._link = _Link()
        self._table_info: dict[tuple[str, str], TableInfo | None] = {}
        self.generation = 0  # bumped by invalidate(): cached headings older than it are stale
        self._dependencies: Any = None
        self.schemas: dict[str, Any] = {}
        self.connect()

    # -- per-thread link -----------------------------------------------------------------------
    @property
    def _raw(self) -> Any:
        link = self._link
        if link.pid != os.getpid():  # forked: the parent's link is not ours to use or to close
            _inherited.append(link.raw)
            link.raw, link.depth, link.pid = None, 0, os.getpid()
        return link.raw

    @_raw.setter
    def _raw(self, value: Any) -> None:
        self._raw  # noqa: B018 - settles a link inherited through fork first
        self._link.raw = value

    @property
    def _transaction_depth(self) -> int:
        return self._link.depth if self._link.pid == os.getpid() else 0

    @_transaction_depth.setter
    def _transaction_depth(self, value: int) -> None:
        self._raw  # noqa: B018
        self._link.depth = value

    # -- lifecycle ------------------------------------------------------------------------------
    def connect(self) -> None:
        self._raw = self.backend.connect()
        init_function = config.get("connection.init_function")
        if init_function:
            self.query(init_function)

    def close(self) -> None:
        if self._raw is not None:
            with contextlib.suppress(Exception):
                self._raw.close()
        self._raw = None

    @property
    def is_connected(self) -> bool:
        return self._raw is not None and self.backend.is_connected(self._raw)

    def __repr__(self) -> str:
        state = "connected" if self._raw is not None else "disconnected"
        return f"DataJoint connection ({state}) {self.backend.describe_target()}"

    # -- executing ------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = (), *, many: bool = False) -> Any:
        """Execute one statement; return the cursor. `many` runs executemany over `params`."""
        final_sql = self.backend.finalize(sql)
        for attempt in (1, 2):
            if self._raw is None:
                self.connect()
            try:
                cursor = self._raw.cursor()  # a closed link fails here already (SQLite)
                if many:
                    cursor.executemany(final_sql, params)
                else:
                    cursor.execute(final_sql, tuple(params))
                return cursor
            except Exception as error:  # noqa: BLE001 - translated or re-raised below
                if self.backend.is_lost_connection(error):
                    self.close()
                    if attempt == 1 and not self.in_transaction and config.get("database.reconnect", True):
                        logger.warning("lost connection to %s; reconnecting", self.backend.describe_target())
                        continue
                    self._transaction_depth = 0
                    raise LostConnectionError(
                        f"lost connection to {self.backend.describe_target()}"
                        + (" during a transaction (rolled back)" if self.in_transaction else "")
                    ) from error
                translated = self.backend.translate_error(error, final_sql)
                if translated is not None:
                    raise translated from error
                raise
        raise QueryError("unreachable")  # pragma: no cover

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return list(self.query(sql, params).fetchall())

    # -- transactions ---------------------------------------------------------------------------
    @property
    def in_transaction(self) -> bool:
        return self._transaction_depth > 0

    @contextlib.contextmanager
    def transaction(self, *, read_committed: bool = False) -> Iterator[Connection]:
        """A transaction; nested uses join the outermost one (its commit or rollback decides).
        `read_committed`: every statement sees the latest commits (for re-checks after locking)."""
        if self._transaction_depth:
            self._transaction_depth += 1
            try:
                yield self
            finally:
                self._transaction_depth -= 1
            return
        self._begin(read_committed)
        try:
            yield self
        except BaseException:
            self._transaction_depth = 0
            if self._raw is not None:
                with contextlib.suppress(Exception):
                    self.query("ROLLBACK")
            raise
        self._transaction_depth = 0
        self.query("COMMIT")

    def start_transaction(self) -> None:
        if self.in_transaction:
            raise DataJointError("a transaction is already in progress on this connection")
        self._begin()

    def _begin(self, read_committed: bool = False) -> None:
        if read_committed and self.backend.read_committed_statement:
            self.query(self.backend.read_committed_statement)
        try:
            self.query(self.backend.begin_statement)
        except BaseException:
            # an interrupt (SIGTERM as SystemExit) can land after the server began the
            # transaction: never leave one open that the engine does not know about
            if self._raw is not None:
                with contextlib.suppress(Exception):
                    self.query("ROLLBACK")
            raise
        self._transaction_depth = 1

    def commit_transaction(self) -> None:
        self._transaction_depth = 0
        self.query("COMMIT")

    def cancel_transaction(self) -> None:
        self._transaction_depth = 0
        self.query("ROLLBACK")

    # -- metadata caches ------------------------------------------------------------------------
    def table_info(self, schema: str, table: str) -> TableInfo | None:
        key = (schema, table)
        if key not in self._table_info or self._table_info[key] is None:
            info = self.backend.table_info(self._cursor(), schema, table)
            if info is not None:  # attributes remember their schema (external objects need it)
                attributes = [dataclasses.replace(a, database=schema) for a in info.heading]
                info = TableInfo(Heading(attributes, info.comment), info.comment)
            self._table_info[key] = info
        return self._table_info[key]

    def invalidate(self) -> None:
        """Forget cached headings and dependencies (after DDL)."""
        self._table_info.clear()
        self._dependencies = None
        self.generation += 1  # tables drop the headings they keep

    @property
    def dependencies(self) -> Any:
        if self._dependencies is None:
            from .dependencies import Dependencies

            self._dependencies = Dependencies(self.backend.foreign_keys(self._cursor()))
        return self._dependencies

    def _cursor(self) -> Any:
        if self._raw is None:
            self.connect()
        return _TranslatingCursor(self)


class _TranslatingCursor:
    """A cursor for backend introspection code that still translates errors and placeholders."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._cursor: Any = None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        backend = self._connection.backend
        # introspection SQL is written in the driver's own paramstyle: pass it through unchanged
        cursor = self._connection._raw.cursor()
        try:
            cursor.execute(sql, tuple(params))
        except Exception as error:
            translated = backend.translate_error(error, sql)
            if translated is not None:
                raise translated from error
            raise
        self._cursor = cursor

    def fetchall(self) -> list[tuple]:
        return list(self._cursor.fetchall())

    def fetchone(self) -> tuple | None:
        return self._cursor.fetchone()


class _Link(threading.local):
    """One thread's raw DB-API connection and transaction depth, in the process that opened it."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.raw: Any = None
        self.depth = 0


_inherited: list[Any] = []  # links a forked child inherited: kept (never closed) so that no
# finalizer sends a goodbye on the parent's session or drops the parent's SQLite locks

_local = threading.local()


def conn(
    host: str | None = None,
    user: str | None = None,
    password: str | None = None,
    *,
    reset: bool = False,
    use_tls: bool | None = None,
) -> Connection:
    """The calling thread's connection for the current config (DataJoint's `dj.conn`)."""
    if host is not None:
        config["database.host"] = host
    if user is not None:
        config["database.user"] = user
    if password is not None:
        config["database.password"] = password
    if use_tls is not None:
        config["database.use_tls"] = use_tls
    key = (os.getpid(), *(repr(config.get(k)) for k in CONNECTION_KEYS))
    cached = getattr(_local, "connections", None)
    if cached is None:
        cached = _local.connections = {}
    connection = cached.get(key)
    if connection is None or reset:
        if connection is not None:
            connection.close()
        connection = cached[key] = Connection()
    return connection
