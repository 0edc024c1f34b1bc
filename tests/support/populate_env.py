"""Fixtures for tests that run the populate test pipeline (tests/populate/pipeline.py), also in
worker processes: the calls file its make() logs to, and a short job lease."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import dj_flows as dj
from tests.populate.pipeline import CALLS  # the variable make() reads (workers inherit it)


@pytest.fixture
def calls_file(tmp_path: Path) -> Iterator[Path]:
    """The file make() appends one line per call to."""
    path = tmp_path / "calls.log"
    saved = os.environ.get(CALLS)
    os.environ[CALLS] = str(path)
    yield path
    if saved is None:
        os.environ.pop(CALLS, None)
    else:
        os.environ[CALLS] = saved


@pytest.fixture
def lease_seconds() -> int:
    """How short `short_lease` is; a conftest overrides this fixture to choose."""
    return 2


@pytest.fixture
def short_lease(lease_seconds: int) -> Iterator[int]:
    """Job leases of a few seconds, so expiry is observable within a test."""
    seconds = lease_seconds
    saved = dj.config["jobs.lease_seconds"]
    dj.config["jobs.lease_seconds"] = seconds
    yield seconds
    dj.config["jobs.lease_seconds"] = saved
