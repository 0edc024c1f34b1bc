"""What a garbage collection would remove or did remove: the report a flow shows before sweeping.

Candidates carry the table, attribute and primary key that last referenced them (from
`~reference_<store>`), so a report can say where unused bytes came from, not only how many.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("dj_flows.gc")
REPORTED_OBJECTS = 1000  # objects listed one by one in to_dict(); the groups count them all

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
                f"{files}, {size_text(self.deleted_bytes)}"
            )
        else:
            head = f"GC of {where}: would remove {self.count} objects, {size_text(self.bytes)}"
        lines = [head]
        examples: dict[str, Candidate] = {}
        for candidate in self.candidates:
            examples.setdefault(candidate.last_reference, candidate)
        for reference, group in self.by_reference().items():
            example = examples[reference]
            key = f" (last: {example.last_key})" if example.last_key is not None else ""
            lines.append(f"  {reference}: {group['count']} objects, {size_text(group['bytes'])}{key}")
        if self.skipped:
            lines.append(f"  {self.skipped} candidates were in use again and kept")
        if self.vanished:
            lines.append(f"  {self.vanished} candidates were already collected by another run")
        for hash_, key, message in self.errors[:10]:
            lines.append(f"  error {hash_} {key}: {message}")
        if len(self.errors) > 10:
            lines.append(f"  ... and {len(self.errors) - 10} more errors")
        return "\n".join(lines)


def size_text(count: float) -> str:
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
