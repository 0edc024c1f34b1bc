"""Fixtures that run engine tests on every backend: SQLite (a temp file) and MariaDB/MySQL.

`backend` is parametrized over both; `make_schema(suffix)` creates a uniquely named schema on the
current backend and drops it when the test module ends. MySQL comes from DJ_HOST / DJ_USER / DJ_PASS
(default 127.0.0.1, root, empty password). With CI=true an unreachable MySQL fails the run; elsewhere
those tests are skipped with a message saying how to start one.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Iterator

import pymysql
import pytest

import dj_flows as dj
from dj_flows.connection import CONNECTION_KEYS

MYSQL_HINT = (
    "MySQL/MariaDB is not reachable at {host}:{port} as {user}; start one, e.g. "
    "`start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd`, "
    "or set DJ_HOST/DJ_USER/DJ_PASS"
)


def mysql_settings() -> dict:
    return {
        "database.backend": "mysql",
        "database.host": os.environ.get("DJ_HOST", "127.0.0.1"),
        "database.port": int(os.environ.get("DJ_PORT", "3306")),
        "database.user": os.environ.get("DJ_USER", "root"),
        "database.password": os.environ.get("DJ_PASS", ""),
        "database.use_tls": False,
    }


@functools.lru_cache(maxsize=1)
def mysql_available() -> str | None:
    """None when MySQL answers, else the reason (asked once per session: a dead host costs the
    connect timeout)."""
    settings = mysql_settings()
    try:
        pymysql.connect(
            host=settings["database.host"], port=settings["database.port"],
            user=settings["database.user"], password=settings["database.password"], connect_timeout=5,
        ).close()
        return None
    except pymysql.err.Error:
        return MYSQL_HINT.format(host=settings["database.host"], port=settings["database.port"], user=settings["database.user"])


def require_mysql() -> None:
    reason = mysql_available()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Configure dj.config for one backend for the whole test module."""
    saved = {key: dj.config[key] for key in (*CONNECTION_KEYS, "safemode", "stores", "cache")}
    if request.param == "mysql":
        require_mysql()
        settings = mysql_settings()
    else:
        folder = tmp_path_factory.mktemp("sqlite")
        settings = {"database.backend": "sqlite", "database.sqlite_path": str(folder / "pipeline.sqlite")}
    for key, value in settings.items():
        dj.config[key] = value
    dj.config["safemode"] = False
    yield request.param
    for key, value in saved.items():
        dj.config[key] = value


@pytest.fixture(scope="module")
def make_schema(backend: str, request: pytest.FixtureRequest) -> Iterator[Callable[..., dj.Schema]]:
    """make_schema('name') -> a new, uniquely named schema; every one is dropped at module end."""
    created: list[dj.Schema] = []
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:20]

    def make(suffix: str = "s", **kwargs) -> dj.Schema:
        schema = dj.Schema(unique_name(f"djt_{module}_{suffix}"), **kwargs)
        created.append(schema)
        return schema

    yield make
    with dj.config(safemode=False):
        # a schema that others depend on fails to drop until they are gone: retry in passes
        remaining = list(reversed(created))
        for _ in range(len(remaining) + 1):
            failed = []
            for schema in remaining:
                try:
                    schema.drop(force=True)
                except dj.DataJointError:
                    failed.append(schema)
            if not failed or len(failed) == len(remaining):
                remaining = failed
                break
            remaining = failed
        if remaining:
            names = ", ".join(s.database for s in remaining)
            raise RuntimeError(f"test schemas could not be dropped: {names}")
        dj.conn().close()
