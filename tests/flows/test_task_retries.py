"""Task-level retries: only transient failures, each after the connection was closed for a
reconnect; everything else fails at once. Real Prefect task runs under the test harness."""

from __future__ import annotations

from collections import Counter

import pytest
from prefect import flow, task

from dj_flows.connection import conn
from dj_flows.errors import (
    DatabaseConnectionError,
    DataJointError,
    LostConnectionError,
    TransientStoreError,
)
from dj_flows.prefect.download import DownloadError, TransientDownloadError
from dj_flows.prefect.runtime import engine, is_transient, jsonable
from dj_flows.prefect.tasks import task_options

pytestmark = pytest.mark.usefixtures("prefect_harness")
ATTEMPTS: Counter = Counter()
SEEN_CLOSED: list[bool] = []


def _probe(kind: str) -> int:
    with engine() as connection:
        SEEN_CLOSED.append(connection._raw is None)
        connection.query("SELECT 1")
        ATTEMPTS[kind] += 1
        if ATTEMPTS[kind] == 1:
            raise {"lost": LostConnectionError, "store": TransientStoreError,
                   "data": DataJointError, "value": ValueError}[kind](f"first attempt: {kind}")
        return ATTEMPTS[kind]


probe = task(_probe, **task_options("probe")).with_options(retry_delay_seconds=0)


@flow
def run_probe(kind: str) -> int:
    return probe(kind)


@pytest.fixture(autouse=True)
def fresh():
    ATTEMPTS.clear()
    SEEN_CLOSED.clear()


@pytest.mark.parametrize("kind", ["lost", "store"])
def test_transient_failures_retry_on_a_fresh_connection(backend, kind):
    assert run_probe(kind) == 2
    # whatever state the link was in before (earlier modules may close it), the failure closed it
    # and the retry reconnected
    assert len(SEEN_CLOSED) == 2 and SEEN_CLOSED[1] is True
    assert conn().is_connected


@pytest.mark.parametrize("kind", ["data", "value"])
def test_other_failures_are_not_retried(backend, kind):
    with pytest.raises(ValueError if kind == "value" else DataJointError, match="first attempt"):
        run_probe(kind)
    assert ATTEMPTS[kind] == 1 and len(SEEN_CLOSED) == 1


def test_classification():
    assert is_transient(TransientDownloadError("HTTP 503")) and not is_transient(DownloadError("404"))
    assert is_transient(TimeoutError()) and is_transient(ConnectionResetError())
    assert is_transient(DatabaseConnectionError("cannot connect to 127.0.0.1:3306: refused"))
    assert not is_transient(DatabaseConnectionError("Access denied for user 'x'@'localhost'"))
    assert not is_transient(KeyError("x"))


def test_jsonable_makes_keys_plain():
    import datetime
    import decimal
    import json
    import uuid

    import numpy as np

    value = {"a": np.int64(3), "b": datetime.date(2024, 1, 2), "c": uuid.UUID(int=1),
             "d": decimal.Decimal("1.50"), "e": (np.float32(0.5), b"\x01"), "f": np.arange(3)}
    plain = jsonable(value)
    assert json.loads(json.dumps(plain)) == {
        "a": 3, "b": "2024-01-02", "c": str(uuid.UUID(int=1)), "d": "1.50", "e": [0.5, "01"],
        "f": [0, 1, 2],
    }
