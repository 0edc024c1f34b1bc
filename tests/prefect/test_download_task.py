"""download_task inside real flow runs: retries only transient failures, returns a path string."""

from __future__ import annotations

import json
import os

import pytest
from prefect import flow

from dj_flows.prefect.download import DownloadError, TransientDownloadError, download_task
from dj_flows.testing.http_server import LoopbackHTTPServer

PAYLOAD = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 100
FAST = download_task.with_options(retries=3, retry_delay_seconds=0, retry_jitter_factor=None)

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def server():
    with LoopbackHTTPServer() as running:
        running.put("cell.png", PAYLOAD)
        yield running


@flow
def fetch_one(url: str, dest: str, **options) -> str:
    return FAST(url, dest, **options)


def test_default_policy_retries_three_times_with_backoff():
    assert download_task.retries == 3
    assert download_task.retry_delay_seconds[:3] == [2.0, 4.0, 8.0]
    assert download_task.retry_condition_fn is not None


def test_returns_json_able_path(server, tmp_path):
    path = fetch_one(server.url_for("cell.png"), str(tmp_path))
    assert isinstance(path, str) and json.loads(json.dumps(path)) == path
    assert open(path, "rb").read() == PAYLOAD
    assert server.hits("cell.png") == 1


def test_fails_twice_then_succeeds_through_retries(server, tmp_path):
    server.fail("cell.png", times=2, status=503)
    path = fetch_one(server.url_for("cell.png"), str(tmp_path))
    assert open(path, "rb").read() == PAYLOAD
    assert server.hits("cell.png") == 3


def test_persistent_truncation_exhausts_retries(server, tmp_path):
    server.truncate("cell.png", 100)
    with pytest.raises(TransientDownloadError):
        fetch_one(server.url_for("cell.png"), str(tmp_path))  # truncation persists: 4 attempts
    assert server.hits("cell.png") == 4
    assert os.listdir(tmp_path) == []


def test_not_found_is_not_retried(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404") as caught:
        fetch_one(server.url_for("absent.png"), str(tmp_path))
    assert not isinstance(caught.value, TransientDownloadError)
    assert server.hits("absent.png") == 1


def test_too_large_is_not_retried(server, tmp_path):
    with pytest.raises(DownloadError, match="exceeds the limit"):
        fetch_one(server.url_for("cell.png"), str(tmp_path), max_bytes=100)
    assert server.hits("cell.png") == 1
