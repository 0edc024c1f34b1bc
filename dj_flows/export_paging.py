"""Read a query's rows page by page, so that an export holds one page at a time.

Pages follow the primary key (keyset pagination: each page asks for the rows after the last key
seen, `ORDER BY` the key, `LIMIT n`), so every row is read once even if rows are inserted or
deleted meanwhile, and no page costs more than its own rows (OFFSET would rescan all earlier ones).
A key with nullable attributes (a left join) or no key at all falls back to LIMIT/OFFSET.

Page sizes adapt: the first page is one row; later pages aim at `target_bytes` of raw row data
(blob bytes plus a few bytes per plain value), growing at most eightfold from page to page, so a
table of 10 MB images and a table of integers both come out in batches of about the same size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .backends import PH
from .condition import Condition

if TYPE_CHECKING:
    from .expression import QueryExpression

MAX_GROWTH = 8


def row_bytes(rows: Sequence[tuple]) -> int:
    """An estimate of the memory a page of raw rows holds."""
    total = 0
    for row in rows:
        for value in row:
            total += len(value) if isinstance(value, bytes | bytearray | str) else 8
    return total


def after_key(query: QueryExpression, key: Sequence[str], last: Sequence[Any]) -> Condition:
    """`key > last` in the order of ORDER BY key, written so that an index on the key is used."""
    quote = query.connection.backend.quote
    names = [quote(k) for k in key]
    sql, params = f"{names[-1]} > {PH}", [last[-1]]
    for name, value in zip(reversed(names[:-1]), reversed(last[:-1])):
        sql = f"{name} > {PH} OR ({name} = {PH} AND ({sql}))"
        params = [value, value, *params]
    if len(names) > 1:
        sql = f"{names[0]} >= {PH} AND ({sql})"
        params = [last[0], *params]
    return Condition(sql, tuple(params))


def pages(
    query: QueryExpression,
    names: Sequence[str],
    *,
    target_bytes: int,
    batch_rows: int | None = None,
) -> Iterator[list[list[list]]]:
    """Pages of raw database values until the query is exhausted, each as `[columns]`: a holder
    the caller pops, then one list per name in `names`. The generator keeps no reference to a page
    it yielded, so the caller can free values as it converts them."""
    key = list(query.primary_key)
    keyset = bool(key) and not any(query.heading[k].nullable for k in key)
    select = list(names) + [k for k in key if k not in names]
    positions = [select.index(k) for k in key]
    limit = batch_rows or 1
    offset = 0
    last: list[Any] | None = None
    connection = query.connection
    while True:
        page_query = query if last is None else query.restrict(after_key(query, key, last))
        sql, params = page_query.make_sql(
            select,
            order_by=["KEY"] if key else None,
            limit=limit,
            offset=None if keyset else offset,
        )
        rows = connection.query(sql, params).fetchall()
        count = len(rows)
        if not count:
            return
        if keyset:
            last = [rows[-1][p] for p in positions]
        offset += count
        size = row_bytes(rows)
        page = [list(column) for column in zip(*rows)][: len(names)]
        del rows  # the caller empties the columns as it converts them: hold no other reference
        holder = [page]
        del page
        yield holder
        if count < limit:
            return
        if batch_rows is None:
            per_row = max(1, size // count)
            limit = max(1, min(limit * MAX_GROWTH, target_bytes // per_row))
