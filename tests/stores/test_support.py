"""The test support this package owns: the SeaweedFS fixture and the delay proxy."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from ..support.delay_proxy import DelayProxy


@pytest.fixture
def echo_port():
    """A loopback server echoing what it receives, upper-cased (so forwarding is visible)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data.upper())

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def roundtrip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_delay_proxy_forwards_everything(echo_port: int) -> None:
    payload = os.urandom(300_000).hex().encode()[:500_000]
    with DelayProxy(echo_port, delay_ms=1) as port:
        assert roundtrip(port, payload) == payload.upper()


def test_delay_proxy_adds_at_least_its_delay(echo_port: int) -> None:
    with DelayProxy(echo_port, delay_ms=50) as port:
        start = time.perf_counter()
        assert roundtrip(port, b"ping") == b"PING"
        assert time.perf_counter() - start >= 0.05


def test_delay_proxy_counts_concurrent_connections(echo_port: int) -> None:
    proxy = DelayProxy(echo_port, delay_ms=100)
    with proxy as port:
        threads = [threading.Thread(target=roundtrip, args=(port, b"x")) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert proxy.accepted == 3 and proxy.max_active == 3 and proxy.active == 0


def test_delay_proxy_stops_cleanly(echo_port: int) -> None:
    proxy = DelayProxy(echo_port)
    port = proxy.start()
    held = socket.create_connection(("127.0.0.1", port))  # a connection still open at stop
    before = threading.active_count()
    proxy.stop()
    assert threading.active_count() == before - 1
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    held.close()


@pytest.mark.s3
def test_s3_server_fixture(s3_server, s3_bucket: str) -> None:
    assert s3_server.endpoint.startswith("127.0.0.1:")
    assert s3_server.process.poll() is None
    other = s3_server.new_bucket()
    assert other != s3_bucket
    fs = s3_server.filesystem()
    assert {s3_bucket, other} <= set(fs.ls(""))
    assert fs.ls(s3_bucket) == []
    spec = s3_server.store_spec(s3_bucket, "loc")
    assert spec["endpoint"] == s3_server.endpoint and spec["bucket"] == s3_bucket
