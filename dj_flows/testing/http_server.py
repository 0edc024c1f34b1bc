"""A small threaded HTTP server on 127.0.0.1 that serves a folder (and in-memory files).

The demo uses it to hand the bundled sample images to the download task over real HTTP on an
offline machine; tests use its fault switches to make a path misbehave in the ways a web server
does: fail N times with 503 (or any status) and then succeed, send fewer bytes than its
Content-Length promises, stall before the body, or stream without a Content-Length.

    with LoopbackHTTPServer(folder) as server:
        server.fail("a.png", times=2)          # two 503s, then the file
        url = server.url_for("a.png")
"""

from __future__ import annotations

import mimetypes
import posixpath
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

CHUNK = 64 * 1024


@dataclass
class Behaviour:
    """How one path misbehaves; the default serves it normally."""

    fail_times: int = 0
    fail_status: int = 503
    truncate_to: int | None = None
    omit_length: bool = False
    delay_seconds: float = 0.0


class LoopbackHTTPServer:
    """Serve `folder` (and files added with `put`) at http://127.0.0.1:<free port>/."""

    def __init__(self, folder: str | Path | None = None, host: str = "127.0.0.1") -> None:
        self.folder = Path(folder).resolve() if folder is not None else None
        self.host = host
        self._files: dict[str, bytes] = {}
        self._behaviours: dict[str, Behaviour] = {}
        self._hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> LoopbackHTTPServer:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((self.host, 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"loopback-http-{self.port}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> LoopbackHTTPServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def url_for(self, name: str) -> str:
        return self.url + urllib.parse.quote(name.lstrip("/"))

    # -- content and fault switches -------------------------------------------------------------
    def put(self, name: str, data: bytes) -> str:
        """Serve `data` at `name` (in memory, overriding the folder); returns its URL."""
        with self._lock:
            self._files[_clean(name)] = bytes(data)
        return self.url_for(name)

    def _behaviour(self, name: str) -> Behaviour:
        return self._behaviours.setdefault(_clean(name), Behaviour())

    def fail(self, name: str, times: int = 1, status: int = 503) -> None:
        """Answer the next `times` requests for `name` with `status`, then serve it."""
        with self._lock:
            behaviour = self._behaviour(name)
            behaviour.fail_times, behaviour.fail_status = times, status

    def truncate(self, name: str, send_bytes: int) -> None:
        """Promise the full Content-Length but send only `send_bytes` bytes, then close."""
        with self._lock:
            self._behaviour(name).truncate_to = send_bytes

    def omit_length(self, name: str) -> None:
        """Stream `name` without a Content-Length header (the body ends when the socket closes)."""
        with self._lock:
            self._behaviour(name).omit_length = True

    def delay(self, name: str, seconds: float) -> None:
        """Wait `seconds` after the headers, before the body (to provoke client timeouts)."""
        with self._lock:
            self._behaviour(name).delay_seconds = seconds

    def missing(self, name: str) -> None:
        """Answer every request for `name` with 404 (even if the file exists)."""
        self.fail(name, times=10**9, status=404)

    def reset(self) -> None:
        """Forget every fault switch and request count (content stays)."""
        with self._lock:
            self._behaviours.clear()
            self._hits.clear()

    def hits(self, name: str) -> int:
        """How many GET/HEAD requests arrived for `name`."""
        with self._lock:
            return self._hits[_clean(name)]

    # -- request side (called from handler threads) ---------------------------------------------
    def _plan(self, name: str) -> tuple[int | None, Behaviour]:
        """Count the request; return the status to fail with (or None) and the behaviour."""
        with self._lock:
            self._hits[name] += 1
            behaviour = self._behaviours.get(name, Behaviour())
            if behaviour.fail_times > 0:
                behaviour.fail_times -= 1
                return behaviour.fail_status, behaviour
            return None, Behaviour(**vars(behaviour))

    def _content(self, name: str) -> bytes | None:
        with self._lock:
            if name in self._files:
                return self._files[name]
        if self.folder is None or not name:
            return None
        path = (self.folder / name).resolve()
        if not path.is_relative_to(self.folder) or not path.is_file():
            return None
        return path.read_bytes()


def _clean(name: str) -> str:
    """Normalise a request path or file name: no leading slash, no '..' escaping the root."""
    path = posixpath.normpath("/" + urllib.parse.unquote(name.split("?", 1)[0]))
    return path.lstrip("/") if path != "/" else ""


def _handler_for(owner: LoopbackHTTPServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "dj-flows-loopback/1"

        def do_GET(self) -> None:
            self._respond(body=True)

        def do_HEAD(self) -> None:
            self._respond(body=False)

        def _respond(self, body: bool) -> None:
            name = _clean(self.path)
            status, behaviour = owner._plan(name)
            if status is not None:
                self._error(status)
                return
            data = owner._content(name)
            if data is None:
                self._error(404)
                return
            self.send_response(200)
            kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
            self.send_header("Content-Type", kind)
            if behaviour.omit_length:
                self.send_header("Connection", "close")
            else:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not body:
                return
            if behaviour.delay_seconds:
                time.sleep(behaviour.delay_seconds)
            if behaviour.truncate_to is not None:
                data = data[: behaviour.truncate_to]
            try:
                for start in range(0, len(data), CHUNK):
                    self.wfile.write(data[start : start + CHUNK])
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (e.g. size limit reached): nothing to do
            self.close_connection = True

        def _error(self, status: int) -> None:
            message = f"{status} {self.responses.get(status, ('error',))[0]}\n".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(message)))
            if status in (429, 503):
                self.send_header("Retry-After", "0")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(message)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
            pass  # keep test and demo output clean

    return Handler
