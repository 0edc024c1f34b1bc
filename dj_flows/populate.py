"""populate(): fill Imported and Computed tables by calling make() for each missing key.

Each make() runs in its own transaction, so a failure rolls back every row it inserted (part tables
included). The three-part make (`make_fetch` -> `make_compute` -> `make_insert`) fetches outside
the transaction, computes outside it, then re-fetches inside it and refuses to insert if the inputs
changed meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import traceback
from collections.abc import Iterator
from typing import Any

from .errors import DataJointError, LostConnectionError, PopulateError

logger = logging.getLogger("dj_flows.populate")
_populating = threading.local()


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


class AutoPopulate:
    """Mixin for Imported and Computed tables."""

    _key_source: Any = None

    @property
    def _allow_insert(self) -> bool:  # type: ignore[override]
        return inserts_allowed(self.table_name)

    @property
    def key_source(self) -> Any:
        """The keys make() is called with: the join of the primary-key parents, projected."""
        if self._key_source is not None:
            source = self._key_source
            return source() if isinstance(source, type) else source
        from .table import FreeTable

        key = set(self.heading.primary_key)
        edges = [e for e in self.connection.dependencies.parents(self.node) if set(e.attr_map) <= key and not e.parent[1].startswith("~")]
        if not edges:
            raise DataJointError(f"{self.table_name!r} has no primary-key parents: define key_source")
        source = None
        for edge in edges:
            renames = {c: p for c, p in edge.attr_map.items() if c != p}
            parent = FreeTable(self.connection, *edge.parent)
            parent = parent.proj(**renames) if renames else parent.proj()
            source = parent if source is None else source * parent
        return source.proj()

    def make(self, key: dict) -> None:
        if all(hasattr(self, name) for name in ("make_fetch", "make_compute", "make_insert")):
            self._three_part_make(key)
            return
        raise NotImplementedError(f"{type(self).__name__} must define make(self, key)")

    def _three_part_make(self, key: dict) -> None:
        raise DataJointError("three-part make runs inside populate()")

    def _jobs_to_do(self, restrictions: tuple) -> Any:
        todo = self.key_source
        for restriction in restrictions:
            todo = todo & restriction
        return todo - self.proj()

    def progress(self, *restrictions: Any, display: bool = False) -> tuple[int, int]:
        """(remaining, total) keys of the key source."""
        source = self.key_source
        for restriction in restrictions:
            source = source & restriction
        total = len(source)
        remaining = len(source - self.proj())
        if display:
            done = total - remaining
            print(f"{type(self).__name__:<20} Completed {done} of {total} ({done / total if total else 1:.1%})")
        return remaining, total

    def populate(
        self,
        *restrictions: Any,
        suppress_errors: bool = False,
        return_exception_objects: bool = False,
        reserve_jobs: bool = False,
        order: str = "original",
        limit: int | None = None,
        max_calls: int | None = None,
        display_progress: bool = False,
        processes: int = 1,
        make_kwargs: dict | None = None,
    ) -> dict:
        """Call make() for every key of the key source not yet in the table."""
        if order not in ("original", "reverse", "random"):
            raise DataJointError(f"populate(order=...) must be 'original', 'reverse' or 'random', got {order!r}")
        if self.connection.in_transaction:
            raise DataJointError("populate() cannot run inside a transaction")
        if reserve_jobs or processes != 1:
            from .jobs import populate_with_jobs

            return populate_with_jobs(
                self, restrictions, suppress_errors=suppress_errors,
                return_exception_objects=return_exception_objects, order=order, limit=limit,
                max_calls=max_calls, display_progress=display_progress, processes=processes,
                make_kwargs=make_kwargs, reserve_jobs=reserve_jobs,
            )
        keys = self._jobs_to_do(restrictions).fetch("KEY", limit=limit)
        if order == "reverse":
            keys.reverse()
        elif order == "random":
            random.shuffle(keys)
        if max_calls is not None:
            keys = keys[:max_calls]
        success, errors = 0, []
        progress = _progress(keys, display_progress, type(self).__name__)
        for key in progress:
            error = self._populate1(key, make_kwargs)
            if error is None:
                success += 1
                continue
            if not suppress_errors:
                raise error
            errors.append((key, error if return_exception_objects else f"{type(error).__name__}: {error}"))
        return {"success_count": success, "error_list": errors}

    def _populate1(self, key: dict, make_kwargs: dict | None) -> BaseException | None:
        """Make one key in a transaction; return the exception if make() failed."""
        connection = self.connection
        with allow_inserts(self.table_name):
            try:
                if hasattr(self, "make_fetch") and hasattr(self, "make_compute") and hasattr(self, "make_insert") and type(self).make is AutoPopulate.make:
                    fetched = self.make_fetch(key)
                    computed = self.make_compute(key, *fetched)
                    with connection.transaction():
                        if self & key:
                            return None
                        if self.make_fetch(key) != fetched:
                            raise DataJointError(f"{self.table_name}: the inputs of key {key} changed during make_compute")
                        self.make_insert(key, *computed)
                    return None
                with connection.transaction():
                    if self & key:  # made meanwhile by another worker
                        return None
                    self.make(dict(key), **(make_kwargs or {}))
                return None
            except (KeyboardInterrupt, SystemExit):
                raise
            except LostConnectionError as error:
                logger.warning("lost connection while making %s of %s: %s", key, self.table_name, error)
                return error
            except Exception as error:  # noqa: BLE001 - reported to the caller per key
                logger.debug("make failed for %s: %s", key, traceback.format_exc())
                return error if isinstance(error, Exception) else PopulateError(str(error))


def _progress(keys: list, display: bool, name: str) -> Any:
    if not display:
        return keys
    try:
        from tqdm import tqdm

        return tqdm(keys, desc=name)
    except ImportError:
        return keys
