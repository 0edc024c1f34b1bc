"""What every dj-flows task does around its engine call: configure, connect, classify failures.

A task receives blocks (configuration, no live connection) or nothing (the worker's own
`dj_flows.config`), applies them, and uses its own thread's connection (`dj.conn()` keeps one per
thread and process). Values it returns go through `jsonable()` so that results, artifacts and logs
only ever hold plain JSON.

Retries: only transient failures are retried (`is_transient`): a lost database connection, a
store's timeout or 5xx (TransientStoreError, which the download errors extend), socket timeouts
and resets. Before the next attempt the thread's connection is closed, so the attempt reconnects.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from ..connection import Connection, conn
from ..errors import DatabaseConnectionError, LostConnectionError, TransientStoreError
from .blocks import DataJointDatabase, DataJointStore

logger = logging.getLogger("dj_flows.prefect")

TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    LostConnectionError,
    TransientStoreError,
    TimeoutError,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
)


def is_transient(error: BaseException) -> bool:
    """True for failures a retry may cure; never for a make() that failed on its data."""
    if isinstance(error, TRANSIENT_TYPES):
        return True
    # a server that is down at connect time may be back in a moment; a wrong password is not
    return isinstance(error, DatabaseConnectionError) and "access denied" not in str(error).lower()


def retry_on_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry the task only when it failed transiently."""
    try:
        state.result()
    except Exception as error:  # noqa: BLE001 - classified, not swallowed
        return is_transient(error)
    return False


def configure(
    database: DataJointDatabase | None = None, stores: Iterable[DataJointStore] | None = None
) -> None:
    """Write the blocks into dj_flows.config (for good: concurrent tasks apply the same values,
    so unlike `applied()` this never undoes another task's settings mid-run)."""
    if database is not None:
        database.apply()
    for store in stores or ():
        store.apply()


@contextlib.contextmanager
def configured(
    database: DataJointDatabase | None = None, stores: Iterable[DataJointStore] | None = None
) -> Iterator[None]:
    """Apply the blocks for the length of a flow and restore the previous settings after it."""
    with contextlib.ExitStack() as stack:
        if database is not None:
            stack.enter_context(database.applied())
        for store in stores or ():
            stack.enter_context(store.applied())
        yield


@contextlib.contextmanager
def engine(
    database: DataJointDatabase | None = None, stores: Iterable[DataJointStore] | None = None
) -> Iterator[Connection]:
    """Configure, then yield this thread's connection; after a transient failure close it, so
    that the retry reconnects."""
    configure(database, stores)
    connection = conn()
    try:
        yield connection
    except BaseException as error:
        if is_transient(error):
            logger.warning("transient failure (%s); closing the connection for the retry", error)
            connection.close()
        raise


def jsonable(value: Any) -> Any:
    """A plain-JSON copy of keys and small results (numpy scalars, dates, UUIDs, decimals)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else f"<array {value.shape} {value.dtype}>"
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value


def in_prefect_run() -> bool:
    """Whether we run inside a Prefect task or flow run (artifacts need one)."""
    from prefect.context import FlowRunContext, TaskRunContext

    return TaskRunContext.get() is not None or FlowRunContext.get() is not None


def artifact_key(*parts: str) -> str:
    """A valid artifact key (lowercase letters, digits, dashes) made of `parts`."""
    text = "-".join(parts).lower()
    cleaned = "".join(c if c.isalnum() and c.isascii() else "-" for c in text)
    return "-".join(p for p in cleaned.split("-") if p)[:120] or "dj-flows"
