"""Orphans: objects in a store that no tracking row names.

They are left by rolled-back make() calls (uploads happen before the transaction), crashed
uploads, and DataJoint's delete(delete_external_files=False). `scan_orphans()` lists the objects
under the schema's folder (`{location}/{database}/`), keeps those whose names follow DataJoint's
hash layout and that are older than the grace period (by the store's modification time), and asks
the tracking table about them a thousand at a time. Names that do not follow the layout are
counted, never removed; stale temporary files of interrupted folder writes are removed once they
are older than the grace period and TEMP_MIN_AGE both.

`remove_orphans()` does not delete files behind the tracking table's back. Each page runs like a
collector page (gc.py), in one transaction under the collector lock: it adopts the page's files
that are still untracked (inserts rows dated 1970, skipping hashes tracked since the scan), sets
the collector mark busy, removes the files, deletes the adopted rows, records its token; commit;
then the mark goes idle. No other transaction ever sees an adopted row: an insert tracking the same
content waits on the row lock, and then finds the mark moved and uploads its object again.
"""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

from ..backends import PH
from ..errors import DataJointError, StoreError
from . import gc, history
from .filestore import is_temp_name
from .gc_report import size_text
from .layout import subfold

if TYPE_CHECKING:
    from .external import ExternalTable

PAGE = 1000
TEMP_MIN_AGE = 600  # seconds: a temporary file younger than this may be a write in progress
ADOPTED = "1970-01-02 00:00:00"  # the timestamp of adopted rows: past any grace period
REPORTED_OBJECTS = 1000
_HEX = re.compile(r"[0-9a-f]{32}")


@dataclasses.dataclass
class Orphan:
    """A file no tracking row names: its key, size and age, and its hash when the name says."""

    key: str
    size: int
    mtime: float | None
    hash: uuid.UUID | None = None
    attachment_name: str | None = None
    last_reference: str = "unknown"
    last_key: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "size": self.size,
            "mtime": self.mtime,
            "hash": str(self.hash) if self.hash else None,
            "last_reference": self.last_reference,
            "last_key": self.last_key,
        }


@dataclasses.dataclass
class OrphanReport:
    """What an orphan scan found (and, after remove_orphans, what went)."""

    store: str
    database: str
    grace_seconds: int
    orphans: list[Orphan] = dataclasses.field(default_factory=list)
    temporary: list[Orphan] = dataclasses.field(default_factory=list)
    scanned: int = 0
    unrecognized: int = 0  # names outside DataJoint's layout: never removed
    young: int = 0  # untracked but within the grace period
    removed: int = 0
    removed_bytes: int = 0
    kept: int = 0  # tracked again (or released recently) by the time of the sweep
    errors: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    swept: bool = False
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.orphans) + len(self.temporary)

    @property
    def bytes(self) -> int:
        return sum(o.size for o in self.orphans) + sum(o.size for o in self.temporary)

    def by_reference(self) -> dict[str, dict[str, int]]:
        groups: dict[str, dict[str, int]] = {}
        for orphan in [*self.orphans, *self.temporary]:
            name = orphan.last_reference if orphan.hash else "temporary files"
            group = groups.setdefault(name, {"count": 0, "bytes": 0})
            group["count"] += 1
            group["bytes"] += orphan.size
        return dict(sorted(groups.items()))

    def to_dict(self, max_objects: int = REPORTED_OBJECTS) -> dict[str, Any]:
        listed = [*self.orphans, *self.temporary]
        return {
            "store": self.store,
            "database": self.database,
            "grace_seconds": self.grace_seconds,
            "scanned": self.scanned,
            "count": self.count,
            "bytes": self.bytes,
            "by_reference": self.by_reference(),
            "objects": [o.to_dict() for o in listed[:max_objects]],
            "objects_truncated": len(listed) > max_objects,
            "unrecognized": self.unrecognized,
            "young": self.young,
            "swept": self.swept,
            "removed": self.removed,
            "removed_bytes": self.removed_bytes,
            "kept": self.kept,
            "errors": list(self.errors),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }

    def __str__(self) -> str:
        where = f"store {self.store!r} of schema {self.database!r} (grace {self.grace_seconds} s)"
        if self.swept:
            head = f"Orphans in {where}: removed {self.removed} of {self.count}, {size_text(self.removed_bytes)}"
        else:
            head = f"Orphans in {where}: {self.count} files, {size_text(self.bytes)} would go"
        lines = [head + f" ({self.scanned} objects scanned)"]
        for name, group in self.by_reference().items():
            lines.append(f"  {name}: {group['count']} files, {size_text(group['bytes'])}")
        if self.young:
            lines.append(f"  {self.young} untracked files are younger than the grace period")
        if self.unrecognized:
            lines.append(f"  {self.unrecognized} files outside DataJoint's layout were left alone")
        if self.kept:
            lines.append(f"  {self.kept} were in use again by the time of the sweep and kept")
        for key, message in self.errors[:10]:
            lines.append(f"  error {key}: {message}")
        return "\n".join(lines)


def parse_key(
    database: str, key: str, folds: tuple[int, ...]
) -> tuple[uuid.UUID, str | None] | None:
    """(hash, attachment name) of a key in DataJoint's hash layout, else None."""
    parts = key.split("/")
    if len(parts) < 2 or parts[0] != database:
        return None
    name = parts[-1]
    hex_ = name[:32]
    if not _HEX.fullmatch(hex_) or (len(name) > 32 and name[32] != "."):
        return None
    folders = [p for p in subfold(hex_, folds) if p]
    if parts[1:-1] != folders:
        return None
    attachment = name[33:] if len(name) > 32 else None
    if attachment == "":
        return None
    return uuid.UUID(hex=hex_), attachment


def scan_orphans(
    tracking: ExternalTable,
    grace_seconds: int | None = None,
    progress: gc.Progress | None = None,
) -> OrphanReport:
    """List the files under the schema's folder that no tracking row names and that are older
    than the grace period (dj.config['gc.grace_seconds'] by default)."""
    started = time.monotonic()
    grace = gc._grace(grace_seconds)
    store = tracking.store
    report = OrphanReport(tracking.store_name, tracking.database, grace)
    mark = gc.mark_key(tracking.database)
    folds = tuple(store.subfolding)
    now = time.time()
    batch: list[Orphan] = []
    for item in store.list(tracking.database):
        report.scanned += 1
        if item.key == mark:
            continue
        age = None if item.mtime is None else now - item.mtime
        if is_temp_name(item.key):
            if age is not None and age >= max(grace, TEMP_MIN_AGE):
                report.temporary.append(Orphan(item.key, item.size, item.mtime))
            continue
        parsed = parse_key(tracking.database, item.key, folds)
        if parsed is None:
            report.unrecognized += 1
            continue
        batch.append(Orphan(item.key, item.size, item.mtime, *parsed))
        if len(batch) >= PAGE:
            _resolve(tracking, batch, report, now)
            batch = []
            if progress:
                progress("scan", report.scanned, None)
    _resolve(tracking, batch, report, now)
    if progress:
        progress("scan", report.scanned, report.scanned)
    report.seconds["scan"] = time.monotonic() - started
    return report


def _resolve(tracking: ExternalTable, batch: list[Orphan], report: OrphanReport, now: float) -> None:
    """Add the untracked files of `batch` to the report: as orphans when past the grace period."""
    grace = report.grace_seconds
    for orphan in _untracked(tracking, batch):
        if grace and (orphan.mtime is None or now - orphan.mtime < grace):
            report.young += 1
        else:
            report.orphans.append(orphan)


def _untracked(tracking: ExternalTable, batch: list[Orphan]) -> list[Orphan]:
    """The files of `batch` that no tracking row names (two queries)."""
    if not batch:
        return []
    tracked = tracking.tracked([o.hash.bytes for o in batch])
    quote = tracking.connection.backend.quote
    keys = [o.key for o in batch]
    named = {
        row[0]
        for row in tracking.connection.query(
            f"SELECT {quote('filepath')} FROM {tracking.full_table_name} WHERE "
            f"{quote('filepath')} IN ({', '.join([PH] * len(keys))})",
            keys,
        ).fetchall()
    }
    orphans = [o for o in batch if o.hash.bytes not in tracked and o.key not in named]
    origins = history.last_references(tracking, [o.hash.bytes for o in orphans])
    for orphan in orphans:
        orphan.last_reference, orphan.last_key = origins.get(orphan.hash.bytes, ("unknown", None))
    return orphans


def remove_orphans(
    tracking: ExternalTable, report: OrphanReport, progress: gc.Progress | None = None
) -> OrphanReport:
    """Remove the report's orphans: a page at a time, each adopted and removed in one transaction
    under the collector lock and mark, so no other transaction ever sees an adopted row."""
    started = time.monotonic()
    history.declare_history(tracking.connection, tracking.database, tracking.store_name)
    for start in range(0, len(report.orphans), PAGE):
        page = report.orphans[start : start + PAGE]
        try:
            removed, kept, token = _remove_page(tracking, page)
        except gc._RepairNeeded:
            gc.repair(tracking)
            try:
                removed, kept, token = _remove_page(tracking, page)
            except (gc._RepairNeeded, DataJointError) as error:
                report.errors += [(o.key, str(error) or "collector mark inconsistent") for o in page]
                continue
        except DataJointError as error:
            report.errors += [(o.key, str(error)) for o in page]
            continue
        if token:
            gc._settle(tracking, token)
        report.removed += len(removed)
        report.removed_bytes += sum(o.size for o in removed)
        report.kept += kept
        if progress:
            progress("orphans", start + len(page), len(report.orphans))
    if report.temporary:
        keys = [o.key for o in report.temporary]
        try:
            tracking.store.remove_many(keys)
        except StoreError as error:
            report.errors.append((keys[0], str(error)))
        else:
            report.removed += len(keys)
            report.removed_bytes += sum(o.size for o in report.temporary)
    report.swept = True
    report.seconds["remove"] = time.monotonic() - started
    return report


def _remove_page(tracking: ExternalTable, page: list[Orphan]) -> tuple[list[Orphan], int, str | None]:
    """Adopt the page's orphans that are still untracked (rows dated ADOPTED), remove their
    objects, delete the rows; return (removed, kept because tracked meanwhile, page token)."""
    connection = tracking.connection
    backend = connection.backend
    quote = backend.quote
    table = tracking.full_table_name
    hashes = [o.hash.bytes for o in page]
    marks = ", ".join([PH] * len(hashes))
    columns = ["hash", "size", "attachment_name", "timestamp"]
    adopt = backend.insert_statement(table, columns, "skip", ["hash"])
    token = None
    with connection.transaction(read_committed=True):
        committed = history.lock_collectors(tracking)
        gc._check_mark(tracking, committed)
        connection.query(
            adopt, [(o.hash.bytes, o.size, o.attachment_name, ADOPTED) for o in page], many=True
        )
        ours = {
            bytes(row[0])
            for row in connection.query(
                f"SELECT {quote('hash')} FROM {table} WHERE {quote('hash')} IN ({marks}) "
                f"AND {quote('timestamp')} = {PH}{backend.lock_suffix}",
                [*hashes, ADOPTED],
            ).fetchall()
        }
        removed = [o for o in page if o.hash.bytes in ours]
        if not removed:
            return [], len(page), None
        token = uuid.uuid4().hex
        gc.write_mark(tracking, f"busy:{token}")
        failed, _ = gc._remove_objects(tracking, {o.key: o.hash.bytes for o in removed})
        gc._delete_tracking(tracking, list(ours))  # untracked again, whatever the store said
        history.forget_collected(tracking, list(ours))
        if committed is not None:
            history.set_collector_token(tracking, token)
    removed = [o for o in removed if o.hash.bytes not in failed]
    return removed, len(page) - len(ours), token if committed is not None else None
