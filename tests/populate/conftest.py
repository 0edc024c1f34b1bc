"""Fixtures for the populate tests: a fresh pipeline per test, a calls file, short leases."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import dj_flows as dj
from tests.populate.pipeline import CALLS, declare

LEASE = 2  # seconds: short, so lease expiry is observable within a test


@pytest.fixture
def calls_file(tmp_path: Path) -> Iterator[Path]:
    """The file make() appends one line per call to (DJF_CALLS, inherited by child processes)."""
    path = tmp_path / "calls.log"
    saved = os.environ.get(CALLS)
    os.environ[CALLS] = str(path)
    yield path
    if saved is None:
        os.environ.pop(CALLS, None)
    else:
        os.environ[CALLS] = saved


@pytest.fixture
def short_lease() -> Iterator[int]:
    saved = dj.config["jobs.lease_seconds"]
    dj.config["jobs.lease_seconds"] = LEASE
    yield LEASE
    dj.config["jobs.lease_seconds"] = saved


@pytest.fixture
def pipeline(make_schema, calls_file, short_lease):
    """A new schema with Source and Square (+ Square.Note), Source empty."""
    return declare(make_schema("p"))


def connection_settings() -> dict:
    """The current dj.config connection entries, for a worker subprocess."""
    from dj_flows.connection import CONNECTION_KEYS

    return {key: dj.config[key] for key in CONNECTION_KEYS if dj.config.get(key) is not None}
