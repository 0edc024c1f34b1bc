"""A folder store whose location stops being writable (root ignores chmod, so the folder is
replaced by a regular file): the insert fails with a StoreError naming the store and location,
no row references a half-written object, and the same insert completes once the folder is back."""

from __future__ import annotations

import os

import fsspec
import numpy as np
import pytest

import dj_flows as dj
from dj_flows.errors import StoreError

from .invariants import missing_objects, referenced_paths

STORE = "unwritable"


@pytest.fixture(scope="module")
def folder_store(backend, make_schema, tmp_path_factory):
    location = tmp_path_factory.mktemp("folderstore") / "store"
    with dj.config(stores={**dj.config["stores"], STORE: {"protocol": "file", "location": str(location)}}):
        schema = make_schema("fold")

        class Item(dj.Manual):
            definition = """
            id : int
            ---
            data : blob@unwritable
            doc = null : attach@unwritable
            """

        schema(Item)
        yield schema, Item, location


@pytest.mark.parametrize("where", ["location", "subfolder"])
def test_unwritable_location_fails_cleanly(folder_store, where, tmp_path):
    schema, Item, location = folder_store
    start = len(Item()) + 1000 * (where == "subfolder")
    Item.insert([dict(id=start + i, data=np.arange(i + 5)) for i in range(3)])
    target = location if where == "location" else location / schema.database
    aside = target.with_name(target.name + ".aside")
    os.rename(target, aside)
    target.write_text("not a folder")  # every path under it now fails, even for root
    attachment = tmp_path / "note.txt"
    attachment.write_text("hello")
    batch = [dict(id=start + 10 + i, data=np.random.rand(50), doc=str(attachment)) for i in range(5)]
    try:
        with pytest.raises(StoreError) as failure:
            Item.insert(batch)
        message = str(failure.value)
        assert f"store {STORE!r}" in message and str(location) in message, message
        assert not Item & [{"id": row["id"]} for row in batch]
    finally:
        target.unlink()
        os.rename(aside, target)
    local = fsspec.filesystem("file")  # tracking paths of a folder store are absolute
    assert missing_objects(schema, STORE, local) == set()
    Item.insert(batch)  # the same call completes
    assert len(Item & [{"id": row["id"]} for row in batch]) == len(batch)
    assert missing_objects(schema, STORE, local) == set()
    rows = (Item & [{"id": r["id"]} for r in batch]).fetch(as_dict=True, download_path=str(tmp_path))
    assert all(open(row["doc"]).read() == "hello" for row in rows)
    print(f"RELIABILITY folder-{where}: {len(referenced_paths(schema, STORE))} objects checked")
