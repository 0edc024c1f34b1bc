"""Fixture `prefect_harness`: one temporary Prefect API for the whole test session.

Not autouse: engine tests never touch Prefect, and the ephemeral API takes 10-20 s to start, so only
tests that request the fixture pay for it, once per session. Prefect is imported lazily so engine-only
sessions do not import it at all.

Settings, all confined to the session:
- PREFECT_HOME, result storage and the memo store live in a temporary folder (nothing under ~/.prefect);
- server analytics off (the machine is offline);
- a generous ephemeral-server startup timeout (the default 20 s can fail on a loaded 2-core machine);
- flow-run heartbeats off: the heartbeat thread is joined at the end of every flow run, costing ~1 s.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

# Set before anything imports prefect: the server subprocess inherits os.environ, and prefect reads
# the environment once at import time.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

STARTUP_TIMEOUT_SECONDS = 120


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Run the session's flows against a temporary Prefect API; yields timing and folder info."""
    home = tmp_path_factory.mktemp("prefect-home")
    storage = home / "storage"
    storage.mkdir()
    environment = {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": str(STARTUP_TIMEOUT_SECONDS),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(storage),
        "PREFECT_MEMO_STORE_PATH": str(home / "memo_store.toml"),
    }
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    try:
        import prefect.settings as ps
        from prefect.testing.utilities import prefect_test_harness

        updates = {
            ps.PREFECT_HOME: home,
            ps.PREFECT_SERVER_ANALYTICS_ENABLED: False,
            ps.PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: STARTUP_TIMEOUT_SECONDS,
            ps.PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
            ps.PREFECT_RESULTS_LOCAL_STORAGE_PATH: storage,
            ps.PREFECT_MEMO_STORE_PATH: home / "memo_store.toml",
        }
        with ps.temporary_settings(updates=updates):
            started = time.perf_counter()
            with prefect_test_harness(server_startup_timeout=None):
                info = {
                    "home": home,
                    "storage": storage,
                    "startup_seconds": time.perf_counter() - started,
                }
                yield info
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
