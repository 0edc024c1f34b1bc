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
5. set the collector mark to busy, remove the objects in bulk (S3 DeleteObjects, 1000 a call; a
   thread pool for folders), put back the rows of objects that failed to go, set the mark to idle;
6. forget the collected objects' history; commit.

The insert side (`finish_external_insert`) uploads new objects before its transaction, so a collector could
remove such an object in between when another insert tracked the same content and its row was
deleted and collected meanwhile. The collector mark closes that window without a HEAD per object:
an insert reads the mark (one tiny object in the store) before uploading and again after it has
locked every tracking row of the insert; if a collector was busy at either read, or the mark
changed, it checks its uploads exist and uploads missing ones again. (If the idle mark cannot be
written, the mark stays busy and inserts keep checking until a later page succeeds: slower, never
wrong.) Pages never interleave, so between a page's busy and idle marks no other collector writes
the mark, which is what makes one read before and one after sufficient. A crash mid-page leaves
unused rows whose objects may be missing: the next sweep finishes them, and an insert re-using one
finds the object missing and uploads it again.
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

if TYPE_CHECKING:
    from .external import ExternalTable

logger = logging.getLogger("dj_flows.gc")
PAGE = 1000
MARK = ".dj-gc-mark"  # the collector mark, under {location}/{database}/
RETRIES = 4
REPORTED_OBJECTS = 1000  # objects listed one by one in to_dict(); the groups count them all
COLUMNS = ("hash", "size", "attachment_name", "filepath", "contents_hash", "timestamp")

#: progress(phase, done, total): phase is 'plan', 'sweep', 'scan' or 'orphans'; total may be None
Progress = Callable[[str, int, "int | None"], None]


# -- reports ------------------------------------------------------------------------------------
@dataclasses.dataclass
class Candidate:
    """One unused object: its tracking hash, store key and size, and who last referenced it."""

    hash: uuid.UUID
    key: str
    size: int
    attachment_name: str | None
    last_reference: str = "unknown"  # schema.table.attribute of the last row that referenced it
    last_key: Any = None  # that row's primary key

    def to_dict(self) -> dict[str, Any]:
        return {
            "hash": str(self.hash),
            "key": self.key,
            "size": self.size,
            "last_reference": self.last_reference,
            "last_key": self.last_key,
        }


@dataclasses.dataclass
class GCReport:
    """What a collection would remove (plan) or did remove (after sweep)."""

    store: str
    database: str
    grace_seconds: int
    candidates: list[Candidate] = dataclasses.field(default_factory=list)
    deleted_rows: int = 0
    deleted_files: int = 0
    deleted_bytes: int = 0
    skipped: int = 0  # candidates found in use (or touched) again at sweep time, and kept
    vanished: int = 0  # candidates another collector had removed already
    errors: list[tuple[uuid.UUID, str, str]] = dataclasses.field(default_factory=list)
    swept: bool = False
    delete_files: bool = True
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.candidates)

    @property
    def bytes(self) -> int:
        return sum(c.size for c in self.candidates)

    def by_reference(self) -> dict[str, dict[str, int]]:
        """{'schema.table.attribute' (or 'unknown'): {'count', 'bytes'}} over the candidates."""
        groups: dict[str, dict[str, int]] = {}
        for candidate in self.candidates:
            group = groups.setdefault(candidate.last_reference, {"count": 0, "bytes": 0})
            group["count"] += 1
            group["bytes"] += candidate.size
        return dict(sorted(groups.items()))

    def to_dict(self, max_objects: int = REPORTED_OBJECTS) -> dict[str, Any]:
        """A JSON-able summary (the first `max_objects` candidates listed one by one)."""
        return {
            "store": self.store,
            "database": self.database,
            "grace_seconds": self.grace_seconds,
            "count": self.count,
            "bytes": self.bytes,
            "by_reference": self.by_reference(),
            "objects": [c.to_dict() for c in self.candidates[:max_objects]],
            "objects_truncated": self.count > max_objects,
            "swept": self.swept,
            "delete_files": self.delete_files,
            "deleted_rows": self.deleted_rows,
            "deleted_files": self.deleted_files,
            "deleted_bytes": self.deleted_bytes,
            "skipped": self.skipped,
            "vanished": self.vanished,
            "errors": [(str(h), k, m) for h, k, m in self.errors],
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }

    def __str__(self) -> str:
        where = f"store {self.store!r} of schema {self.database!r} (grace {self.grace_seconds} s)"
        if self.swept:
            files = f", {self.deleted_files} files" if self.delete_files else " (files kept)"
            head = (
                f"GC of {where}: removed {self.deleted_rows} of {self.count} unused objects"
                f"{files}, {_size(self.deleted_bytes)}"
            )
        else:
            head = f"GC of {where}: would remove {self.count} objects, {_size(self.bytes)}"
        lines = [head]
        examples: dict[str, Candidate] = {}
        for candidate in self.candidates:
            examples.setdefault(candidate.last_reference, candidate)
        for reference, group in self.by_reference().items():
            example = examples[reference]
            key = f" (last: {example.last_key})" if example.last_key is not None else ""
            lines.append(f"  {reference}: {group['count']} objects, {_size(group['bytes'])}{key}")
        if self.skipped:
            lines.append(f"  {self.skipped} candidates were in use again and kept")
        if self.vanished:
            lines.append(f"  {self.vanished} candidates were already collected by another run")
        for hash_, key, message in self.errors[:10]:
            lines.append(f"  error {hash_} {key}: {message}")
        if len(self.errors) > 10:
            lines.append(f"  ... and {len(self.errors) - 10} more errors")
        return "\n".join(lines)


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"


def log_progress(every: float = 5.0, log: logging.Logger = logger) -> Progress:
    """A progress callback that logs a line at most every `every` seconds, and at the end."""
    last: dict[str, float] = {}

    def report(phase: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if not finished and phase in last and now - last[phase] < every:
            return
        last[phase] = now
        log.info("gc %s: %d%s", phase, done, f"/{total}" if total is not None else "")

    return report


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


def write_mark(tracking: ExternalTable, state: str) -> None:
    tracking.store.put(mark_key(tracking.database), f"{state}:{uuid.uuid4().hex}".encode())


def uploads_may_be_gone(before: str | None, after: str) -> bool:
    """Whether objects uploaded after reading `before` may have been removed by the time `after`
    was read (with the insert's tracking rows locked): a collector was busy at either read, or
    finished a page in between."""
    settled = before is not None and (before == "none" or before.startswith("idle:"))
    return not (settled and after == before)


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
        origins = history.last_references(tracking, [bytes(r[0]) for r in rows]) if rows else {}
        for hash_bytes, size_, attachment_name, filepath in rows:
            hash_ = uuid.UUID(bytes=bytes(hash_bytes))
            origin, last_key = origins.get(bytes(hash_bytes), ("unknown", None))
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
    unused = _unused_sql(tracking, report.grace_seconds)
    candidates = sorted(report.candidates, key=lambda c: c.hash.bytes)
    by_hash = {c.hash.bytes: c for c in candidates}
    for start in range(0, len(candidates), PAGE):
        page = candidates[start : start + PAGE]
        try:
            result = _sweep_page_retrying(tracking, page, unused, delete_files)
        except IntegrityError:  # a referencing table the catalog had not shown: look again
            tracking.connection.invalidate()
            unused = _unused_sql(tracking, report.grace_seconds)
            try:
                result = _sweep_page_retrying(tracking, page, unused, delete_files)
            except DataJointError as error:
                result = _PageResult(failed={c.hash.bytes: str(error) for c in page})
        except DataJointError as error:
            result = _PageResult(failed={c.hash.bytes: str(error) for c in page})
        report.deleted_rows += len(result.deleted)
        if delete_files:
            report.deleted_files += len(result.deleted)
        report.deleted_bytes += sum(by_hash[h].size for h in result.deleted)
        report.skipped += result.skipped
        report.vanished += result.vanished
        for hash_, message in result.failed.items():
            report.errors.append((by_hash[hash_].hash, by_hash[hash_].key, message))
        if progress:
            progress("sweep", start + len(page), len(candidates))
    report.swept = True
    report.seconds["sweep"] = time.monotonic() - started
    logger.info("%s", report)
    return report


def _retryable(error: Exception) -> bool:
    """Deadlocks and lock wait timeouts (MySQL 1213/1205), and lost connections."""
    text = str(error)
    return isinstance(error, LostConnectionError) or text.startswith(
        ("MySQL error 1213", "MySQL error 1205")
    )


def _sweep_page_retrying(
    tracking: ExternalTable, page: list[Candidate], unused: tuple[str, list[str]], delete_files: bool
) -> _PageResult:
    for attempt in range(RETRIES):
        try:
            return _sweep_page(tracking, page, unused, delete_files)
        except DataJointError as error:
            if not _retryable(error) or attempt == RETRIES - 1:
                raise
            logger.info("gc of %s: retrying a page after %s", tracking.table_name, error)
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


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
        history.lock_collectors(tracking)
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
            keys = {c.key: c.hash.bytes for c in page if c.hash.bytes in doomed}
            write_mark(tracking, "busy")
            result.failed = _remove_objects(tracking, keys)
            if result.failed:
                _restore_rows(tracking, [doomed[h] for h in result.failed])
            write_mark(tracking, "idle")
            history.forget_collected(tracking, [h for h in doomed if h not in result.failed])
        result.deleted = [h for h in doomed if h not in result.failed]
    return result


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


def _remove_objects(tracking: ExternalTable, keys: dict[str, bytes]) -> dict[bytes, str]:
    """Remove objects in bulk; return {hash: error} for those that are still there."""
    store = tracking.store
    try:
        store.remove_many(list(keys))
    except StoreError as error:
        message = str(error)
    else:
        return {}
    from .store import transfer_concurrency

    def remains(key: str) -> bool:
        try:
            return store.size(key) is not None
        except StoreError:
            return True  # cannot tell: keep the row (an object without a row is an orphan)

    with ThreadPoolExecutor(transfer_concurrency()) as pool:
        still = dict(zip(keys, pool.map(remains, keys)))
    return {keys[key]: message for key, there in still.items() if there}


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
