"""Garbage collection of external stores: report first, then sweep, never losing a live object.

An object is collected only when no row references it, its tracking row has not been touched for
`grace_seconds`, and (where `~reference_<store>` knows) its last reference went longer ago than
that too. `plan()` finds candidates with one set-based query per page of a thousand (an anti-join
of the tracking table with every referencing column, keyset-paged by hash) and reports count,
bytes, and the tables/attributes/keys that last referenced them. `sweep(report)` takes
those candidates and handles each page in one READ COMMITTED transaction (SQLite: BEGIN
IMMEDIATE, which serializes every writer):

1. take the store's collector lock (a sentinel row of `~reference_<store>`): pages of concurrent
   collectors never interleave;
2. lock the candidates' tracking rows (FOR UPDATE; an insert re-using one waits on the same lock);
3. re-check them against the latest commits: still unreferenced, still past the grace period;
4. DELETE those rows: a reference the check missed fails the foreign key (ON DELETE RESTRICT) and
   rolls the page back before any object is touched;
5. set the collector mark to `busy:<token>`, remove the objects in bulk (S3 DeleteObjects, two
   requests in flight; a thread pool for folders), put back the rows of objects that failed to
   go, forget the collected objects' history, record the token in the sentinel row; commit;
6. after the sweep's last page, under the collector lock again and only if no later page has
   run, set the mark to `idle:<token>` (between pages it stays busy: the next page's busy mark
   would replace an idle one at once, and inserts meanwhile check their objects).

The collector mark is one small object in the store (`{database}/.dj-gc-mark`). Its contract with
inserts: if an insert reads the same idle (or 'none') mark before it checks what is tracked and
uploads, and again once it holds the locks of all its tracking rows, then no collector removed any
object of those rows in between, and every tracked row it re-uses has its object. So inserts need
no HEAD per object in the common case, only when a collector was busy or finished a page meanwhile
(`uploads_may_be_gone`). Why it holds:
- a page's objects go between its busy mark and its commit, and an insert locking one of its rows
  waits for that commit; the idle mark comes only after the commit;
- a page that removed objects but did not commit (a crash, a lost connection, a failed commit)
  leaves its busy mark with a token the sentinel row never recorded. The mark stays busy (so
  inserts keep checking, and upload missing objects again) until the next page sees the mismatch
  and runs `repair()`: it lists the store, deletes the unused rows whose objects are missing (under
  the same locks), and only then lets the mark go idle;
- an idle mark is written under the collector lock, so it never overwrites a later page's busy.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..backends import PH
from ..errors import DataJointError, IntegrityError, LostConnectionError, StoreError
from . import history
from .gc_report import Candidate, GCReport, Progress, log_progress

__all__ = [
    "Candidate",
    "GCReport",
    "Progress",
    "collect",
    "log_progress",
    "plan",
    "read_mark",
    "repair",
    "run_gc",
    "sweep",
    "uploads_may_be_gone",
]

if TYPE_CHECKING:
    from .external import ExternalTable

logger = logging.getLogger("dj_flows.gc")
PAGE = 1000
MARK = ".dj-gc-mark"  # the collector mark, under {location}/{database}/
RETRIES = 4
COLUMNS = ("hash", "size", "attachment_name", "filepath", "contents_hash", "timestamp")

# -- the collector mark -------------------------------------------------------------------------
def mark_key(database: str) -> str:
    return f"{database}/{MARK}"


def read_mark(tracking: ExternalTable) -> str:
    """The collector mark of a tracking table's objects: 'none', 'idle:<token>', 'busy:<token>',
    or a unique 'unknown:<token>' when the store cannot say (which makes inserts check)."""
    key = mark_key(tracking.database)
    try:
        found = tracking.store.get_many([key], missing="omit")
    except StoreError:
        return f"unknown:{uuid.uuid4().hex}"
    return found[key].decode("ascii", "replace") if key in found else "none"


def write_mark(tracking: ExternalTable, mark: str) -> None:
    tracking.store.put(mark_key(tracking.database), mark.encode())


def _token(mark: str) -> str | None:
    """The page token of a 'busy:' or 'idle:' mark (None for 'none')."""
    state, _, token = mark.partition(":")
    if state == "none":
        return None
    if state not in ("busy", "idle") or not token:
        raise StoreError(f"cannot read the collector mark ({mark[:40]!r}): not collecting")
    return token


def uploads_may_be_gone(before: str | None, after: str) -> bool:
    """Whether objects uploaded after reading `before` may have been removed by the time `after`
    was read (with the insert's tracking rows locked): a collector was busy at either read, or
    finished a page in between."""
    settled = before is not None and (before == "none" or before.startswith("idle:"))
    return not (settled and after == before)


class _RepairNeeded(Exception):
    """The mark names a page that removed objects but never committed."""


# -- plan ---------------------------------------------------------------------------------------
def _unused_sql(tracking: ExternalTable, grace_seconds: int) -> tuple[str, list[str]]:
    """FROM clause (the tracking table as `t`, each referencing table LEFT JOINed) and WHERE
    conditions selecting the rows that nothing references and that are past the grace period.

    An anti-join by LEFT JOIN ... IS NULL probes each referencing table's index on its foreign key
    row by row, so a page of a keyset-paged scan costs in proportion to the page (NOT EXISTS would
    make MariaDB materialize the whole referencing column once per page)."""
    backend = tracking.connection.backend
    quote = backend.quote
    own = f"{quote('t')}.{quote('hash')}"
    joins = [f"{tracking.full_table_name} AS {quote('t')}"]
    conditions = []
    for number, ref in enumerate(tracking.references):
        schema, table = ref["referencing_table"]
        alias = quote(f"r{number}")
        column = f"{alias}.{quote(ref['column_name'])}"
        joins.append(f"LEFT JOIN {backend.table_ref(schema, table)} AS {alias} ON {column} = {own}")
        conditions.append(f"{column} IS NULL")
    # older_than() names the bare column: qualify it, as the joined tables may have one too
    old = backend.older_than("timestamp", grace_seconds)
    conditions.append(old.replace(quote("timestamp"), f"{quote('t')}.{quote('timestamp')}", 1))
    recent = history.released_within(tracking, grace_seconds, own)
    if recent:
        conditions.append(f"NOT ({recent})")
    return " ".join(joins), conditions


def _keyer(tracking: ExternalTable) -> Callable[[uuid.UUID, str | None, str | None], str]:
    """tracking.object_key without a store lookup per object."""
    from .layout import object_key

    folds = tuple(tracking.store.subfolding)
    database = tracking.database

    def key(hash_: uuid.UUID, attachment_name: str | None, filepath: str | None) -> str:
        return filepath or object_key(database, hash_.hex, folds, attachment_name)

    return key


def _grace(grace_seconds: int | None) -> int:
    from ..settings import config

    grace = config["gc.grace_seconds"] if grace_seconds is None else grace_seconds
    if int(grace) < 0:
        raise DataJointError(f"the grace period must not be negative, got {grace}")
    return int(grace)


def plan(
    tracking: ExternalTable,
    grace_seconds: int | None = None,
    limit: int | None = None,
    progress: Progress | None = None,
) -> GCReport:
    """Dry run: the unreferenced objects past the grace period, found a page (one query) at a time.

    `grace_seconds` defaults to dj.config['gc.grace_seconds']; `limit` caps the count."""
    started = time.monotonic()
    connection = tracking.connection
    quote = connection.backend.quote
    grace = _grace(grace_seconds)
    report = GCReport(tracking.store_name, tracking.database, grace)
    source, conditions = _unused_sql(tracking, grace)
    key_of = _keyer(tracking)
    own = f"{quote('t')}.{quote('hash')}"
    columns = ", ".join(f"{quote('t')}.{quote(c)}" for c in COLUMNS[:4])
    # who last referenced each candidate comes with it: one round trip a page, not two
    past = history.history_table(connection, tracking.database, tracking.store_name)
    if past.is_declared:
        columns += "".join(
            f", {quote('h')}.{quote(c)}" for c in ("referencing_table", "attribute_name", "key_json")
        )
        joined = f"{quote('h')}.{quote('hash')}"
        source += f" LEFT JOIN {past.full_table_name} AS {quote('h')} ON {joined} = {own}"
    else:
        columns += ", NULL, NULL, NULL"
    last: bytes | None = None
    while limit is None or report.count < limit:
        size = PAGE if limit is None else min(PAGE, limit - report.count)
        where = list(conditions)
        params: list[Any] = []
        if last is not None:
            where.append(f"{own} > {PH}")
            params.append(last)
        sql = (
            f"SELECT {columns} FROM {source} WHERE "
            + " AND ".join(f"({c})" for c in where)
            + f" ORDER BY {own} LIMIT {size}"
        )
        rows = connection.query(sql, params).fetchall()
        for hash_bytes, size_, attachment_name, filepath, *past_row in rows:
            hash_ = uuid.UUID(bytes=bytes(hash_bytes))
            origin, last_key = history.origin(*past_row)
            report.candidates.append(
                Candidate(
                    hash_, key_of(hash_, attachment_name, filepath), int(size_),
                    attachment_name, origin, last_key,
                )
            )
        if progress:
            progress("plan", report.count, None)
        if len(rows) < size:
            break
        last = bytes(rows[-1][0])
    report.seconds["plan"] = time.monotonic() - started
    return report


# -- sweep --------------------------------------------------------------------------------------
@dataclasses.dataclass
class _PageResult:
    deleted: list[bytes] = dataclasses.field(default_factory=list)
    failed: dict[bytes, str] = dataclasses.field(default_factory=dict)
    skipped: int = 0
    vanished: int = 0
    token: str | None = None  # set when the page committed after removing objects
    marked: bool = False  # the page set the collector mark busy (or may have: it failed)


def sweep(
    tracking: ExternalTable,
    report: GCReport,
    *,
    delete_files: bool = True,
    progress: Progress | None = None,
) -> GCReport:
    """Remove the report's candidates that are still unreferenced and past its grace period.

    With `delete_files=False` only the tracking rows go (DataJoint's delete_external_files=False):
    the objects stay, and the orphan scan will find them."""
    started = time.monotonic()
    report.delete_files = delete_files
    history.declare_history(tracking.connection, tracking.database, tracking.store_name)
    unused = _unused_sql(tracking, report.grace_seconds)
    candidates = sorted(report.candidates, key=lambda c: c.hash.bytes)
    by_hash = {c.hash.bytes: c for c in candidates}
    settle: str | None = None  # the token of the last page that set the mark, if it committed
    for start in range(0, len(candidates), PAGE):
        page = candidates[start : start + PAGE]
        token, unused = _sweep_one(tracking, report, page, unused, by_hash)
        settle = settle if token == "" else token
        if progress:
            progress("sweep", min(start + PAGE, len(candidates)), len(candidates))
    if settle:  # once, after the last page (not on an exception: a page may have left it busy)
        _settle(tracking, settle)
    report.swept = True
    report.seconds["sweep"] = time.monotonic() - started
    logger.info("%s", report)
    return report


def _sweep_one(
    tracking: ExternalTable,
    report: GCReport,
    page: list[Candidate],
    unused: tuple[str, list[str]],
    by_hash: dict[bytes, Candidate],
) -> tuple[str | None, tuple[str, list[str]]]:
    """Sweep one page into `report`. Returns the page's token ('' if it never set the collector
    mark, None if it did but did not commit: then the mark must stay busy), and the unused-rows
    SQL (looked up again if a referencing table had been missed)."""
    delete_files = report.delete_files
    try:
        result = _sweep_page_retrying(tracking, page, unused, delete_files)
    except IntegrityError:  # a referencing table the catalog had not shown: look again
        tracking.connection.invalidate()
        unused = _unused_sql(tracking, report.grace_seconds)
        try:
            result = _sweep_page_retrying(tracking, page, unused, delete_files)
        except DataJointError as error:
            result = _PageResult(failed={c.hash.bytes: str(error) for c in page}, marked=True)
    except DataJointError as error:
        result = _PageResult(failed={c.hash.bytes: str(error) for c in page}, marked=True)
    report.deleted_rows += len(result.deleted)
    if delete_files:
        report.deleted_files += len(result.deleted)
    report.deleted_bytes += sum(by_hash[h].size for h in result.deleted)
    report.skipped += result.skipped
    report.vanished += result.vanished
    for hash_, message in result.failed.items():
        report.errors.append((by_hash[hash_].hash, by_hash[hash_].key, message))
    return (result.token if result.marked else ""), unused


def _retryable(error: Exception) -> bool:
    """Deadlocks and lock wait timeouts (MySQL 1213/1205), and lost connections."""
    text = str(error)
    return isinstance(error, LostConnectionError) or text.startswith(
        ("MySQL error 1213", "MySQL error 1205")
    )


def _sweep_page_retrying(
    tracking: ExternalTable, page: list[Candidate], unused: tuple[str, list[str]], delete_files: bool
) -> _PageResult:
    repaired = False
    for attempt in range(RETRIES):
        try:
            result = _sweep_page(tracking, page, unused, delete_files)
        except _RepairNeeded:
            if repaired:
                raise StoreError(
                    f"store {tracking.store_name!r}: the collector mark stays inconsistent "
                    f"with {history.PREFIX}{tracking.store_name} after a repair"
                ) from None
            repair(tracking)
            repaired = True
            continue
        except DataJointError as error:
            if not _retryable(error) or attempt == RETRIES - 1:
                raise
            logger.info("gc of %s: retrying a page after %s", tracking.table_name, error)
            time.sleep(0.05 * 2**attempt)
            continue
        return result
    raise StoreError(f"store {tracking.store_name!r}: a page could not be swept")


def _check_mark(tracking: ExternalTable, committed: str | None) -> None:
    """Under the collector lock: raise _RepairNeeded if the mark names a page that removed
    objects and never committed (its token is not the last committed one)."""
    if committed is None:
        return
    token = _token(read_mark(tracking))
    if token is not None and token != committed:
        raise _RepairNeeded


def _sweep_page(
    tracking: ExternalTable, page: list[Candidate], unused: tuple[str, list[str]], delete_files: bool
) -> _PageResult:
    """One page, in one transaction (see the module docstring for the steps)."""
    connection = tracking.connection
    backend = connection.backend
    quote = backend.quote
    table = tracking.full_table_name
    own = f"{quote('t')}.{quote('hash')}"
    hashes = [c.hash.bytes for c in page]
    marks = ", ".join([PH] * len(hashes))
    result = _PageResult()
    with connection.transaction(read_committed=True):
        committed = history.lock_collectors(tracking)
        locked = connection.query(
            f"SELECT {quote('hash')} FROM {table} WHERE {quote('hash')} IN ({marks})"
            f"{backend.lock_suffix}",
            hashes,
        ).fetchall()
        source, conditions = unused
        columns = ", ".join(f"{quote('t')}.{quote(c)}" for c in COLUMNS)
        rows = connection.query(
            f"SELECT {columns} FROM {source} WHERE {own} IN ({marks}) AND "
            + " AND ".join(f"({c})" for c in conditions),
            hashes,
        ).fetchall()
        doomed = {bytes(row[0]): row for row in rows}
        result.vanished = len(page) - len(locked)
        result.skipped = len(locked) - len(doomed)
        if not doomed:
            return result
        _delete_tracking(tracking, list(doomed))  # the foreign keys check nothing refers to them
        if delete_files:
            _check_mark(tracking, committed)
            token = uuid.uuid4().hex
            keys = {c.key: c.hash.bytes for c in page if c.hash.bytes in doomed}
            result.marked = True
            write_mark(tracking, f"busy:{token}")
            result.failed, unsure = _remove_objects(tracking, keys)
            if result.failed:
                _restore_rows(tracking, [doomed[h] for h in result.failed])
            history.forget_collected(tracking, [h for h in doomed if h not in result.failed])
            if committed is not None and not unsure:
                history.set_collector_token(tracking, token)
                result.token = token
            # if unsure, the mark stays busy with a token that never commits: the next page
            # repairs, and inserts check their objects until then
        result.deleted = [h for h in doomed if h not in result.failed]
    return result


def _settle(tracking: ExternalTable, token: str) -> None:
    """After a page committed: set the mark idle, unless a later page has run since (both under
    the collector lock, so this never overwrites a later page's busy mark)."""
    connection = tracking.connection
    try:
        with connection.transaction(read_committed=True):
            if history.lock_collectors(tracking) == token:
                write_mark(tracking, f"idle:{token}")
    except DataJointError as error:  # the mark stays busy: inserts check, which is only slower
        logger.warning("gc of %s: cannot set the collector mark idle: %s", tracking.table_name, error)


def repair(tracking: ExternalTable) -> int:
    """After a page removed objects but did not commit (a crash, a lost connection): delete the
    unused tracking rows whose objects are missing, then settle the mark. Returns their count.

    Until then the mark stays busy, so inserts re-using such a row check the object and upload
    it again; the rows themselves are unused, so deleting them loses nothing."""
    store = tracking.store
    listed = {item.key for item in store.list(tracking.database)}
    prefix = f"{tracking.database}/"
    candidates = plan(tracking, 0).candidates
    missing = [
        c.hash.bytes
        for c in candidates
        if (c.key not in listed if c.key.startswith(prefix) else not store.exists(c.key))
    ]
    connection = tracking.connection
    quote = connection.backend.quote
    own = f"{quote('t')}.{quote('hash')}"
    source, conditions = _unused_sql(tracking, 0)
    deleted = 0
    with connection.transaction(read_committed=True):
        committed = history.lock_collectors(tracking)
        if committed is None:
            return 0
        token = _token(read_mark(tracking))
        if token is None or token == committed:
            return 0  # another collector repaired meanwhile
        for start in range(0, len(missing), PAGE):
            page = missing[start : start + PAGE]
            marks = ", ".join([PH] * len(page))
            connection.query(
                f"SELECT {quote('hash')} FROM {tracking.full_table_name} WHERE {quote('hash')} "
                f"IN ({marks}){connection.backend.lock_suffix}",
                page,
            ).fetchall()
            rows = connection.query(
                f"SELECT {own} FROM {source} WHERE {own} IN ({marks}) AND "
                + " AND ".join(f"({c})" for c in conditions),
                page,
            ).fetchall()
            gone = [bytes(row[0]) for row in rows]
            if gone:
                _delete_tracking(tracking, gone)
                history.forget_collected(tracking, gone)
                deleted += len(gone)
        history.set_collector_token(tracking, token)
    _settle(tracking, token)
    logger.warning(
        "gc of %s: repaired after an unfinished collection: %d unused rows had lost their objects",
        tracking.table_name,
        deleted,
    )
    return deleted


def _delete_tracking(tracking: ExternalTable, hashes: list[bytes]) -> None:
    quote = tracking.connection.backend.quote
    tracking.connection.query(
        f"DELETE FROM {tracking.full_table_name} WHERE {quote('hash')} IN "
        f"({', '.join([PH] * len(hashes))})",
        hashes,
    )


def _restore_rows(tracking: ExternalTable, rows: list[tuple]) -> None:
    """Put back the tracking rows of objects that could not be removed (same timestamps)."""
    backend = tracking.connection.backend
    sql = backend.insert_statement(tracking.full_table_name, COLUMNS, "error", ["hash"])
    tracking.connection.query(sql, [tuple(row) for row in rows], many=True)


def _remove_objects(tracking: ExternalTable, keys: dict[str, bytes]) -> tuple[dict[bytes, str], bool]:
    """Remove objects in bulk. Returns ({hash: error} of those still there, unsure): `unsure` when
    some could not be checked (their rows are put back, but their objects may be gone)."""
    store = tracking.store
    try:
        store.remove_many(list(keys))
    except StoreError as error:
        message = str(error)
    else:
        return {}, False
    from .store import transfer_concurrency

    def remains(key: str) -> bool | None:
        try:
            return store.size(key) is not None
        except StoreError:
            return None  # cannot tell: keep the row (and leave the mark busy)

    with ThreadPoolExecutor(transfer_concurrency()) as pool:
        still = dict(zip(keys, pool.map(remains, keys)))
    unsure = any(there is None for there in still.values())
    return {keys[key]: message for key, there in still.items() if there is not False}, unsure


# -- entry points -------------------------------------------------------------------------------
def collect(
    tracking: ExternalTable,
    grace_seconds: int | None = None,
    delete_files: bool = True,
    limit: int | None = None,
    progress: Progress | None = None,
) -> GCReport:
    """plan() then sweep(): the unattended collector."""
    report = plan(tracking, grace_seconds, limit, progress)
    return sweep(tracking, report, delete_files=delete_files, progress=progress)


def run_gc(
    schema_name: str,
    store: str,
    grace_seconds: int | None = None,
    dry_run: bool = True,
    delete_orphans: bool = False,
    *,
    delete_files: bool = True,
    limit: int | None = None,
    scan_orphans: bool | None = None,
    progress: Progress | None = None,
    connection: Any = None,
) -> dict[str, Any]:
    """Collect one store of one schema: the engine call behind the scheduled GC flow.

    Plans (and unless `dry_run`, sweeps) unused objects past the grace period; scans for orphans
    when `delete_orphans` (or `scan_orphans`) is set and, unless `dry_run`, removes them. Returns
    a JSON-able report: {'unused': ..., 'orphans': ... or None, 'text': the printable report}.
    Progress goes to `progress(phase, done, total)`, by default a line on the 'dj_flows.gc'
    logger every five seconds.
    """
    from ..connection import conn
    from ..schema import Schema
    from .orphans import remove_orphans
    from .orphans import scan_orphans as scan

    started = time.monotonic()
    progress = progress if progress is not None else log_progress()
    connection = connection if connection is not None else conn()
    schema = Schema(schema_name, connection=connection, create_schema=False)
    tracking = schema.external[store]
    grace = _grace(grace_seconds)
    report = plan(tracking, grace, limit, progress)
    if not dry_run:
        report = sweep(tracking, report, delete_files=delete_files, progress=progress)
    orphans = None
    if delete_orphans or scan_orphans:
        orphans = scan(tracking, grace, progress=progress)
        if delete_orphans and not dry_run:
            orphans = remove_orphans(tracking, orphans, progress=progress)
    text = str(report) + (f"\n{orphans}" if orphans is not None else "")
    return {
        "schema": schema_name,
        "store": store,
        "grace_seconds": grace,
        "dry_run": dry_run,
        "unused": report.to_dict(),
        "orphans": orphans.to_dict() if orphans is not None else None,
        "seconds": round(time.monotonic() - started, 3),
        "text": text,
    }
