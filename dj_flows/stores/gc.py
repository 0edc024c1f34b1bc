"""Garbage collection of external stores: report first, then sweep, never losing a live object.

An object is collected only when no row references it and its tracking row has not been touched for
`grace_seconds`. `plan()` finds candidates with one set-based query per page (no per-object queries)
and reports count, bytes and objects. `sweep(report)` takes the report's candidates and, page by
page, in one transaction each: locks their tracking rows (an insert re-using the content waits on the
same locks), re-checks them under READ COMMITTED (references and grace), removes their objects in
bulk, and deletes only the rows whose objects are gone. A crash between removal and commit leaves
unused rows whose objects are missing; inserts check reused objects exist and re-upload them.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..backends import PH
from ..errors import StoreError

if TYPE_CHECKING:
    from .external import ExternalTable

logger = logging.getLogger("dj_flows.gc")
PAGE = 1000


@dataclasses.dataclass
class Candidate:
    hash: uuid.UUID
    key: str
    size: int
    attachment_name: str | None
    last_reference: str = "unknown"  # schema.table.attribute of the last row that referenced it
    last_key: Any = None  # that row's primary key


@dataclasses.dataclass
class GCReport:
    """What a collection would remove (plan) or did remove (after sweep)."""

    store: str
    database: str
    grace_seconds: int
    candidates: list[Candidate] = dataclasses.field(default_factory=list)
    deleted_rows: int = 0
    deleted_files: int = 0
    skipped: int = 0  # candidates found in use (or touched) again at sweep time
    errors: list[tuple[uuid.UUID, str, str]] = dataclasses.field(default_factory=list)
    swept: bool = False

    @property
    def count(self) -> int:
        return len(self.candidates)

    @property
    def bytes(self) -> int:
        return sum(c.size for c in self.candidates)

    def by_reference(self) -> dict[str, dict[str, int]]:
        groups: dict[str, dict[str, int]] = {}
        for candidate in self.candidates:
            group = groups.setdefault(candidate.last_reference, {"count": 0, "bytes": 0})
            group["count"] += 1
            group["bytes"] += candidate.size
        return groups

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "database": self.database,
            "grace_seconds": self.grace_seconds,
            "count": self.count,
            "bytes": self.bytes,
            "by_reference": self.by_reference(),
            "swept": self.swept,
            "deleted_rows": self.deleted_rows,
            "deleted_files": self.deleted_files,
            "skipped": self.skipped,
            "errors": [(str(h), k, m) for h, k, m in self.errors],
        }

    def __str__(self) -> str:
        verb = "removed" if self.swept else "would remove"
        lines = [
            f"GC of store {self.store!r} in schema {self.database!r} (grace {self.grace_seconds} s): "
            f"{verb} {self.count if not self.swept else self.deleted_rows} objects, {_size(self.bytes)}"
        ]
        for reference, group in sorted(self.by_reference().items()):
            lines.append(f"  {reference}: {group['count']} objects, {_size(group['bytes'])}")
        if self.swept and self.skipped:
            lines.append(f"  {self.skipped} candidates were in use again and kept")
        for hash_, key, message in self.errors[:10]:
            lines.append(f"  error {hash_} {key}: {message}")
        return "\n".join(lines)


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"


def _unused_conditions(tracking: ExternalTable) -> tuple[list[str], tuple]:
    """SQL conditions (on the tracking table's columns) that hold for unreferenced rows."""
    backend = tracking.connection.backend
    conditions = []
    for ref in tracking.references:
        schema, table = ref["referencing_table"]
        column = backend.quote(ref["column_name"])
        conditions.append(
            f"{backend.quote('hash')} NOT IN (SELECT {column} FROM {backend.table_ref(schema, table)} "
            f"WHERE {column} IS NOT NULL)"
        )
    return conditions, ()


def plan(
    tracking: ExternalTable,
    grace_seconds: int = 3600,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> GCReport:
    """Dry run: the unreferenced objects older than the grace period, found page by page."""
    backend = tracking.connection.backend
    quote = backend.quote
    report = GCReport(tracking.store_name, tracking.database, int(grace_seconds))
    conditions, params = _unused_conditions(tracking)
    conditions.append(backend.older_than("timestamp", int(grace_seconds)))
    last: bytes | None = None
    history = _last_references(tracking)
    while limit is None or report.count < limit:
        page = PAGE if limit is None else min(PAGE, limit - report.count)
        where = list(conditions)
        page_params = list(params)
        if last is not None:
            where.append(f"{quote('hash')} > {PH}")
            page_params.append(last)
        sql = (
            f"SELECT {quote('hash')}, {quote('size')}, {quote('attachment_name')}, {quote('filepath')} "
            f"FROM {tracking.full_table_name} WHERE "
            + " AND ".join(f"({c})" for c in where)
            + f" ORDER BY {quote('hash')} LIMIT {page}"
        )
        rows = tracking.connection.query(sql, page_params).fetchall()
        for hash_bytes, size, attachment_name, filepath in rows:
            hash_ = uuid.UUID(bytes=bytes(hash_bytes))
            key = tracking.object_key(hash_, attachment_name, filepath)
            origin, last_key = history.get(bytes(hash_bytes), ("unknown", None))
            report.candidates.append(
                Candidate(hash_, key, int(size), attachment_name, origin, last_key)
            )
        if progress:
            progress(report.count)
        if len(rows) < page:
            break
        last = bytes(rows[-1][0])
    return report


def sweep(
    tracking: ExternalTable,
    report: GCReport,
    *,
    delete_files: bool = True,
    progress: Callable[[int], None] | None = None,
) -> GCReport:
    """Remove the report's candidates that are still unreferenced and past the grace period."""
    connection = tracking.connection
    backend = connection.backend
    quote = backend.quote
    store = tracking.store if delete_files else None
    conditions, params = _unused_conditions(tracking)
    conditions.append(backend.older_than("timestamp", report.grace_seconds))
    candidates = {c.hash.bytes: c for c in report.candidates}
    hashes = list(candidates)
    for start in range(0, len(hashes), PAGE):
        page = hashes[start : start + PAGE]
        marks = ", ".join([PH] * len(page))
        with connection.transaction(read_committed=True):
            connection.query(
                f"SELECT {quote('hash')} FROM {tracking.full_table_name} WHERE {quote('hash')} IN ({marks}){backend.lock_suffix}",
                page,
            ).fetchall()
            where = " AND ".join(f"({c})" for c in conditions)
            rows = connection.query(
                f"SELECT {quote('hash')} FROM {tracking.full_table_name} WHERE {quote('hash')} IN ({marks}) AND {where}",
                [*page, *params],
            ).fetchall()
            doomed = [bytes(r[0]) for r in rows]
            report.skipped += len(page) - len(doomed)
            if store is not None and doomed:
                doomed = _remove_objects(store, [candidates[h] for h in doomed], report)
            if doomed:
                marks = ", ".join([PH] * len(doomed))
                cursor = connection.query(
                    f"DELETE FROM {tracking.full_table_name} WHERE {quote('hash')} IN ({marks})",
                    doomed,
                )
                report.deleted_rows += cursor.rowcount
        if progress:
            progress(min(start + PAGE, len(hashes)))
    report.swept = True
    logger.info("%s", report)
    return report


def _remove_objects(store: Any, candidates: list[Candidate], report: GCReport) -> list[bytes]:
    """Remove objects in bulk; return the hashes whose objects are gone."""
    keys = {c.key: c for c in candidates}
    try:
        store.remove_many(list(keys))
    except StoreError as error:
        remaining = {k for k in keys if store.size(k) is not None}
        for key in remaining:
            report.errors.append((keys[key].hash, key, str(error)))
        gone = [c.hash.bytes for k, c in keys.items() if k not in remaining]
        report.deleted_files += len(gone)
        return gone
    report.deleted_files += len(keys)
    return [c.hash.bytes for c in candidates]


def collect(
    tracking: ExternalTable,
    grace_seconds: int = 3600,
    delete_files: bool = True,
    limit: int | None = None,
) -> GCReport:
    """plan() then sweep(): the unattended collector."""
    started = time.monotonic()
    report = sweep(tracking, plan(tracking, grace_seconds, limit), delete_files=delete_files)
    logger.debug("collected %s in %.2f s", tracking.table_name, time.monotonic() - started)
    return report


def _last_references(tracking: ExternalTable) -> dict[bytes, tuple[str, Any]]:
    from .history import last_references

    return last_references(tracking)
