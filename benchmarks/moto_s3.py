"""A second real S3 server for benchmarks: moto's standalone server (`moto_server`, an in-memory
HTTP S3 from the PyPI package `moto` with flask and flask-cors) on a free loopback port.

Why: SeaweedFS serves DeleteObjects one key after another (~0.5 ms of server time per key), which
caps what any bulk delete can gain there; moto answers a DeleteObjects of 1000 keys in ~0.1 ms a
key, so the client's own approach shows. Same interface as tests/support/s3server.S3Server
(endpoint, url, filesystem(), new_bucket(), store_spec(), stop()); moto accepts any credentials.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.s3server import S3Server, S3ServerError, _free_ports


class MotoServer(S3Server):
    """A running `python -m moto.server` process; stop() ends it by its PID."""

    @classmethod
    def start(cls, folder: str | Path | None = None, timeout: float = 60.0) -> MotoServer:
        """Start moto's server (log in `folder`) and wait until S3 answers."""
        try:
            import flask  # noqa: F401
            import flask_cors  # noqa: F401
            import moto  # noqa: F401
        except ImportError as exc:
            raise S3ServerError(
                f"moto's server is missing ({exc}): pip install 'moto[s3]' flask flask-cors"
            ) from exc
        folder = Path(folder or tempfile.mkdtemp(prefix="djflows-moto-"))
        folder.mkdir(parents=True, exist_ok=True)
        port = _free_ports(1)[0]
        log_path = folder / "moto.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                cwd=folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        server = cls(process, port, folder, log_path)
        with contextlib.ExitStack() as on_failure:
            on_failure.callback(server.stop)
            server._wait_moto(timeout)
            on_failure.pop_all()  # up: keep it running
        return server

    def _wait_moto(self, timeout: float) -> None:
        for _ in range(int(timeout / 0.2)):
            if self.process.poll() is not None:
                raise S3ServerError(f"moto.server exited:\n{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                self.filesystem().ls("")
                return
            except Exception:  # not up yet
                time.sleep(0.2)
        raise S3ServerError(f"moto.server did not answer on {self.endpoint}:\n{self.log_tail()}")

    def __repr__(self) -> str:
        return f"MotoServer(endpoint={self.endpoint!r}, pid={self.pid})"
