"""Populate worker processes for the fault scenarios (tests.populate.worker in a subprocess)."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

import dj_flows as dj
from dj_flows.connection import CONNECTION_KEYS
from tests.populate.pipeline import read_calls

ROOT = Path(__file__).resolve().parents[2]


def connection_settings() -> dict:
    return {key: dj.config[key] for key in CONNECTION_KEYS if dj.config.get(key) is not None}


def start_worker(schema: dj.Schema, populate: dict) -> subprocess.Popen:
    settings = {
        "config": {**connection_settings(), "jobs.lease_seconds": dj.config["jobs.lease_seconds"]},
        "schema": schema.database,
        "populate": populate,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.populate.worker", json.dumps(settings)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(worker: subprocess.Popen, timeout: float = 180) -> dict:
    out, err = worker.communicate(timeout=timeout)
    assert worker.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def call_counts(calls_file: Path) -> collections.Counter:
    return collections.Counter(key_id for key_id, _, _ in read_calls(calls_file))
