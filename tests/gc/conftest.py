"""GC fixtures: a store per backend (MariaDB with the S3 server, SQLite with a folder) and a small
pipeline whose rows reference blobs and attachments in it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import dj_flows as dj

from .pipeline import STORE, attachment, blob, declare

__all__ = ["STORE", "attachment", "blob", "declare", "store_spec"]


@pytest.fixture(scope="module")
def store_spec(backend: str, request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[dict]:
    """dj.config['stores'][STORE] for this module: S3 with MySQL, a folder with SQLite."""
    if backend == "mysql":
        server = request.getfixturevalue("s3_server")
        spec = server.store_spec(server.new_bucket("gc"), f"loc-{uuid.uuid4().hex[:6]}")
    else:
        spec = {"protocol": "file", "location": str(tmp_path_factory.mktemp("gcstore"))}
    with dj.config(stores={**dj.config["stores"], STORE: spec}):
        yield spec


