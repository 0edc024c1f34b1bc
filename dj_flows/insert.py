"""Inserting and updating rows: normalization, validation, encoding, and errors that name the row.

Rows come as dicts, sequences in heading order, numpy records or DataFrames; they are checked and
encoded in Python (so both backends refuse a bad value alike), grouped by the columns they give so
that the database applies defaults, and inserted in batches inside one transaction. External objects
are uploaded before the transaction and tracked inside it (see stores/external.py). A refused batch
is undone before the row at fault is named.
"""

from __future__ import annotations

import collections.abc
import datetime
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .backends import PH
from .errors import (
    DataJointError,
    DataValueError,
    DuplicateError,
    IntegrityError,
    MissingAttributeError,
    QueryError,
)
from .expression import QueryExpression
from .heading import Attribute, Heading
from .values import encode_value, make_encoder, make_missing_test

logger = logging.getLogger("dj_flows.insert")


class InsertMixin:
    """insert, insert1, update1 and their helpers, mixed into Table."""

    # -- insert ---------------------------------------------------------------------------------
    def insert1(self, row: Any, **kwargs: Any) -> None:
        """Insert one row (a dict, a sequence in heading order, or a numpy record)."""
        self.insert((row,), **kwargs)

    def insert(
        self,
        rows: Any,
        replace: bool = False,
        skip_duplicates: bool = False,
        ignore_extra_fields: bool = False,
        allow_direct_insert: bool | None = None,
    ) -> None:
        """Insert rows; all or nothing. `replace` updates existing rows in place."""
        if not (allow_direct_insert or self._allow_insert):
            raise DataJointError(
                f"inserts into auto-populated table {self.table_name!r} belong in make(); "
                "pass allow_direct_insert=True to insert directly"
            )
        if replace and skip_duplicates:
            raise DataJointError("insert: replace and skip_duplicates cannot both be set")
        mode = "replace" if replace else "skip" if skip_duplicates else "error"
        if isinstance(rows, type) and issubclass(rows, QueryExpression):
            rows = rows()
        if isinstance(rows, QueryExpression):
            self._insert_from_query(rows, mode, ignore_extra_fields)
            return
        heading = self.heading
        normalized = [self._row_dict(row, heading, ignore_extra_fields) for row in _iterate_rows(rows)]
        if not normalized:
            return
        connection = self.connection
        groups, pending = self._encode_rows(normalized, heading)  # uploads external objects first
        refused = (DuplicateError, IntegrityError, DataValueError, MissingAttributeError)
        failure: tuple | None = None
        # inside a caller's transaction a savepoint keeps the batch all-or-nothing on its own; one
        # row in one statement is atomic already (and make() inserts so, once per key: no round trips)
        single = len(normalized) == 1 and len(groups) == 1 and not pending
        nested = connection.in_transaction and not single
        try:
            with connection.transaction():
                if nested:
                    connection.query("SAVEPOINT dj_insert")
                if pending:
                    from .stores.external import finish_external_insert

                    finish_external_insert(pending)
                for columns, values in groups.items():
                    sql = connection.backend.insert_statement(self.full_table_name, columns, mode, heading.primary_key)
                    try:
                        connection.query(sql, values, many=True)
                    except refused as error:
                        failure = (error, columns, values)
                        if nested:
                            connection.query("ROLLBACK TO SAVEPOINT dj_insert")
                        raise
                if nested:
                    connection.query("RELEASE SAVEPOINT dj_insert")
        except refused as error:
            if failure is None or failure[0] is not error:
                raise
            detail = self._diagnose(*failure)  # after the rollback: only rows stored before remain
            raise type(error)(f"insert into {self.database}.{self.table_name}: {detail}{error}") from None

    def _diagnose(self, error: DataJointError, columns: tuple[str, ...], values: list[tuple]) -> str:
        """Name the row at fault after the database refused a batch (the driver does not say which):
        a key given twice, a key already stored, or a foreign key with no parent row."""
        try:
            if isinstance(error, DuplicateError):
                return self._duplicate_detail(columns, values)
            if isinstance(error, IntegrityError):
                return self._orphan_detail(columns, values)
        except DataJointError:  # the diagnosis is a courtesy: never mask the original error
            pass
        return ""

    def _existing(self, table: str, names: list[str], tuples: list[tuple]) -> set[tuple]:
        """Which of `tuples` (encoded values of `names`) exist in `table`, asked in chunks."""
        backend, found = self.connection.backend, set()
        quoted = [backend.quote(n) for n in names]
        for start in range(0, len(tuples), 500):
            chunk = tuples[start : start + 500]
            where = " OR ".join("(" + " AND ".join(f"{q} = {PH}" for q in quoted) + ")" for _ in chunk)
            sql = f"SELECT {', '.join(quoted)} FROM {table} WHERE {where}"
            found.update(tuple(r) for r in self.connection.query(sql, [v for t in chunk for v in t]).fetchall())
        return found

    def _duplicate_detail(self, columns: tuple[str, ...], values: list[tuple]) -> str:
        key = self.heading.primary_key
        if not set(key) <= set(columns):
            return ""
        positions = [columns.index(k) for k in key]
        seen: set[tuple] = set()
        for row in values:
            item = tuple(row[i] for i in positions)
            if item in seen:
                return f"the key {_shown_key(key, item)} appears twice in the inserted rows; "
            seen.add(item)
        existing = self._existing(self.full_table_name, key, list(seen))
        for row in values:
            item = tuple(row[i] for i in positions)
            if item in existing or tuple(_normalized(v) for v in item) in existing:
                return f"the key {_shown_key(key, item)} already exists (use skip_duplicates=True to skip it); "
        return "a unique index already holds one of the values; "

    def _orphan_detail(self, columns: tuple[str, ...], values: list[tuple]) -> str:
        connection = self.connection
        for edge in connection.dependencies.parents(self.node):
            children = list(edge.attr_map)
            if not set(children) <= set(columns) or edge.parent[1].startswith("~"):
                continue
            positions = [columns.index(c) for c in children]
            wanted = list(dict.fromkeys(
                tuple(row[i] for i in positions) for row in values if all(row[i] is not None for i in positions)
            ))
            parent_ref = connection.backend.table_ref(*edge.parent)
            existing = self._existing(parent_ref, list(edge.attr_map.values()), wanted)
            existing |= {tuple(_normalized(v) for v in t) for t in existing}
            for item in wanted:
                if item not in existing and tuple(_normalized(v) for v in item) not in existing:
                    return (f"no row of the parent {edge.parent[0]}.{edge.parent[1]} matches "
                            f"{_shown_key(children, item)}; ")
        return ""

    def _insert_from_query(self, query: QueryExpression, mode: str, ignore_extra_fields: bool) -> None:
        heading = self.heading
        extra = [n for n in query.heading.names if n not in heading]
        if extra and not ignore_extra_fields:
            raise MissingAttributeError(f"insert into {self.database}.{self.table_name}: attributes {extra} are not in the table "
                "(to ignore extra fields in insert, set ignore_extra_fields=True)")
        names = [n for n in query.heading.names if n in heading]
        required = [
            a.name for a in heading
            if a.name not in names and not a.nullable and a.default is None and not a.autoincrement
        ]
        if required:  # checked here, so both backends refuse it alike (and even for no rows)
            raise MissingAttributeError(
                f"insert into {self.database}.{self.table_name}: the query gives no value for "
                f"{', '.join(map(repr, required))}, which has no default"
            )
        sql, params = query.make_sql(names)
        backend = self.connection.backend
        statement = backend.insert_statement(self.full_table_name, names, mode, heading.primary_key, source=sql)
        try:
            with self.connection.transaction():
                self.connection.query(statement, params)
        except (DuplicateError, IntegrityError, DataValueError, MissingAttributeError) as error:
            raise type(error)(f"insert into {self.database}.{self.table_name} from a query: {error}") from None

    def _row_dict(self, row: Any, heading: Heading, ignore_extra_fields: bool) -> dict[str, Any]:
        if type(row) is dict:
            row = dict(row)
        elif isinstance(row, np.void) and row.dtype.names:
            if any(row.dtype[name].kind in "Mm" for name in row.dtype.names):
                row = {name: row[name] for name in row.dtype.names}
            else:  # .item() gives Python scalars: the encoders' fast path
                row = dict(zip(row.dtype.names, row.item()))
        elif isinstance(row, collections.abc.Mapping):
            row = dict(row)
        elif isinstance(row, collections.abc.Sequence) and not isinstance(row, str | bytes):
            if len(row) != len(heading):
                raise DataValueError(
                    f"insert into {self.database}.{self.table_name}: a row given as a sequence needs {len(heading)} "
                    f"values ({', '.join(heading.names)}), got {len(row)}"
                )
            row = dict(zip(heading.names, row))
        else:
            raise DataValueError(f"insert into {self.database}.{self.table_name}: cannot insert a row of type {type(row).__name__}")
        if not heading.attributes.keys() >= row.keys():
            extra = [name for name in row if name not in heading]
            if not ignore_extra_fields:
                raise MissingAttributeError(
                    f"insert into {self.database}.{self.table_name}: {', '.join(map(repr, extra))} "
                    f"not in the table's attributes ({', '.join(heading.names)}); to ignore extra fields "
                    "in insert, set ignore_extra_fields=True"
                )
            row = {k: v for k, v in row.items() if k in heading}
        return row

    def _encode_rows(self, rows: list[dict[str, Any]], heading: Heading) -> tuple[dict[tuple[str, ...], list[tuple]], list]:
        """Validate and encode rows, grouped by the columns they give (defaults are left to the DB).
        Also returns the external objects still to be tracked inside the insert's transaction."""
        backend = self.connection.backend
        external = [a for a in heading if a.is_external]
        pending: list = []
        if external:
            from .stores.external import encode_external_columns

            pending = encode_external_columns(self, external, rows)
        groups: dict[tuple[str, ...], list[tuple]] = {}
        # per attribute, once: its missing-value test and its encoder (the hot loop stays small)
        plan = [(a.name, a, make_missing_test(a), self._encoder(a, backend)) for a in heading]
        for row in rows:
            columns, values = [], []
            for name, attribute, missing, encode in plan:
                if name not in row or missing(value := row[name]):
                    if attribute.in_key and not attribute.autoincrement:
                        raise MissingAttributeError(
                            f"insert into {self.database}.{self.table_name}: primary-key attribute {name!r} is missing "
                            f"in row {_short_key(row, heading)}"
                        )
                    if attribute.nullable:
                        columns.append(name)
                        values.append(None)
                    elif attribute.default is None and not attribute.autoincrement:
                        raise MissingAttributeError(
                            f"insert into {self.database}.{self.table_name}: attribute {name!r} has no default and no "
                            f"value in row {_short_key(row, heading)}"
                        )
                    continue
                columns.append(name)
                try:
                    values.append(encode(value))
                except DataJointError as error:
                    raise type(error)(
                        f"insert into {self.database}.{self.table_name}, row {_short_key(row, heading)}: {error}"
                    ) from None
            groups.setdefault(tuple(columns), []).append(tuple(values))
        return groups, pending

    def _encoder(self, attribute: Attribute, backend: Any) -> Any:
        """The function that turns a value of `attribute` into what the driver binds."""
        kind = attribute.kind
        if attribute.is_external:  # encoded (uploaded) by the store layer already
            return _identity
        if kind in ("blob", "attach"):
            return lambda value: self._encode(attribute, value, backend)
        if kind == "native":
            return _identity
        return make_encoder(attribute, backend.to_db, backend.native_ints)

    def _encode(self, attribute: Attribute, value: Any, backend: Any) -> Any:
        kind = attribute.kind
        if kind == "blob":
            from .codecs.blob import pack

            return pack(value)
        if kind == "attach":
            from .codecs.attach import encode_internal, read_attachment

            return encode_internal(*read_attachment(value, attribute.name))
        if kind == "native":
            return value
        return backend.to_db(attribute, encode_value(attribute, value))

    def update1(self, row: Mapping[str, Any]) -> None:
        """Update secondary attributes of one existing row, identified by its full primary key.

        Only the attributes given change. None (or NaN for numbers) sets NULL where the attribute
        is nullable, and its declared default otherwise (CURRENT_TIMESTAMP: the current time)."""
        heading = self.heading
        where_name = f"{self.database}.{self.table_name}"
        key = {k: row[k] for k in heading.primary_key if k in row}
        if len(key) != len(heading.primary_key):
            raise MissingAttributeError(f"update1 on {where_name} needs the full primary key {heading.primary_key}")
        if len(self & key) != 1:
            raise DataJointError(f"update1 on {where_name}: no row with key {_shown_key(key, key.values())}")
        updates: dict[str, Any] = {}
        for name, value in row.items():
            if name in key:
                continue
            if name not in heading:
                raise MissingAttributeError(f"update1 on {where_name}: {name!r} is not an attribute")
            attribute = heading[name]
            if make_missing_test(attribute)(value):
                if attribute.nullable:
                    value = None
                elif attribute.default is not None:
                    value = _declared_default(attribute)
                else:
                    raise DataValueError(f"update1 on {where_name}: attribute {name!r} cannot be set to null")
            updates[name] = value
        if not updates:
            return
        backend = self.connection.backend
        pending: list = []
        external = [heading[n] for n, v in updates.items() if heading[n].is_external and v is not None]
        if external:
            from .stores.external import encode_external_columns

            pending = encode_external_columns(self, external, [updates])
        assignments = []
        for name, value in updates.items():
            if value is not None and not heading[name].is_external:
                try:
                    value = self._encoder(heading[name], backend)(value)
                except DataJointError as error:
                    raise type(error)(f"update1 on {where_name}, row {_shown_key(key, key.values())}: {error}") from None
            assignments.append((name, value))
        sql = f"UPDATE {self.full_table_name} SET " + ", ".join(f"{backend.quote(c)} = {PH}" for c, _ in assignments)
        where = " AND ".join(f"{backend.quote(k)} = {PH}" for k in key)
        key_values = [backend.to_db(heading[k], encode_value(heading[k], key[k])) for k in key]
        with self.connection.transaction():
            if pending:
                from .stores.external import finish_external_insert

                finish_external_insert(pending)
            self.connection.query(f"{sql} WHERE {where}", [v for _, v in assignments] + key_values)


def _short_key(row: Mapping[str, Any], heading: Heading) -> str:
    key = {k: row[k] for k in heading.primary_key if k in row}
    text = repr(key)
    return text if len(text) < 200 else text[:197] + "..."


def _declared_default(attribute: Attribute) -> Any:
    """The value an attribute's declared default stands for (for update1, which sets it itself)."""
    from .backends.base import CURRENT_TIMESTAMP, parse_literal

    value = parse_literal(attribute.default)
    if value is CURRENT_TIMESTAMP:
        return datetime.datetime.now().replace(microsecond=0)
    return value


def _identity(value: Any) -> Any:
    return value


def _normalized(value: Any) -> Any:
    """A database value in a comparable form (MySQL returns bytes where we sent bytearray, etc.)."""
    return bytes(value) if isinstance(value, bytearray | memoryview) else value


def _shown_key(names: Iterable[str], values: Iterable[Any]) -> str:
    shown = {}
    for name, value in zip(names, values):
        if isinstance(value, bytes | bytearray) and len(value) == 16:
            value = uuid.UUID(bytes=bytes(value))
        shown[name] = value
    text = repr(shown)
    return text if len(text) < 200 else text[:197] + "..."


def _iterate_rows(rows: Any) -> Iterable[Any]:
    if type(rows).__name__ == "DataFrame" and hasattr(rows, "to_dict"):
        frame = rows
        if any(name is not None for name in frame.index.names):
            frame = frame.reset_index()
        return frame.to_dict("records")
    if isinstance(rows, np.ndarray) and rows.dtype.names:
        return list(rows)
    if isinstance(rows, collections.abc.Mapping):
        raise QueryError("insert() takes a collection of rows; use insert1() for a single dict")
    if isinstance(rows, str | bytes) or not isinstance(rows, Iterable):
        raise QueryError(f"insert() takes a collection of rows, got {type(rows).__name__}")
    return rows
