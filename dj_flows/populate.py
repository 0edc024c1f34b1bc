"""populate(): fill Imported and Computed tables by calling make() for each missing key.

Each make() runs in its own transaction, so a failure rolls back every row it inserted (part tables
included). The three-part make (`make_fetch` -> `make_compute` -> `make_insert`, or a generator
make() that yields between the steps, as in DataJoint) fetches and computes outside the
transaction, then re-fetches inside it and refuses to insert if the inputs changed meanwhile.

With `reserve_jobs=True` each key is reserved in the schema's `~jobs` table under a renewed lease
before it is made (see jobs.py), so any number of workers — threads, processes, hosts, DataJoint
0.14 workers — can populate one table and each key is made once. `processes=N` runs N worker
processes (see parallel.py). A lost connection or a deadlock gives the key back to the queue;
any other failure records it as an error in `~jobs`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import os
import random
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

from .errors import DataJointError, LostConnectionError, QueryError
from .progress import ProgressBar
from .settings import config
from .termination import check as check_termination
from .termination import deferred, interruptible, sigterm_as_exit

logger = logging.getLogger("dj_flows.populate")
_populating = threading.local()
DEADLOCK_CODES = {1205, 1213}  # MySQL: lock wait timeout, deadlock (transient: retry the key later)
BEGIN_ATTEMPTS = 10  # SQLite: busy timeouts waited out before a make transaction gives up
MAKE_ATTEMPTS = 3  # a make() chosen as a deadlock's victim is rolled back whole and run again


@contextlib.contextmanager
def allow_inserts(table_name: str) -> Iterator[None]:
    """Within make(), inserts into the table being populated are allowed."""
    names = getattr(_populating, "names", None)
    if names is None:
        names = _populating.names = set()
    added = table_name not in names
    names.add(table_name)
    try:
        yield
    finally:
        if added:
            names.discard(table_name)


def inserts_allowed(table_name: str) -> bool:
    return table_name in getattr(_populating, "names", ())


@dataclasses.dataclass
class PopulateRun:
    """What one worker needs to make keys: options of the populate() call and its job queue."""

    suppress_errors: bool = False
    return_exception_objects: bool = False
    make_kwargs: dict | None = None
    reserve_jobs: bool = False
    lease: int = 300
    lapsed: dict[str, str] = dataclasses.field(default_factory=dict)  # key hash -> marker
    jobs: Any = None
    keeper: Any = None


class AutoPopulate:
    """Mixin for Imported and Computed tables."""

    _key_source: Any = None

    @property
    def _allow_insert(self) -> bool:  # type: ignore[override]
        return inserts_allowed(self.table_name)

    @property
    def target(self) -> Any:
        return self

    @property
    def key_source(self) -> Any:
        """The keys make() is called with: the join of the primary-key parents, projected."""
        if self._key_source is not None:
            source = self._key_source
            return source() if isinstance(source, type) else source
        from .table import FreeTable

        key = set(self.heading.primary_key)
        edges = [
            e for e in self.connection.dependencies.parents(self.node)
            if set(e.attr_map) <= key and not e.parent[1].startswith("~")
        ]
        if not edges:
            raise DataJointError(f"{self.table_name!r} has no primary-key parents: define key_source")
        source = None
        for edge in edges:
            renames = {c: p for c, p in edge.attr_map.items() if c != p}
            parent = FreeTable(self.connection, *edge.parent)
            parent = parent.proj(**renames) if renames else parent.proj()
            source = parent if source is None else source * parent
        return source.proj()

    def make(self, key: dict, **kwargs: Any) -> None:
        raise NotImplementedError(
            f"{type(self).__name__} must define make(self, key), or make_fetch, make_compute and make_insert"
        )

    def _job_key(self, key: dict) -> dict:
        """The key whose hash names the job (override to reserve at another granularity)."""
        return key

    def _make_style(self) -> str:
        """'plain' (one transaction), 'generator' (DataJoint's yielding make) or 'parts'."""
        make = getattr(type(self), "_make_tuples", None) or type(self).make
        if make is AutoPopulate.make:
            if all(hasattr(self, n) for n in ("make_fetch", "make_compute", "make_insert")):
                return "parts"
            raise NotImplementedError(
                f"{type(self).__name__} must define make(self, key), or make_fetch, make_compute and make_insert"
            )
        return "generator" if inspect.isgeneratorfunction(make) else "plain"

    def _jobs_to_do(self, restrictions: tuple) -> Any:
        if self.restriction:
            raise DataJointError(
                f"cannot populate a restricted {type(self).__name__}: pass the restrictions to populate()"
            )
        todo = self.key_source
        if isinstance(todo, type):
            todo = todo()
        missing = [name for name in todo.primary_key if name not in self.heading]
        if missing:
            raise DataJointError(f"{self.table_name!r} lacks the key_source attributes {missing}")
        for restriction in restrictions:
            todo = todo & restriction
        return todo.proj()

    def progress(self, *restrictions: Any, display: bool = False) -> tuple[int, int]:
        """(remaining, total) keys of the key source."""
        todo = self._jobs_to_do(restrictions)
        total = len(todo)
        remaining = len(todo - self.proj())
        if display:
            done = total - remaining
            print(f"{type(self).__name__:<20} Completed {done} of {total} ({done / total if total else 1:.1%})")
        return remaining, total

    def jobs_status(self, *restrictions: Any) -> dict[str, int]:
        """Total and remaining keys, and this table's jobs: reserved, expired, error, ignore."""
        from .jobs import jobs_status

        return jobs_status(self, *restrictions)

    def _jobs_table(self) -> Any:
        from .jobs import JobTable

        schema = self.connection.schemas.get(self.database)
        return schema.jobs if schema is not None else JobTable(self.connection, self.database)

    # -- populate -------------------------------------------------------------------------------
    def populate(
        self,
        *restrictions: Any,
        keys: list | None = None,
        suppress_errors: bool = False,
        return_exception_objects: bool = False,
        reserve_jobs: bool = False,
        order: str = "original",
        limit: int | None = None,
        max_calls: int | None = None,
        display_progress: bool = False,
        processes: int | None = 1,
        make_kwargs: dict | None = None,
    ) -> dict:
        """Call make() for every key of the key source not yet in the table.

        Returns DataJoint's {'success_count': int, 'error_list': [(key, error), ...]}.
        """
        if order not in ("original", "reverse", "random"):
            raise DataJointError(f"populate(order=...) must be 'original', 'reverse' or 'random', got {order!r}")
        if self.connection.in_transaction:
            raise DataJointError("populate() cannot run inside a transaction")
        processes = (os.cpu_count() or 1) if processes is None else int(processes)
        if processes < 1:
            raise DataJointError(f"populate(processes=...) must be at least 1, got {processes}")
        self._make_style()  # fail early when make() is missing
        run = PopulateRun(
            suppress_errors=suppress_errors, return_exception_objects=return_exception_objects,
            make_kwargs=make_kwargs, reserve_jobs=reserve_jobs,
            lease=max(int(config.get("jobs.lease_seconds") or 300), 1),
        )
        if keys is None:
            keys = (self._jobs_to_do(restrictions) - self.proj()).fetch("KEY", limit=limit)
        else:
            keys = [dict(k) for k in keys]
        if reserve_jobs:
            from .jobs import key_hash

            run.jobs = self._jobs_table()
            blocked, run.lapsed = run.jobs.blocking(self.table_name)
            if blocked:
                keys = [k for k in keys if key_hash(self._job_key(k)) not in blocked]
        if order == "reverse":
            keys.reverse()
        elif order == "random":
            random.shuffle(keys)
        if max_calls is not None:
            keys = keys[:max_calls]
        logger.debug("%s: %d keys to populate", self.table_name, len(keys))
        if processes > 1 and len(keys) > 1:
            from .parallel import populate_in_processes

            return populate_in_processes(self, keys, min(processes, len(keys)), run, display_progress)
        return self._populate_keys(keys, run, display_progress)

    def _populate_keys(self, keys: list[dict], run: PopulateRun, display_progress: bool) -> dict:
        success, errors = 0, []
        bar = ProgressBar(len(keys), type(self).__name__) if display_progress else None
        keeper = contextlib.nullcontext()
        if run.jobs is not None:
            from .jobs import LeaseKeeper

            keeper = run.keeper = LeaseKeeper(run.jobs, run.lease)
        try:
            with sigterm_as_exit(run.reserve_jobs), keeper:
                for key in keys:
                    check_termination()
                    outcome = self._populate1(key, run)
                    if outcome is True:
                        success += 1
                    elif isinstance(outcome, tuple):
                        errors.append(outcome)
                    if bar is not None:
                        bar.update()
        finally:
            run.keeper = None
            if bar is not None:
                bar.close()
        return {"success_count": success, "error_list": errors}

    def _populate1(self, key: dict, run: PopulateRun) -> bool | tuple:
        """Make one key: True if made, False if skipped (reserved elsewhere or already made),
        (key, error) if make() failed and errors are suppressed."""
        reservation = None
        with deferred():  # a SIGTERM takes effect inside make() or once the key is settled
            if run.jobs is not None:
                from .jobs import key_hash

                job_key = self._job_key(key)
                lapsed = run.lapsed.get(key_hash(job_key))
                reservation = self._reserve(run, job_key, lapsed)
                if reservation is None:
                    return False
                if run.keeper is not None:
                    run.keeper.hold(reservation)
            try:
                return self._make_key(key, reservation, run)
            finally:
                if reservation is not None and run.keeper is not None:
                    run.keeper.drop(reservation)

    def _reserve(self, run: PopulateRun, job_key: dict, lapsed: str | None, attempts: int = 3) -> Any:
        """Reserve a key; a deadlock or a busy database is retried, then the key is left for later."""
        for attempt in range(1, attempts + 1):
            try:
                return run.jobs.acquire(self.table_name, job_key, run.lease, expired=lapsed)
            except DataJointError as error:
                if not is_transient(error):
                    raise
                if attempt == attempts:
                    logger.warning("%s: could not reserve %s, left for later: %s", self.table_name, job_key, error)
                    return None
                time.sleep(0.05 * attempt * random.random())
        return None

    def _make_key(self, key: dict, reservation: Any, run: PopulateRun) -> bool | tuple:
        """Make one key; a deadlock (MySQL rolled the whole transaction back) is retried at once,
        still under the same reservation, before the key is given back to the queue."""
        for attempt in range(1, MAKE_ATTEMPTS + 1):
            try:
                return self._make_key_once(key, reservation, run)
            except BaseException as error:
                if attempt < MAKE_ATTEMPTS and is_deadlock(error):
                    if self.connection.in_transaction:
                        with contextlib.suppress(DataJointError):
                            self.connection.cancel_transaction()
                    logger.info("%s: make(%s) lost a deadlock, attempt %d of %d; running it again",
                                self.table_name, key, attempt, MAKE_ATTEMPTS)
                    time.sleep(0.02 * attempt * (1 + random.random()))
                    continue
                return self._failed(key, reservation, run, error)
        raise AssertionError("unreachable")  # pragma: no cover

    def _make_key_once(self, key: dict, reservation: Any, run: PopulateRun) -> bool:
        connection = self.connection
        jobs = run.jobs
        # SQLite: a transaction holds the only write lock from its start, so settle the
        # reservation first and a worker that lost its lease never calls make()
        settle_first = reservation is not None and "cross_process_row_locks" in connection.backend.lacks
        kwargs = run.make_kwargs or {}
        style = self._make_style()
        logger.debug("making %s -> %s", key, self.table_name)
        with interruptible(), allow_inserts(self.table_name):
            if style == "plain":
                self._begin()
                if not self._claim(key, reservation, settle_first, jobs):
                    return False
                make = getattr(self, "_make_tuples", None) or self.make
                make(dict(key), **kwargs)
            else:
                if self & key:  # made by someone else: no need to compute
                    if reservation is not None:
                        jobs.settle(reservation)
                    return False
                fetched, computed = self._fetch_and_compute(key, style, kwargs)
                self._begin()
                if not self._claim(key, reservation, settle_first, jobs):
                    return False
                self._insert_computed(key, style, fetched, computed, kwargs)
            if reservation is not None and not settle_first and not jobs.settle(reservation):
                logger.warning("%s: the lease on %s was taken over; rolling back", self.table_name, key)
                connection.cancel_transaction()
                return False
            connection.commit_transaction()
        logger.debug("made %s -> %s", key, self.table_name)
        return True

    def _begin(self) -> None:
        """Start the make transaction. SQLite's write lock is not fair (waiters poll it), so under
        contention a worker may wait past the busy timeout: it then simply waits again."""
        connection = self.connection
        single_writer = "cross_process_row_locks" in connection.backend.lacks
        for attempt in range(1, BEGIN_ATTEMPTS + 1):
            try:
                connection.start_transaction()
                return
            except LostConnectionError:
                if not single_writer or attempt == BEGIN_ATTEMPTS:
                    raise
                logger.info("%s: still waiting for the database's write lock", self.table_name)

    def _claim(self, key: dict, reservation: Any, settle_first: bool, jobs: Any) -> bool:
        """Inside the make transaction: whether this worker should make the key."""
        connection = self.connection
        if settle_first and not jobs.settle(reservation):
            connection.cancel_transaction()
            return False
        if self & key:  # made meanwhile by another worker
            if reservation is not None and not settle_first:
                jobs.settle(reservation)
            connection.commit_transaction()
            return False
        return True

    def _fetch_and_compute(self, key: dict, style: str, kwargs: dict) -> tuple[Any, Any]:
        if style == "parts":
            fetched = tuple(self.make_fetch(dict(key), **kwargs))
            return fetched, tuple(self.make_compute(dict(key), *fetched))
        generator = self.make(dict(key), **kwargs)
        fetched = next(generator)
        return fetched, next(generator)

    def _insert_computed(self, key: dict, style: str, fetched: Any, computed: Any, kwargs: dict) -> None:
        """Inside the transaction: re-fetch, check the inputs did not change, insert."""
        if style == "parts":
            again = tuple(self.make_fetch(dict(key), **kwargs))
            if not same_data(fetched, again):
                raise DataJointError(f"{self.table_name}: the make_fetch data of {key} changed during make_compute")
            self.make_insert(dict(key), *computed)
            return
        generator = self.make(dict(key), **kwargs)
        again = next(generator)
        if not same_data(fetched, again):
            raise DataJointError(f"{self.table_name}: the make_fetch data of {key} changed during make_compute")
        with contextlib.suppress(StopIteration):
            generator.send(computed)

    def _failed(self, key: dict, reservation: Any, run: PopulateRun, error: BaseException) -> tuple:
        """Roll back, give the key back (transient failure) or record the error, then report."""
        connection = self.connection
        if connection.in_transaction:
            with contextlib.suppress(DataJointError):
                connection.cancel_transaction()
        message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        transient = is_transient(error)
        if reservation is not None:
            try:
                if transient:
                    run.jobs.release(reservation)
                else:
                    run.jobs.fail(reservation, message, traceback.format_exc())
            except DataJointError as problem:  # the lease lapses by itself
                logger.warning("%s: could not update the job of %s: %s", self.table_name, key, problem)
        log = logger.warning if transient else logger.error
        log("%s: make(%s) failed: %s", self.table_name, key, message)
        if isinstance(error, KeyboardInterrupt | SystemExit) or not run.suppress_errors:
            raise error
        return key, error if run.return_exception_objects else message


def is_transient(error: BaseException) -> bool:
    """A lost connection, a busy database or a deadlock: the key can simply be tried again."""
    return isinstance(error, LostConnectionError) or is_deadlock(error)


def is_deadlock(error: BaseException) -> bool:
    """MySQL's deadlock or lock wait timeout, raised as a DataJointError from pymysql's error."""
    cause = error.__cause__
    code = getattr(cause, "args", (None,))[0] if cause is not None and getattr(cause, "args", None) else None
    return isinstance(error, DataJointError) and code in DEADLOCK_CODES


def same_data(a: Any, b: Any) -> bool:
    """Deep equality of fetched data (numpy arrays, records, frames, dicts, sequences)."""
    import numpy as np

    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.dtype.names:
            return all(same_data(a[name], b[name]) for name in a.dtype.names)
        if a.dtype.kind == "O":
            return all(same_data(x, y) for x, y in zip(a.ravel(), b.ravel()))
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_data(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same_data(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    if hasattr(a, "equals") and callable(a.equals):  # pandas
        return bool(a.equals(b))
    try:
        return bool(a == b)
    except (ValueError, TypeError, QueryError):
        import pickle

        return pickle.dumps(a) == pickle.dumps(b)
