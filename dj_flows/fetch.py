"""fetch() and fetch1(): run a query and turn its rows into numpy records, dicts or a DataFrame.

Values are decoded a column at a time: only attributes that need it (blobs, attachments, uuid, json,
external objects, dialect conversions) are touched, so plain numeric fetches stay cheap. External
objects of a column are fetched in one concurrent batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import DataJointError, MissingAttributeError, QueryError
from .heading import Attribute
from .settings import config
from .values import decode_value

if TYPE_CHECKING:
    from .expression import QueryExpression

NEEDS_BACKEND_DECODE = {"decimal", "date", "datetime", "timestamp", "time"}


def attribute_dtype(attribute: Attribute) -> Any:
    """DataJoint 0.14's rule: floats and non-nullable integers get numeric dtypes, the rest object."""
    if attribute.kind == "float":
        return np.float64
    if attribute.kind in ("int", "bool") and not attribute.nullable:
        if attribute.type.declared == "bigint unsigned":
            return np.uint64
        return np.int64
    return object


def _decode_column(
    query: QueryExpression,
    attribute: Attribute,
    values: list,
    *,
    squeeze: bool,
    download_path: str,
) -> list:
    backend = query.connection.backend
    kind = attribute.kind
    if attribute.is_external:
        from .stores.external import decode_external_column

        return decode_external_column(query, attribute, values, squeeze=squeeze, download_path=download_path)
    if kind == "blob":
        from .codecs.blob import unpack

        return [None if v is None else unpack(v, squeeze=squeeze) for v in values]
    if kind == "attach":
        from .codecs.attach import content_uuid, decode_internal, place_attachment

        decoded = []
        for value in values:
            if value is None:
                decoded.append(None)
                continue
            data = bytes(value)
            name, contents = decode_internal(data)
            decoded.append(place_attachment(name, content_uuid(data), download_path, lambda c=contents: c))
        return decoded
    if backend.name == "sqlite" and kind in NEEDS_BACKEND_DECODE:
        values = [backend.from_db(attribute, v) for v in values]
    if kind in ("uuid", "json", "decimal"):
        return [decode_value(attribute, v) for v in values]
    return values


def _columns(query: QueryExpression, names: Sequence[str], rows: list[tuple], squeeze: bool, download_path: str) -> dict[str, list]:
    attributes = query.heading.attributes
    if len(rows) == 1:
        columns = {name: [value] for name, value in zip(names, rows[0])}
    else:
        columns = dict(zip(names, map(list, zip(*rows)))) if rows else {name: [] for name in names}
    for name in names:
        columns[name] = _decode_column(query, attributes[name], columns[name], squeeze=squeeze, download_path=download_path)
    return columns


def _to_records(query: QueryExpression, names: Sequence[str], columns: dict[str, list], count: int) -> np.ndarray:
    dtype = np.dtype([(name, attribute_dtype(query.heading[name])) for name in names])
    records = np.empty(count, dtype=dtype)
    for name in names:
        if dtype[name].kind == "O":  # fromiter never splits a list or array value into elements
            records[name] = np.fromiter(columns[name], dtype=object, count=count)
        else:
            try:
                records[name] = np.asarray(columns[name], dtype=dtype[name])
            except (TypeError, ValueError, OverflowError) as error:
                raise DataJointError(f"cannot convert attribute {name!r} to {dtype[name]}: {error}") from None
    return records


def fetch(
    query: QueryExpression,
    *attrs: str,
    offset: int | None = None,
    limit: int | None = None,
    order_by: str | Sequence[str] | None = None,
    format: str | None = None,
    as_dict: bool | None = None,
    squeeze: bool = False,
    download_path: str | os.PathLike | None = None,
) -> Any:
    """DataJoint's fetch: see the README for the return shapes."""
    if offset is not None and limit is None:
        raise QueryError("fetch(offset=...) needs a limit")
    if limit is not None and (not isinstance(limit, int | np.integer) or limit < 0):
        raise QueryError(f"fetch(limit=...) must be a non-negative integer, got {limit!r}")
    order = [order_by] if isinstance(order_by, str) else list(order_by or [])
    if limit is not None and not order:
        order = ["KEY"]
    format = format or config["fetch_format"]
    if format not in ("array", "frame"):
        raise QueryError(f"fetch(format=...) must be 'array' or 'frame', got {format!r}")
    folder = str(download_path if download_path is not None else config.get("download_path") or ".")
    heading = query.heading
    names = _names(heading, attrs)
    sql, params = query.make_sql(names, order_by=order, limit=limit, offset=offset)
    rows = list(query._execute(sql, params).fetchall())
    columns = _columns(query, names, rows, squeeze, folder)
    count = len(rows)

    if not attrs:
        if as_dict:
            return [dict(zip(names, values)) for values in zip(*(columns[n] for n in names))] if count else []
        if format == "frame":
            import pandas

            frame = pandas.DataFrame({n: columns[n] for n in names}, columns=names)
            return frame.set_index(heading.primary_key) if heading.primary_key else frame
        return _to_records(query, names, columns, count)

    if as_dict:
        return [dict(zip(names, values)) for values in zip(*(columns[n] for n in names))] if count else []
    if format == "frame":
        import pandas

        return pandas.DataFrame({n: columns[n] for n in names}, columns=names)
    results = []
    for name in attrs:
        if name == "KEY":
            key_names = heading.primary_key
            results.append([dict(zip(key_names, values)) for values in zip(*(columns[n] for n in key_names))] if count else [])
        else:
            results.append(_to_records(query, [name], columns, count)[name])
    return results[0] if len(attrs) == 1 else tuple(results)


def fetch1(query: QueryExpression, *attrs: str, squeeze: bool = False, download_path: str | os.PathLike | None = None) -> Any:
    """Fetch exactly one row: a dict (no attrs), one value (one attr) or a tuple (several)."""
    heading = query.heading
    names = _names(heading, attrs)
    sql, params = query.make_sql(names, limit=2)  # two rows tell "not exactly one"; no order needed
    rows = query._execute(sql, params).fetchall()
    if len(rows) != 1:
        raise DataJointError(f"fetch1 should return exactly one row; the query returned {_count(query, len(rows))}")
    folder = str(download_path if download_path is not None else config.get("download_path") or ".")
    columns = _columns(query, names, rows, squeeze, folder)
    row = {name: columns[name][0] for name in names}
    if not attrs:
        return row
    results = [{k: row[k] for k in heading.primary_key} if name == "KEY" else row[name] for name in attrs]
    return results[0] if len(attrs) == 1 else tuple(results)


def _names(heading: Any, attrs: Sequence[str]) -> list[str]:
    """The columns to select for `attrs` ('KEY' stands for the primary key); all when none."""
    for name in attrs:
        if name != "KEY" and name not in heading:
            raise MissingAttributeError(
                f"fetch: {name!r} is not an attribute of the query ({', '.join(heading.names)})"
            )
    if attrs:
        return list(dict.fromkeys(n for a in attrs for n in (heading.primary_key if a == "KEY" else [a])))
    return heading.names


def _count(query: QueryExpression, seen: int) -> str:
    if seen < 2:
        return f"{seen} rows"
    return f"{len(query)} rows"
