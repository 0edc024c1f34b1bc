"""Fixtures for external-store tests: DataJoint-style stores on the real S3 server and in folders.

`stores` (module-scoped, on top of `backend`) sets dj.config['stores'] to
  shared  s3 on the session's SeaweedFS server (a bucket of its own)
  local   a folder store
  staged  a folder store with a `stage` folder (filepath@staged)
and yields a namespace with the bucket, the folders and the S3 server. `backend` restores the
previous stores and cache settings when the module ends.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import dj_flows as dj


@pytest.fixture(scope="module")
def stores(backend: str, s3_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    bucket = s3_server.new_bucket("ext")
    folder = tmp_path_factory.mktemp("stores")
    (folder / "stage").mkdir()
    specs = {
        "shared": s3_server.store_spec(bucket, location="djtest"),
        "local": {"protocol": "file", "location": str(folder / "dj-store")},
        "staged": {
            "protocol": "file",
            "location": str(folder / "staged-store"),
            "stage": str(folder / "stage"),
        },
    }
    dj.config["stores"] = specs
    dj.config["cache"] = None
    yield types.SimpleNamespace(
        backend=backend,
        bucket=bucket,
        folder=folder,
        stage=folder / "stage",
        local=folder / "dj-store",
        s3=s3_server,
        specs=specs,
    )
    dj.config["cache"] = None


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test runs in an empty folder (attachments download into '.' by default)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
