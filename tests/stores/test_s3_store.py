"""What only the S3 store promises, against the real SeaweedFS server: first-use checks, error
classes that retry policies can rely on, bounded concurrency, DeleteObjects batches, the
DataJoint key layout inside the bucket, fork safety."""

from __future__ import annotations

import contextlib
import http.server
import multiprocessing
import socket
import struct
import threading
import traceback
import uuid
from collections.abc import Iterator

import pytest

from dj_flows.errors import StoreError, TransientStoreError
from dj_flows.settings import config
from dj_flows.stores import Store

from ..support.delay_proxy import DelayProxy

pytestmark = pytest.mark.s3


def full_text(exc: BaseException) -> str:
    """Everything a traceback would show, causes included."""
    return "".join(traceback.format_exception(exc))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def resetting_server() -> Iterator[int]:
    """A TCP server that accepts and immediately resets every connection."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # linger 0: RST instead of FIN

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


class Unavailable(http.server.BaseHTTPRequestHandler):
    """Answers every request like an overloaded S3: 503 ServiceUnavailable."""

    body = (
        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code>'
        b"<Message>Please reduce your request rate.</Message></Error>"
    )

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(self.body)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _reply

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def unavailable_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


ONE_TRY = {"config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 3}}


# -- reaching the store ----------------------------------------------------------------------------
def test_unreachable_endpoint_is_transient_and_named(s3_server) -> None:
    port = free_port()
    spec = {**s3_server.store_spec("some-bucket"), "endpoint": f"127.0.0.1:{port}"}
    store = Store.from_spec("shared", {**spec, "storage_options": ONE_TRY})
    with pytest.raises(TransientStoreError) as info:
        store.put("db/obj", b"x")
    message = str(info.value)
    assert "'shared'" in message and f"127.0.0.1:{port}" in message
    assert s3_server.secret_key not in full_text(info.value)
    assert isinstance(info.value, StoreError)


def test_connection_reset_is_transient(s3_server) -> None:
    with resetting_server() as port:
        spec = {**s3_server.store_spec("b"), "endpoint": f"127.0.0.1:{port}"}
        store = Store.from_spec("shared", {**spec, "storage_options": ONE_TRY})
        with pytest.raises(TransientStoreError, match="'shared'"):
            store.get("db/obj")


def test_server_errors_are_transient(s3_server) -> None:
    with unavailable_server() as port:
        spec = {**s3_server.store_spec("b"), "endpoint": f"127.0.0.1:{port}"}
        store = Store.from_spec("shared", {**spec, "storage_options": ONE_TRY})
        with pytest.raises(TransientStoreError, match="'shared'") as info:
            store.exists("db/obj")
        assert f"127.0.0.1:{port}" in str(info.value)


def test_missing_bucket_fails_at_first_use(s3_server) -> None:
    bucket = f"never-made-{uuid.uuid4().hex[:8]}"
    store = Store.from_spec("shared", s3_server.store_spec(bucket))
    with pytest.raises(StoreError) as info:
        store.put("db/obj", b"x")
    assert not isinstance(info.value, TransientStoreError)
    assert bucket in str(info.value) and "does not exist" in str(info.value)
    assert s3_server.endpoint in str(info.value)


def test_rejected_credentials_never_show_the_secret(s3_server, s3_module_bucket) -> None:
    wrong = "wrong-secret-" + uuid.uuid4().hex
    spec = {**s3_server.store_spec(s3_module_bucket), "secret_key": wrong}
    store = Store.from_spec("shared", spec)
    with pytest.raises(StoreError, match="access denied") as info:
        store.get("db/obj")
    assert not isinstance(info.value, TransientStoreError)
    assert wrong not in full_text(info.value) and wrong not in repr(store)


# -- layout in the bucket --------------------------------------------------------------------------
def test_objects_land_under_bucket_and_location(s3_server, s3_module_bucket) -> None:
    location = f"/lab-{uuid.uuid4().hex[:6]}/store"  # DataJoint drops the leading '/'
    store = Store.from_spec("shared", s3_server.store_spec(s3_module_bucket, location))
    store.put("db/ab/cd/abcd1234", b"payload")
    raw = s3_server.filesystem()
    assert raw.cat_file(f"{s3_module_bucket}{location}/db/ab/cd/abcd1234") == b"payload"
    assert [o.key for o in store.list()] == ["db/ab/cd/abcd1234"]


@pytest.mark.slow
def test_remove_many_beyond_one_delete_batch(s3_store) -> None:
    items = {f"many/{i:05d}": b"" for i in range(1001)}  # DeleteObjects takes 1000 keys at most
    s3_store.put_many(items)
    assert sum(1 for _ in s3_store.list("many")) == 1001
    s3_store.remove_many(list(items))
    assert s3_store.get_many(list(items), missing="omit") == {}


def test_remove_many_split_into_concurrent_requests(s3_store) -> None:
    from dj_flows.stores import s3

    count = s3.DELETE_SPLIT + 51  # more than DELETE_SPLIT keys: two DeleteObjects requests at once
    items = {f"split/{i:04d}": b"x" for i in range(count)}
    s3_store.put_many(items)
    s3_store.remove_many([*items, "split/never-existed"])
    assert s3_store.get_many(list(items), missing="omit") == {}
    assert list(s3_store.list("split")) == []


# -- concurrency -----------------------------------------------------------------------------------
@pytest.mark.parametrize("limit", [1, 4])
def test_bulk_transfers_run_concurrently_up_to_the_limit(
    s3_server, s3_module_bucket, limit: int
) -> None:
    location = f"conc-{uuid.uuid4().hex[:8]}"
    direct = Store.from_spec("shared", s3_server.store_spec(s3_module_bucket, location))
    items = {f"db/{i:03d}": bytes([i]) * 2000 for i in range(12)}
    direct.put_many(items)
    proxy = DelayProxy(s3_server.port, delay_ms=20)
    with proxy as port, config.override(external__transfer_concurrency=limit):
        spec = {**s3_server.store_spec(s3_module_bucket, location), "endpoint": f"127.0.0.1:{port}"}
        proxied = Store.from_spec("shared", spec)
        assert proxied.get_many(list(items)) == items
        proxied.put_many({f"db/new{i:03d}": b"n" for i in range(12)})
    if limit == 1:
        assert proxy.max_active == 1
    else:
        assert 2 <= proxy.max_active <= limit


# -- processes -------------------------------------------------------------------------------------
def _child_get(store: Store, key: str, queue) -> None:
    try:
        queue.put(store.get(key))
    except BaseException as exc:  # report, do not hang the parent
        queue.put(repr(exc))


def test_store_works_in_a_forked_child(s3_store) -> None:
    s3_store.put("db/forked", b"from parent")  # the parent's client and event loop now exist
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_get, args=(s3_store, "db/forked", queue))
    child.start()
    try:
        assert queue.get(timeout=60) == b"from parent"
    finally:
        child.join(30)
    assert child.exitcode == 0
