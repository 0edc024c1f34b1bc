"""Read a query's rows page by page, so that an export holds one page at a time.

Pages follow the primary key (keyset pagination: each page asks for the rows after the last key
seen, `ORDER BY` the key, `LIMIT n`), so every row is read once even if rows are inserted or
deleted meanwhile, and no page costs more than its own rows (OFFSET would rescan all earlier ones).
A key with nullable attributes (a left join) or no key at all falls back to LIMIT/OFFSET.

Sizes are in bytes of raw row data (blob bytes plus a few bytes per plain value), so a table of
10 MB images and a table of integers both come out in batches of about the same size. Before any
row is read, the size comes from the stored lengths of up to PROBE_ROWS rows (`SELECT LENGTH(...)`,
which moves no blob data); after that, from the rows read so far. External objects that are read
in full (`blob@store`, attachment bytes) are sized from their tracking table, before every batch.

`Reader` plans record batches and reads their pages, ahead of the consumer in a background thread
when it may, so that reading overlaps the conversion (numpy copies) and the Parquet writer, both of
which release the GIL.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .backends import PH
from .condition import Condition

if TYPE_CHECKING:
    from .expression import QueryExpression

PROBE_ROWS = 64
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


def probe_rows(
    query: QueryExpression,
    names: Sequence[str],
    target_bytes: int,
    *,
    offset: int | None,
    external: Mapping[str, str],
) -> int:
    """How many of the next rows fit in `target_bytes`, from the stored lengths of up to
    PROBE_ROWS of them (and, for `external` columns, the object sizes in their tracking tables,
    given as {attribute: tracking table}), extrapolated when they all fit. Only lengths and hashes
    are selected, so no blob data leaves the database or fills a temporary table."""
    quote = query.connection.backend.quote
    heading = query.heading
    sized = [n for n in names if heading[n].kind in SIZED_KINDS and not heading[n].is_external]
    fixed = 8 * (len(names) - len(sized))
    if not sized and not external:
        return max(1, target_bytes // max(1, fixed))
    lengths = {f"dj_probe_length_{i}": f"LENGTH({quote(n)})" for i, n in enumerate(sized)}
    hashes = [n for n in external if n not in lengths]
    probe = query.proj(*hashes, **lengths)
    sql, params = probe.make_sql(
        [*lengths, *hashes],
        order_by=["KEY"] if query.primary_key else None,
        limit=PROBE_ROWS,
        offset=offset,
    )
    alias = quote("$probe")
    terms = [f"COALESCE({quote(n)}, 0)" for n in lengths]
    terms += [
        f"COALESCE((SELECT {quote('size')} FROM {table} WHERE {quote('hash')} = {alias}.{quote(n)}), 0)"
        for n, table in external.items()
    ]
    rows = query.connection.query(
        f"SELECT {' + '.join(terms)} FROM ({sql}) AS {alias}", params
    ).fetchall()
    total = 0
    for count, (size,) in enumerate(rows):
        total += int(size or 0) + fixed
        if total > target_bytes:
            return max(1, count)
    if len(rows) < PROBE_ROWS:
        return max(1, len(rows))  # the query ends within the target
    return max(len(rows), target_bytes // max(1, total // len(rows)))


class Pager:
    """Fetches the query's rows in key order, as many at a time as asked for."""

    def __init__(
        self,
        query: QueryExpression,
        names: Sequence[str],
        external: Mapping[str, str] | None = None,
    ) -> None:
        self.query = query
        self.names = list(names)
        self.external = dict(external or {})  # attribute -> tracking table of objects read in full
        self.key = list(query.primary_key)
        self.keyset = bool(self.key) and not any(query.heading[k].nullable for k in self.key)
        self.select = self.names + [k for k in self.key if k not in self.names]
        self.positions = [self.select.index(k) for k in self.key]
        self.order = (
            ["KEY"]
            if self.key
            else [n for n in self.names if query.heading[n].kind not in SIZED_KINDS[:2]]
        )
        self.offset = 0
        self.last: list[Any] | None = None
        self.exhausted = False
        self.rows_seen = 0
        self.bytes_seen = 0

    @property
    def per_row(self) -> int | None:
        """Average raw bytes per row fetched so far."""
        return max(1, self.bytes_seen // self.rows_seen) if self.rows_seen else None

    def rows_for(self, target_bytes: int) -> int:
        """How many rows make about `target_bytes`: from the rows seen, else (and always when
        external objects are read, whose size the rows do not show) from a probe of the next rows."""
        if self.per_row is not None and not self.external:
            return max(1, target_bytes // self.per_row)
        query = self.query
        if self.last is not None:
            query = query.restrict(after_key(query, self.key, self.last))
        offset = None if self.keyset else self.offset
        return probe_rows(query, self.names, target_bytes, offset=offset, external=self.external)

    def fetch(self, limit: int) -> list[list[list]] | None:
        """The next rows (at most `limit`) as `[columns]`, a holder the caller pops, then one list
        per name; None once the query is exhausted. No reference to the rows is kept, so the caller
        can free values as it converts them."""
        if self.exhausted:
            return None
        query = self.query
        if self.last is not None:
            query = query.restrict(after_key(query, self.key, self.last))
        sql, params = query.make_sql(
            self.select,
            order_by=self.order or None,
            limit=limit,
            offset=None if self.keyset else self.offset,
        )
        rows = query.connection.query(sql, params).fetchall()
        count = len(rows)
        if count < limit:
            self.exhausted = True
        if not count:
            return None
        if self.keyset:
            self.last = [rows[-1][p] for p in self.positions]
        self.offset += count
        self.rows_seen += count
        self.bytes_seen += row_bytes(rows)
        page = [list(column) for column in zip(*rows)][: len(self.names)]
        del rows
        holder = [page]
        del page
        return holder


class Page:
    """Rows for batch number `batch`, which holds `capacity` rows unless the query ends first."""

    __slots__ = ("batch", "capacity", "holder", "last", "transformed")

    def __init__(self, batch: int, capacity: int, holder: list | None, last: bool) -> None:
        self.batch = batch
        self.capacity = capacity
        self.holder = holder  # [columns]: pop it, then the page holds no rows; None: no rows
        self.last = last  # the batch ends with this page
        self.transformed = False  # whether `transform` already ran on it


class Reader:
    """Plans batches (about `target_bytes`, or `batch_rows` rows, each read in `chunks` pages) and
    reads their pages, in a background thread when `background` (at most `ahead` pages waiting,
    plus the one being read), so that reading overlaps converting and writing. Background reading
    needs the consumer to leave the database connection alone: exports whose conversion queries
    the database (external objects) read in the foreground.

    `transform` (decoding blobs) is work either side can do: the reader does it while the consumer
    is the slower side (it waits less for pages than the reader waits for room, as with SQLite and
    a busy Parquet writer), the consumer (`finish`) while the reader is the slower side (a database
    server that reads blobs slowly), judged on the waits of the last few pages.
    """

    END = object()
    WINDOW = 8  # pages the waits are compared over

    def __init__(
        self,
        pager: Pager,
        *,
        target_bytes: int,
        batch_rows: int | None,
        chunks: int,
        background: bool,
        ahead: int = 1,
        transform: Callable[[list[list]], None] | None = None,
    ) -> None:
        self.pager = pager
        self.transform = transform
        self.target_bytes = target_bytes
        self.batch_rows = batch_rows
        self.chunks = chunks
        self._stop = threading.Event()
        self._queue: queue.Queue | None = queue.Queue(maxsize=ahead) if background else None
        self._thread: threading.Thread | None = None
        self._waits: collections.deque = collections.deque(maxlen=self.WINDOW)  # (reader, consumer)
        self._reader_wait = 0.0
        self._pages = self._plan()
        if background:
            self._thread = threading.Thread(target=self._run, name="dj-export-reader", daemon=True)
            self._thread.start()

    @property
    def reader_transforms(self) -> bool:
        """Whether the reader should transform the next page itself."""
        if self._queue is None:
            return True
        waits = tuple(self._waits)  # one atomic copy: the consumer appends from its thread
        reader = sum(w[0] for w in waits)
        consumer = sum(w[1] for w in waits)
        return reader >= consumer

    def _plan(self) -> Iterator[Page]:
        pager = self.pager
        number = 0
        while not pager.exhausted and not self._stop.is_set():
            capacity = self.batch_rows or pager.rows_for(self.target_bytes)
            step = max(1, -(-capacity // self.chunks))
            filled = 0
            closed = False
            while filled < capacity and not self._stop.is_set():
                holder = pager.fetch(min(step, capacity - filled))
                if holder is None:
                    break
                filled += len(holder[0][0]) if holder[0] else 0
                closed = filled >= capacity or pager.exhausted
                page = Page(number, capacity, holder, closed)
                del holder
                if self.transform is not None and self.reader_transforms:
                    self.transform(page.holder[0])
                    page.transformed = True
                yield page
                del page
            if filled and not closed:  # the query ended right after a full page
                yield Page(number, capacity, None, True)
            number += 1

    def _run(self) -> None:
        put = self._put
        try:
            for page in self._pages:
                if not put(page):
                    return
                del page
            put(self.END)
        except BaseException as error:  # handed to the consumer, raised in its thread
            put(error)

    def _put(self, item: Any) -> bool:
        started = time.perf_counter()
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                self._reader_wait = time.perf_counter() - started
                return True
            except queue.Full:
                continue
        return False

    def next(self) -> Page | None:
        """The next page, its `transform` done (here, if the reader left it), or None at the end."""
        if self._queue is None:
            page = next(self._pages, None)
        else:
            started = time.perf_counter()
            item = self._queue.get()
            self._waits.append((self._reader_wait, time.perf_counter() - started))
            if item is self.END:
                self._queue.put(self.END)  # later calls see the end too
                return None
            if isinstance(item, BaseException):
                raise item
            page = item
        if (
            page is not None
            and page.holder is not None
            and not page.transformed
            and self.transform is not None
        ):
            self.transform(page.holder[0])
            page.transformed = True
        return page

    def close(self) -> None:
        """Stop reading (pages not taken are dropped)."""
        self._stop.set()
        if self._thread is not None:
            while self._thread.is_alive():
                with contextlib.suppress(queue.Empty):
                    self._queue.get(timeout=0.05)
            self._thread.join()
            self._thread = None
        self._pages.close()
