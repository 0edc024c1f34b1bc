"""Chunked populate with bounded retries of transient failures, reporting JSON-only results.

`populate_in_chunks()` is the engine-facing half of the populate task (no Prefect here, so it is
tested and usable on its own): it lists the keys still to make, hands them to `populate()` a chunk
at a time (so progress is visible and a crash loses at most one chunk's bookkeeping), and sorts
failures into two kinds:

- transient (lost connection, store timeout or 5xx, interrupted download): the key is tried again
  after a reconnect and a growing pause, at most `key_retries` more times;
- anything else (a make() that failed on its data, a 404, a corrupt file): recorded once with its
  message and never retried here. With `reserve_jobs` the failure is also kept in `~jobs`, so later
  runs skip the key until someone clears it, as in DataJoint.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from .runtime import is_transient, jsonable

logger = logging.getLogger("dj_flows.prefect.populate")
DEFAULT_CHUNK_SIZE = 25
DEFAULT_KEY_RETRIES = 2
RETRY_PAUSE_SECONDS = 1.0


@dataclasses.dataclass
class PopulateReport:
    """What one populate task did to one table; `to_dict()` is plain JSON."""

    schema: str
    table: str
    class_name: str
    total: int = 0  # keys in the key source (under the restrictions)
    existing: int = 0  # of those, already in the table before this run: skipped
    todo: int = 0  # keys this run set out to make
    made: list[dict] = dataclasses.field(default_factory=list)
    errors: list[dict] = dataclasses.field(default_factory=list)  # {key, error, transient, tries}
    retried: int = 0
    remaining: int = 0  # keys of the key source still missing after the run
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "table": self.table,
            "class_name": self.class_name,
            "total": self.total,
            "existing": self.existing,
            "todo": self.todo,
            "made": len(self.made),
            "made_keys": self.made,
            "errors": self.errors,
            "retried": self.retried,
            "remaining": self.remaining,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        if self.total == 0:
            return f"{self.class_name}: nothing to do (its key source is empty)"
        if self.todo == 0:
            return f"{self.class_name}: nothing to do ({self.existing} of {self.total} already made)"
        text = f"{self.class_name}: made {len(self.made)} of {self.todo}"
        if self.existing:
            text += f", skipped {self.existing} already made"
        if self.errors:
            text += f", {len(self.errors)} failed"
        return text + f" in {self.seconds:.1f} s"


def _restricted(query: Any, restrictions: Sequence[Any]) -> Any:
    for restriction in restrictions:
        query = query & restriction
    return query


def _message(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def populate_in_chunks(
    table: type,
    restrictions: Sequence[Any] = (),
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    reserve_jobs: bool = False,
    key_retries: int = DEFAULT_KEY_RETRIES,
    max_calls: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    pause_seconds: float = RETRY_PAUSE_SECONDS,
) -> PopulateReport:
    """Make the missing keys of `table` (an Imported/Computed class) chunk by chunk.

    `on_progress(done, todo)` is called after every chunk. Returns the report; make() failures are
    in it, not raised.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    started = time.monotonic()
    instance = table()
    report = PopulateReport(instance.database, instance.table_name, table.__name__)
    source = _restricted(instance.key_source, restrictions)
    report.total = len(source)
    keys = (source - instance.proj()).fetch("KEY")
    report.existing = report.total - len(keys)
    if max_calls is not None:
        keys = keys[:max_calls]
    report.todo = len(keys)
    logger.info("%s: %d keys to make, %d already made", table.__name__, len(keys), report.existing)
    done = 0
    for start in range(0, len(keys), chunk_size):
        chunk = keys[start : start + chunk_size]
        _run_chunk(table, chunk, report, reserve_jobs, key_retries, pause_seconds)
        done += len(chunk)
        if on_progress is not None:
            on_progress(done, len(keys))
    report.remaining = len(_restricted(instance.key_source, restrictions) - instance.proj())
    report.seconds = time.monotonic() - started
    logger.info("%s", report.summary())
    return report


def _run_chunk(
    table: type,
    keys: list[dict],
    report: PopulateReport,
    reserve_jobs: bool,
    key_retries: int,
    pause_seconds: float,
) -> None:
    pending = list(keys)
    for attempt in range(key_retries + 1):
        made, result = _populate_keys(table, pending, reserve_jobs)
        report.made.extend(jsonable(made))
        transient = [(k, e) for k, e in result["error_list"] if is_transient(e)]
        for key, error in result["error_list"]:
            if is_transient(error) and attempt < key_retries:
                continue
            report.errors.append(
                {
                    "key": jsonable(dict(key)),
                    "error": _message(error),
                    "transient": is_transient(error),
                    "tries": attempt + 1,
                }
            )
        if not transient or attempt == key_retries:
            return
        pending = [dict(k) for k, _ in transient]
        report.retried += len(pending)
        logger.warning(
            "%s: %d keys failed transiently (%s); reconnecting and retrying",
            table.__name__, len(pending), _message(transient[0][1]),
        )
        table().connection.close()  # reconnects on the next query
        if reserve_jobs:
            _clear_job_errors(table, pending)
        time.sleep(pause_seconds * (2**attempt))


def _populate_keys(table: type, keys: list[dict], reserve_jobs: bool) -> tuple[list[dict], dict]:
    """populate() `keys`; returns (the keys this call made, populate's result).

    Without reservations a key present afterwards (and not failed) was made by this call. With
    them other workers may make keys of the chunk at the same time, so the keys go one per call
    and a key counts as made only when populate() itself counted it."""
    options = {"suppress_errors": True, "return_exception_objects": True}
    if not reserve_jobs:
        result = table.populate(keys, **options)
        failed = {_frozen(key) for key, _ in result["error_list"]}
        present = {_frozen(k) for k in (table & keys).fetch("KEY")} if keys else set()
        return [k for k in keys if _frozen(k) not in failed and _frozen(k) in present], result
    made, errors = [], []
    for key in keys:
        one = table.populate(key, reserve_jobs=True, **options)
        if one["success_count"]:
            made.append(key)
        errors += one["error_list"]
    return made, {"success_count": len(made), "error_list": errors}


def _clear_job_errors(table: type, keys: list[dict]) -> None:
    """Remove the error rows populate() left in ~jobs for keys we are about to retry."""
    instance = table()
    schema = instance.connection.schemas.get(instance.database)
    if schema is None:
        return
    for key in keys:
        schema.jobs.complete(instance.table_name, key)


def _frozen(key: Any) -> tuple:
    return tuple(sorted((str(k), repr(jsonable(v))) for k, v in dict(key).items()))
