"""The loopback HTTP server: serves a folder and misbehaves on request, as real servers do."""

from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request

import pytest

from dj_flows.testing.http_server import LoopbackHTTPServer


def fetch(url: str) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read(), dict(exc.headers)


@pytest.fixture
def server(tmp_path):
    (tmp_path / "a.bin").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b c.txt").write_text("hello")
    with LoopbackHTTPServer(tmp_path) as running:
        yield running


def test_serves_files_from_folder_and_memory(server):
    status, body, headers = fetch(server.url_for("a.bin"))
    assert (status, body) == (200, bytes(range(256)) * 40)
    assert headers["Content-Length"] == str(len(body))
    assert fetch(server.url_for("sub/b c.txt"))[1] == b"hello"
    url = server.put("mem/x.png", b"\x89PNG...")
    assert url.startswith("http://127.0.0.1:") and url.endswith("/mem/x.png")
    status, body, headers = fetch(url)
    assert body == b"\x89PNG..." and headers["Content-Type"] == "image/png"
    assert server.hits("a.bin") == 1


def test_missing_and_escaping_paths_are_404(server, tmp_path):
    (tmp_path.parent / "outside.txt").write_text("secret")
    assert fetch(server.url_for("nope.txt"))[0] == 404
    assert fetch(server.url + "../outside.txt")[0] == 404
    assert fetch(server.url + "%2e%2e/outside.txt")[0] == 404
    server.missing("a.bin")
    assert fetch(server.url_for("a.bin"))[0] == 404


def test_fails_n_times_then_serves(server):
    server.fail("a.bin", times=2)
    assert fetch(server.url_for("a.bin"))[0] == 503
    assert fetch(server.url_for("a.bin"))[0] == 503
    assert fetch(server.url_for("a.bin"))[0] == 200
    assert server.hits("a.bin") == 3
    server.fail("a.bin", times=1, status=429)
    assert fetch(server.url_for("a.bin"))[0] == 429
    server.reset()
    assert server.hits("a.bin") == 0


def test_truncated_body_sends_fewer_bytes_than_promised(server):
    server.truncate("a.bin", 1000)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("GET", "/a.bin")
    response = connection.getresponse()
    assert response.getheader("Content-Length") == "10240"
    with pytest.raises(http.client.IncompleteRead) as caught:
        response.read()
    assert len(caught.value.partial) == 1000
    connection.close()


def test_omit_length_streams_until_close(server):
    server.omit_length("a.bin")
    status, body, headers = fetch(server.url_for("a.bin"))
    assert status == 200 and "Content-Length" not in headers and len(body) == 10240


def test_stop_releases_the_port(tmp_path):
    server = LoopbackHTTPServer(tmp_path).start()
    port = server.port
    server.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    with pytest.raises(RuntimeError):
        server.url  # noqa: B018 - the property raises once stopped
