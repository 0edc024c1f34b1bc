"""schema.external: a mapping from store name to its `~external_<store>` tracking table, with
DataJoint's inspection and clean-up API."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

import dj_flows as dj
from dj_flows.errors import DataJointError, StoreError

from .helpers import objects_under, write

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def schema(stores, make_schema):
    return make_schema("ext")


@pytest.fixture(scope="module")
def Rec(schema):
    @schema
    class Rec(dj.Manual):
        definition = """
        id : int
        ---
        b = null : blob@shared
        a = null : attach@local
        """

    return Rec


def test_mapping_lists_the_stores_in_use(stores, schema, Rec, s3_server):
    assert set(schema.external) == {"shared", "local"}  # declared with the table
    assert len(schema.external) == 2
    assert sorted(schema.external.keys()) == ["local", "shared"]
    text = repr(schema.external)
    assert text.startswith(f"External file tables for schema `{schema.database}`:")
    assert f'"local" file:{stores.local}' in text
    assert '"shared" s3:' in text and s3_server.secret_key not in text
    with pytest.raises(StoreError, match="nowhere"):
        schema.external["nowhere"]
    tracking = schema.external["shared"]
    assert tracking.table_name == "~external_shared" and tracking.store_name == "shared"
    assert schema.external["shared"] is tracking  # one object per store


def test_rows_paths_used_unused_and_delete(stores, schema, Rec, s3_server, tmp_path):
    Rec.insert(
        [
            {"id": i, "b": np.full(4, i), "a": write(tmp_path / f"a{i}.txt", b"%d" % i)}
            for i in range(4)
        ]
    )
    shared, local = schema.external["shared"], schema.external["local"]
    text = repr(local)
    assert "hash" in text and "a0.txt" in text and "(Total: 4)" in text
    assert s3_server.secret_key not in repr(shared)

    paths = dict(local.fetch_external_paths())
    assert len(paths) == 4
    for hash_, path in paths.items():
        assert Path(path).is_file() and hash_.hex in Path(path).name
        assert str(path).startswith(str(stores.local / schema.database))
    s3_paths = shared.fetch_external_paths()
    fs = s3_server.filesystem()
    for hash_, path in s3_paths:
        assert isinstance(path, PurePosixPath)
        assert str(path).startswith(f"djtest/{schema.database}/{hash_.hex[:2]}/{hash_.hex[2:4]}/")
        assert fs.exists(f"{stores.bucket}/{path}")

    assert len(shared.used()) == 4 and len(shared.unused()) == 0
    (Rec & "id < 2").delete()
    assert len(shared.used()) == 2 and len(shared.unused()) == 2
    assert len(local.unused()) == 2
    doomed = set(dict(local.unused().fetch_external_paths()).values())

    with pytest.raises(DataJointError, match="delete_external_files"):
        local.delete()
    assert local.delete(delete_external_files=False) == []
    assert len(local) == 2 and all(os.path.exists(p) for p in doomed)  # rows gone, files kept

    gone = {p for _, p in shared.unused().fetch_external_paths()}
    assert shared.delete(delete_external_files=True) == []
    assert len(shared) == 2 and not [p for p in gone if fs.exists(f"{stores.bucket}/{p}")]
    blobs = Rec.fetch("b", order_by="id")
    assert [b[0] for b in blobs] == [2, 3]  # the used objects are untouched


def test_delete_of_unused_rows_with_missing_files_reports_nothing_wrong(schema, Rec, tmp_path):
    Rec.insert1({"id": 50, "a": write(tmp_path / "gone.txt", b"soon gone")})
    (Rec & {"id": 50}).delete()
    local = schema.external["local"]
    (path,) = [p for _, p in local.unused().fetch_external_paths()]
    os.remove(path)
    before = objects_under("local", schema.database)
    assert local.delete(delete_external_files=True) == []
    assert len(local.unused()) == 0
    assert objects_under("local", schema.database) == before
