"""dj.config['cache']: fetched external blobs and attachments are cached by hash and verified on
every hit; a corrupted cache file is discarded and fetched again, never returned; cache_limit
bounds the folder with least-recently-used eviction."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

import dj_flows as dj
from dj_flows.codecs.blob import pack
from dj_flows.errors import StoreError
from dj_flows.stores import fetch_cache, get_store
from dj_flows.stores.layout import subfold, uuid_from_buffer

from .helpers import declare_item, write

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def schema(stores, make_schema):
    return make_schema("cache")


@pytest.fixture(scope="module")
def Item(schema):
    return declare_item(schema, blob="blob", attach="doc", local="local_blob")


@pytest.fixture
def cache(tmp_path):
    folder = tmp_path / "cache"
    with dj.config(cache=str(folder), cache_limit=None):
        yield folder


def cache_files(folder: Path) -> dict[str, Path]:
    """{hash hex: path} of the cached objects (dj-flows' `{hex}.dj` entries)."""
    return {
        p.name.removesuffix(".dj"): p
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


def object_keys(schema, store: str) -> list[str]:
    tracking = schema.external[store]
    return [
        tracking.object_key(h, a, f)
        for h, a, f in zip(*tracking.fetch("hash", "attachment_name", "filepath"))
    ]


def remove_objects(schema, store: str) -> dict[str, bytes]:
    """Remove a store's objects of this schema; returns them so that they can be put back."""
    keys = object_keys(schema, store)
    saved = get_store(store).get_many(keys, missing="omit")
    get_store(store).remove_many(keys)
    return saved


def test_hits_are_served_from_the_cache_by_hash(schema, Item, cache, tmp_path):
    doc = write(tmp_path / "doc.txt", b"cached attachment")
    rows = [{"id": i, "blob": np.arange(i + 5), "doc": doc, "local_blob": [i]} for i in range(6)]
    Item.insert(rows)
    first = Item.fetch("blob", "doc", "local_blob", order_by="id", download_path=tmp_path / "a")
    files = cache_files(cache)
    tracked = {h.hex for h in schema.external["shared"].fetch("hash")}
    tracked |= {h.hex for h in schema.external["local"].fetch("hash")}
    assert set(files) == tracked  # every object fetched is cached under its hash ...
    for name, path in files.items():  # ... in DataJoint's cache layout
        assert path == cache.joinpath(*subfold(name, (2, 2)), name + ".dj")

    saved = {s: remove_objects(schema, s) for s in ("shared", "local")}
    try:
        second = Item.fetch(
            "blob", "doc", "local_blob", order_by="id", download_path=tmp_path / "b"
        )
    finally:
        for store, objects in saved.items():
            get_store(store).put_many(objects)
    for a, b in zip(first[0], second[0]):
        assert np.array_equal(a, b)
    assert [Path(p).read_bytes() for p in second[1]] == [b"cached attachment"] * 6
    assert [list(v) for v in second[2]] == [[i] for i in range(6)]


@pytest.mark.parametrize("how", ["flip", "truncate", "empty"])
def test_corrupted_cache_file_is_discarded_and_fetched_again(schema, Item, cache, how, tmp_path):
    key = {"id": {"flip": 20, "truncate": 21, "empty": 22}[how]}
    value = np.random.default_rng(key["id"]).standard_normal(200)
    Item.insert1({**key, "blob": value})
    (Item & key).fetch1("blob")
    (path,) = cache_files(cache).values()
    good = path.read_bytes()
    data = bytearray(good)
    if how == "flip":
        data[len(data) // 2] ^= 0x01
    elif how == "truncate":
        data = data[:-1]
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    assert np.array_equal((Item & key).fetch1("blob"), value)
    assert path.read_bytes() == good  # the bad entry was replaced by the verified object


def test_corrupted_cache_with_object_gone_fails_instead_of_returning_bad_data(
    schema, Item, cache, tmp_path
):
    key = {"id": 30}
    Item.insert1({**key, "doc": write(tmp_path / "d.txt", b"precious words")})
    (Item & key).fetch1("doc", download_path=tmp_path / "a")
    (path,) = cache_files(cache).values()
    path.write_bytes(b"precious wordz")
    saved = remove_objects(schema, "shared")
    try:
        with pytest.raises(StoreError, match="is missing"):
            (Item & key).fetch1("doc", download_path=tmp_path / "b")
    finally:
        get_store("shared").put_many(saved)
    assert not (tmp_path / "b" / "d.txt").exists()
    assert not path.exists()  # the corrupted entry is gone


def test_cache_limit_evicts_least_recently_used(schema, Item, tmp_path):
    folder = tmp_path / "cache"
    size = 8000
    rng = np.random.default_rng(7)
    rows = [{"id": 100 + i, "blob": rng.standard_normal(size // 8)} for i in range(12)]
    Item.insert(rows)
    with dj.config(cache=str(folder), cache_limit=5 * size):
        for i in range(12):
            (Item & {"id": 100 + i}).fetch1("blob")
            if i >= 1:  # keep touching row 0: it stays the most recently used
                time.sleep(0.01)
                (Item & {"id": 100}).fetch1("blob")
            total = sum(p.stat().st_size for p in cache_files(folder).values())
            assert 0 < total <= 5 * size
        survivors = cache_files(folder)
        assert 3 <= len(survivors) < 12
        assert np.array_equal((Item & {"id": 111}).fetch1("blob"), rows[11]["blob"])
    kept = uuid_from_buffer(pack(rows[0]["blob"])).hex
    assert kept in survivors  # the entry used all along survived eviction


def test_cache_off_touches_no_folder(Item, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Item.insert1({"id": 40, "blob": [1, 2, 3]})
    with dj.config(cache=None):
        assert list((Item & {"id": 40}).fetch1("blob")) == [1, 2, 3]
    assert os.listdir(tmp_path) == []


def test_poorly_compressible_blobs_are_cached_inflated_and_checked(schema, Item, cache):
    """Random floats shrink by a few percent: they are cached inflated (no inflate on a hit),
    under a header that binds the entry to its hash and a CRC of the payload."""
    key = {"id": 50}
    value = np.random.default_rng(50).standard_normal(5000)
    Item.insert1({**key, "blob": value})
    stored = pack(value)
    assert stored.startswith(b"ZL123\0")  # compressed, as DataJoint would
    (Item & key).fetch1("blob")
    (path,) = cache_files(cache).values()
    data = path.read_bytes()
    magic, kind, hash_, _ = fetch_cache.HEADER.unpack_from(data)
    assert (magic, kind, hash_) == (b"DJFC", fetch_cache.INFLATED, uuid_from_buffer(stored).bytes)
    assert data[fetch_cache.HEADER.size :] == pack(value, compress=False)  # the blob, inflated

    saved = remove_objects(schema, "shared")
    try:
        assert np.array_equal((Item & key).fetch1("blob"), value)  # served by the entry
        moved = cache_files(cache)[uuid_from_buffer(stored).hex]
        other = np.arange(3.0)
        Item.insert1({"id": 51, "blob": other})
        other_hex = uuid_from_buffer(pack(other)).hex
        impostor = cache / other_hex[:2] / other_hex[2:4] / f"{other_hex}.dj"
        impostor.parent.mkdir(parents=True, exist_ok=True)
        impostor.write_bytes(moved.read_bytes())  # a valid entry under another object's name
        assert np.array_equal((Item & {"id": 51}).fetch1("blob"), other)
        assert not impostor.exists() or impostor.read_bytes() != moved.read_bytes()
    finally:
        get_store("shared").put_many(saved)


def test_datajoint_style_entries_are_read_and_verified_by_md5(schema, Item, cache, tmp_path):
    """An entry named by the bare hash holds the stored bytes (DataJoint 0.14's cache)."""
    key = {"id": 60}
    value = np.arange(500.0)
    Item.insert1({**key, "blob": value})
    stored = pack(value)
    hex_ = uuid_from_buffer(stored).hex
    entry = cache / hex_[:2] / hex_[2:4] / hex_
    write(entry, stored)
    saved = remove_objects(schema, "shared")
    try:
        assert np.array_equal((Item & key).fetch1("blob"), value)  # from DataJoint's entry
        entry.write_bytes(stored[:-1] + bytes([stored[-1] ^ 1]))  # corrupt it
        with pytest.raises(StoreError, match="is missing"):
            (Item & key).fetch1("blob")
        assert not entry.exists()  # discarded, never returned
    finally:
        get_store("shared").put_many(saved)
    assert np.array_equal((Item & key).fetch1("blob"), value)


def test_many_hits_are_aligned_writable_and_an_entry_changed_in_place_is_checked_again(
    schema, Item, cache, tmp_path
):
    """A fetch of several rows takes the entries this process checked in its own thread (no
    hashing); their arrays view the read buffers, aligned and writable. An entry written in
    place since (same size) is not known good any more: it is checked, discarded and fetched."""
    rng = np.random.default_rng(70)
    values = {i: rng.standard_normal(3000) for i in range(70, 78)}
    Item.insert({"id": i, "blob": v} for i, v in values.items())
    query = Item & [{"id": i} for i in values]
    query.fetch("blob", order_by="id")  # fills the cache
    saved = remove_objects(schema, "shared")
    try:
        second = query.fetch("blob", order_by="id")  # the store is empty: all from the cache
        for got, want in zip(second, values.values()):
            assert np.array_equal(got, want)
            assert got.flags.writeable and got.flags.aligned
        second[0][0] = 42.0  # the caller owns the arrays
        hex_ = uuid_from_buffer(pack(values[73])).hex
        path = cache_files(cache)[hex_]
        good = path.read_bytes()
        time.sleep(0.01)
        path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # same size, same inode
        with pytest.raises(StoreError, match="is missing"):
            query.fetch("blob", order_by="id")  # checked, discarded, and the store has none
        assert hex_ not in cache_files(cache)
    finally:
        get_store("shared").put_many(saved)
    third = query.fetch("blob", order_by="id")
    assert all(np.array_equal(g, w) for g, w in zip(third, values.values()))
    assert cache_files(cache)[hex_].read_bytes() == good
