"""Driving populate worker processes (`python -m tests.populate.worker`) from a test: start one
with this process's connection settings, wait for what it does, collect its JSON result."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dj_flows as dj
from dj_flows.connection import CONNECTION_KEYS

ROOT = Path(__file__).resolve().parents[2]


def connection_settings() -> dict:
    """The current dj.config connection entries, for a worker subprocess."""
    return {key: dj.config[key] for key in CONNECTION_KEYS if dj.config.get(key) is not None}


def start_worker(schema: dj.Schema, populate: dict, barrier: Path | None = None) -> subprocess.Popen:
    """A worker process that populates `schema`'s test pipeline with `populate`'s arguments
    (after the barrier folder's `go`, when given), under this process's lease length."""
    settings = {
        "config": {**connection_settings(), "jobs.lease_seconds": dj.config["jobs.lease_seconds"]},
        "schema": schema.database,
        "populate": populate,
        "barrier": str(barrier) if barrier else None,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.populate.worker", json.dumps(settings)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(worker: subprocess.Popen, timeout: float = 120) -> dict:
    """Wait for a worker to exit successfully; its last output line, parsed."""
    out, err = worker.communicate(timeout=timeout)
    assert worker.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
