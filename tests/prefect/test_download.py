"""download(): whole files or nothing, and failures classified as transient or permanent."""

from __future__ import annotations

import hashlib
import os

import fsspec
import pytest

from dj_flows.errors import DataJointError, TransientStoreError
from dj_flows.prefect.download import (
    DownloadError,
    TransientDownloadError,
    display_url,
    download,
    filename_from_url,
    safe_filename,
)
from dj_flows.testing.http_server import LoopbackHTTPServer

PAYLOAD = os.urandom(300_000)  # larger than one read chunk


@pytest.fixture
def server():
    with LoopbackHTTPServer() as running:
        running.put("img/neuron.jpg", PAYLOAD)
        yield running


def leftovers(folder) -> list[str]:
    return sorted(os.listdir(folder)) if os.path.exists(folder) else []


def test_downloads_whole_file_with_checks(server, tmp_path):
    dest = tmp_path / "new" / "folder"
    path = download(
        server.url_for("img/neuron.jpg"),
        dest,
        expected_size=len(PAYLOAD),
        expected_sha256=hashlib.sha256(PAYLOAD).hexdigest(),
    )
    assert path == str((dest / "neuron.jpg").resolve())
    assert open(path, "rb").read() == PAYLOAD
    assert leftovers(dest) == ["neuron.jpg"]


def test_errors_belong_to_the_engine_family():
    assert issubclass(DownloadError, DataJointError)
    assert issubclass(TransientDownloadError, DownloadError)
    assert issubclass(TransientDownloadError, TransientStoreError)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_are_transient(server, tmp_path, status):
    server.fail("img/neuron.jpg", times=1, status=status)
    with pytest.raises(TransientDownloadError, match=f"HTTP {status}"):
        download(server.url_for("img/neuron.jpg"), tmp_path)
    assert leftovers(tmp_path) == []
    assert download(server.url_for("img/neuron.jpg"), tmp_path).endswith("neuron.jpg")


@pytest.mark.parametrize("status", [404, 403, 410])
def test_client_errors_are_permanent(server, tmp_path, status):
    server.fail("img/neuron.jpg", times=1, status=status)
    with pytest.raises(DownloadError, match=f"HTTP {status}") as caught:
        download(server.url_for("img/neuron.jpg"), tmp_path)
    assert not isinstance(caught.value, TransientDownloadError)
    assert leftovers(tmp_path) == []


def test_truncated_body_is_transient_and_leaves_nothing(server, tmp_path):
    server.truncate("img/neuron.jpg", 100_000)
    with pytest.raises(TransientDownloadError, match="truncated: 100000 of 300000"):
        download(server.url_for("img/neuron.jpg"), tmp_path)
    assert leftovers(tmp_path) == []


def test_failed_download_keeps_the_previous_file(server, tmp_path):
    (tmp_path / "neuron.jpg").write_bytes(b"old")
    server.truncate("img/neuron.jpg", 10)
    with pytest.raises(TransientDownloadError):
        download(server.url_for("img/neuron.jpg"), tmp_path)
    assert (tmp_path / "neuron.jpg").read_bytes() == b"old"
    assert leftovers(tmp_path) == ["neuron.jpg"]


def test_too_large_by_content_length(server, tmp_path):
    with pytest.raises(DownloadError, match="300000 bytes exceeds the limit of 1000") as caught:
        download(server.url_for("img/neuron.jpg"), tmp_path, max_bytes=1000)
    assert not isinstance(caught.value, TransientDownloadError)
    assert leftovers(tmp_path) == []


def test_too_large_while_streaming_without_content_length(server, tmp_path):
    server.omit_length("img/neuron.jpg")
    with pytest.raises(DownloadError, match="more than 1000 bytes") as caught:
        download(server.url_for("img/neuron.jpg"), tmp_path, max_bytes=1000)
    assert not isinstance(caught.value, TransientDownloadError)
    assert leftovers(tmp_path) == []
    # within the limit the same stream downloads fine
    assert os.path.getsize(download(server.url_for("img/neuron.jpg"), tmp_path)) == len(PAYLOAD)


def test_expected_size_larger_than_limit_fails_before_connecting(server, tmp_path):
    with pytest.raises(DownloadError, match="exceeds"):
        download(server.url_for("img/neuron.jpg"), tmp_path, max_bytes=10, expected_size=11)
    assert server.hits("img/neuron.jpg") == 0


def test_size_and_checksum_mismatches_are_permanent(server, tmp_path):
    url = server.url_for("img/neuron.jpg")
    with pytest.raises(DownloadError, match="expected 5") as caught:
        download(url, tmp_path, expected_size=5)
    assert not isinstance(caught.value, TransientDownloadError)
    with pytest.raises(DownloadError, match="sha256") as caught:
        download(url, tmp_path, expected_sha256="0" * 64)
    assert not isinstance(caught.value, TransientDownloadError)
    assert leftovers(tmp_path) == []


def test_short_stream_without_length_against_expected_size_is_transient(server, tmp_path):
    server.put("short.bin", PAYLOAD[:1000])
    server.omit_length("short.bin")
    with pytest.raises(TransientDownloadError, match="truncated: 1000 of 2000"):
        download(server.url_for("short.bin"), tmp_path, expected_size=2000)


def test_connection_refused_is_transient(tmp_path):
    closed = LoopbackHTTPServer().start()
    url = closed.url_for("x.png")
    closed.stop()
    with pytest.raises(TransientDownloadError, match="127.0.0.1"):
        download(url, tmp_path, timeout=2)
    assert leftovers(tmp_path) == []


def test_read_timeout_is_transient(server, tmp_path):
    server.delay("img/neuron.jpg", 1.5)
    with pytest.raises(TransientDownloadError, match="(?i)timed out|timeout"):
        download(server.url_for("img/neuron.jpg"), tmp_path, timeout=0.3)
    assert leftovers(tmp_path) == []


def test_credentials_never_appear_in_messages(server, tmp_path):
    url = server.url_for("missing.png").replace("http://", "http://user:hunter2@")
    with pytest.raises(DownloadError) as caught:
        download(url + "?X-Amz-Signature=topsecret", tmp_path)
    assert "hunter2" not in str(caught.value) and "topsecret" not in str(caught.value)
    assert display_url("https://u:p@host:8080/a/b.jpg?sig=1#f") == "https://host:8080/a/b.jpg"


def test_fsspec_file_and_memory_urls(tmp_path):
    source = tmp_path / "src" / "data.bin"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    dest = tmp_path / "dest"
    path = download(source.as_uri(), dest, expected_sha256=hashlib.sha256(PAYLOAD).hexdigest())
    assert open(path, "rb").read() == PAYLOAD
    memory = fsspec.filesystem("memory")
    memory.pipe("/dj-flows-test/blob.npy", b"abc")
    try:
        path = download("memory://dj-flows-test/blob.npy", dest, filename="renamed.npy")
        assert os.path.basename(path) == "renamed.npy" and open(path, "rb").read() == b"abc"
    finally:
        memory.rm("/dj-flows-test", recursive=True)


def test_fsspec_failures(tmp_path):
    with pytest.raises(DownloadError) as caught:
        download((tmp_path / "absent.bin").as_uri(), tmp_path / "dest")
    assert not isinstance(caught.value, TransientDownloadError)
    with pytest.raises(DownloadError, match="folder"):
        download(tmp_path.as_uri(), tmp_path / "dest")
    with pytest.raises(DownloadError, match="nosuchprotocol"):
        download("nosuchprotocol://x/y.bin", tmp_path / "dest")
    (tmp_path / "big.bin").write_bytes(PAYLOAD)
    with pytest.raises(DownloadError, match="exceeds the limit"):
        download((tmp_path / "big.bin").as_uri(), tmp_path / "dest", max_bytes=10)
    assert leftovers(tmp_path / "dest") == []


@pytest.mark.parametrize(
    ("url", "name"),
    [
        (
            "https://h/wikipedia/commons/d/dc/PLoSBiol4.e126.Fig6fNeuron.jpg",
            "PLoSBiol4.e126.Fig6fNeuron.jpg",
        ),
        ("https://h/a/..%2F..%2Fetc%2Fpasswd", "passwd"),
        ("https://h/a/%2e%2e", "download"),
        ("https://h/", "download"),
        ("https://h/x/my%20file%3B.png?size=2#top", "my_file_.png"),
        ("https://h/x/..\\..\\win.ini", "win.ini"),
        ("s3://bucket/key/.hidden", "hidden"),
    ],
)
def test_filenames_from_urls_are_safe(url, name):
    assert filename_from_url(url) == name


def test_safe_filename_limits_length_and_keeps_suffix():
    name = safe_filename("a" * 500 + ".jpeg")
    assert len(name) <= 200 and name.endswith(".jpeg")
    assert safe_filename("../../") == "download"


def test_explicit_filename_cannot_escape_the_folder(server, tmp_path):
    dest = tmp_path / "dest"
    path = download(server.url_for("img/neuron.jpg"), dest, filename="../../evil.jpg")
    assert path == str((dest / "evil.jpg").resolve())
    assert leftovers(tmp_path) == ["dest"]
