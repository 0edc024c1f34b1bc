"""Read a query's rows page by page, so that an export holds one page at a time.

Pages follow the primary key (keyset pagination: each page asks for the rows after the last key
seen, `ORDER BY` the key, `LIMIT n`), so every row is read once even if rows are inserted or
deleted meanwhile, and no page costs more than its own rows (OFFSET would rescan all earlier ones).
A key with nullable attributes (a left join) or no key at all falls back to LIMIT/OFFSET.

Page sizes adapt so that a table of 10 MB images and a table of integers both come out in pages of
about `target_bytes` of raw row data (blob bytes plus a few bytes per plain value). The first page
is sized from the stored lengths of up to PROBE_ROWS rows (`SELECT LENGTH(...)`, which moves no
blob data), so that it is a full page and a fair sample for inferring blob layouts; later pages use
the sizes seen so far, growing at most eightfold from one page to the next.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .backends import PH
from .condition import Condition

if TYPE_CHECKING:
    from .expression import QueryExpression

MAX_GROWTH = 8
PROBE_ROWS = 1024
SIZED_KINDS = ("blob", "attach", "json", "string")


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


def first_page_rows(
    query: QueryExpression, names: Sequence[str], target_bytes: int, keyset: bool
) -> int:
    """How many of the first rows fit in `target_bytes`, from their stored lengths."""
    quote = query.connection.backend.quote
    heading = query.heading
    sized = [n for n in names if heading[n].kind in SIZED_KINDS and not heading[n].is_external]
    fixed = 8 * (len(names) - len(sized))
    if not sized:
        return max(1, min(PROBE_ROWS, target_bytes // max(1, fixed)))
    sql, params = query.make_sql(
        sized,
        order_by=["KEY"] if query.primary_key else None,
        limit=PROBE_ROWS,
        offset=None if keyset else 0,
    )
    lengths = " + ".join(f"COALESCE(LENGTH({quote(n)}), 0)" for n in sized)
    rows = query.connection.query(
        f"SELECT {lengths} FROM ({sql}) AS {quote('$probe')}", params
    ).fetchall()
    total = 0
    for count, (size,) in enumerate(rows):
        total += int(size or 0) + fixed
        if total > target_bytes:
            return max(1, count)
    return max(1, len(rows))


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
    limit = batch_rows or first_page_rows(query, names, target_bytes, keyset)
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
