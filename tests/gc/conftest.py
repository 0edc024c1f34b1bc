"""GC fixtures: a store per backend (MariaDB with the S3 server, SQLite with a folder) and a small
pipeline whose rows reference blobs and attachments in it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import dj_flows as dj

STORE = "gcstore"


@pytest.fixture(scope="module")
def store_spec(backend: str, request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[dict]:
    """dj.config['stores'][STORE] for this module: S3 with MySQL, a folder with SQLite."""
    if backend == "mysql":
        server = request.getfixturevalue("s3_server")
        spec = server.store_spec(server.new_bucket("gc"), f"loc-{uuid.uuid4().hex[:6]}")
    else:
        spec = {"protocol": "file", "location": str(tmp_path_factory.mktemp("gcstore"))}
    saved = dict(dj.config["stores"])
    dj.config["stores"] = {**saved, STORE: spec}
    yield spec
    dj.config["stores"] = saved


def blob(content: int) -> np.ndarray:
    """The array of content number `content` (distinct contents, distinct hashes)."""
    return np.arange(16, dtype=np.float64) * 0.5 + content


def attachment(folder: Path, content: int) -> Path:
    path = folder / f"file{content}.bin"
    if not path.exists():
        path.write_bytes(bytes([content % 256]) * (100 + content))
    return path


def declare(schema: dj.Schema) -> dict[str, type]:
    """Two tables referencing the store: Item (blob and attachment) and Note (blob)."""

    @schema
    class Item(dj.Manual):
        definition = f"""
        id : int
        ---
        content : int
        b : blob@{STORE}
        a = null : attach@{STORE}
        """

    @schema
    class Note(dj.Manual):
        definition = f"""
        name : varchar(20)
        day : date
        ---
        b : blob@{STORE}
        """

    return {"Item": Item, "Note": Note}
