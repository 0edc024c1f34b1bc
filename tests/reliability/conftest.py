"""Fixtures for the reliability suite: a private S3 server the tests may stop and start, reached
through a loopback proxy whose port stays the same across restarts (so the store spec does not
change), and helpers shared by the fault scenarios."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.delay_proxy import DelayProxy
from tests.support.s3server import S3Server


class RestartableS3:
    """A SeaweedFS server in a fixed folder; `stop()` ends the process, `start()` runs a new one on
    the same data, and the proxy port (`endpoint`) stays put."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.server = S3Server.start(folder)
        self.proxy = DelayProxy(target_port=self.server.port, delay_ms=0)
        self.proxy.start()
        self.stops = 0

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.proxy.port}"

    @property
    def secret_key(self) -> str:
        return self.server.secret_key

    def stop(self) -> None:
        self.server.stop()
        self.stops += 1

    def start(self) -> None:
        self.server = S3Server.start(self.folder)
        self.proxy.target = ("127.0.0.1", self.server.port)

    def new_bucket(self, prefix: str = "rel") -> str:
        return self.server.new_bucket(prefix)

    def store_spec(self, bucket: str, location: str = "") -> dict:
        return dict(self.server.store_spec(bucket, location), endpoint=self.endpoint)

    def objects(self, bucket: str) -> set[str]:
        """Every object key in the bucket (waits out SeaweedFS's listing lag for nothing)."""
        fs = self.server.filesystem()
        return {path.split("/", 1)[1] for path in fs.find(bucket)}

    def close(self) -> None:
        self.proxy.stop()
        self.server.stop()


@pytest.fixture(scope="module")
def restartable_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestartableS3]:
    server = RestartableS3(tmp_path_factory.mktemp("s3-restartable"))
    yield server
    server.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def lease_seconds() -> int:
    """Leases of 3 s here (short_lease, from tests/support/populate_env.py)."""
    return 3
