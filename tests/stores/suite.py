"""The behaviour every store must have, written once (fsspec style) and run per backend.

A backend's test class inherits `StoreSuite` and provides a `store` fixture.
"""

from __future__ import annotations

import pickle
import time
import uuid

import pytest

from dj_flows.errors import StoreError
from dj_flows.stores import MissingObjectError, Store

BAD_KEYS = ["../x", "a/../../b", "/etc/passwd", "a\0b", "", "a//b", "./a", "a/.", "a\\b", "C:x"]


def unique() -> str:
    return uuid.uuid4().hex[:10]


class StoreSuite:
    @pytest.fixture
    def store(self) -> Store:  # overridden by each backend
        raise NotImplementedError

    # -- single objects -------------------------------------------------------------------------
    def test_put_get_roundtrip(self, store: Store) -> None:
        key = f"db/{unique()}/obj"
        data = bytes(range(256)) * 3
        store.put(key, data)
        assert store.get(key) == data
        assert store.exists(key)
        assert store.size(key) == len(data)

    def test_overwrite_replaces(self, store: Store) -> None:
        key = f"db/{unique()}"
        store.put(key, b"first version")
        store.put(key, b"second")
        assert store.get(key) == b"second"
        assert store.size(key) == 6

    def test_empty_object(self, store: Store) -> None:
        key = f"db/{unique()}"
        store.put(key, b"")
        assert store.get(key) == b""
        assert store.size(key) == 0
        assert store.exists(key)

    def test_missing_object(self, store: Store) -> None:
        key = f"db/{unique()}/missing"
        assert not store.exists(key)
        assert store.size(key) is None
        with pytest.raises(MissingObjectError) as info:
            store.get(key)
        assert key in str(info.value) and store.name in str(info.value)
        assert info.value.keys == [key]

    def test_remove(self, store: Store) -> None:
        key = f"db/{unique()}"
        store.put(key, b"x")
        store.remove(key)
        assert not store.exists(key)
        store.remove(key)  # removing again is not an error

    def test_data_must_be_bytes(self, store: Store) -> None:
        with pytest.raises(StoreError, match="bytes"):
            store.put(f"db/{unique()}", "text")  # type: ignore[arg-type]

    def test_bytearray_and_memoryview_accepted(self, store: Store) -> None:
        key = f"db/{unique()}"
        store.put(key, memoryview(bytearray(b"abc")))
        assert store.get(key) == b"abc"

    # -- bulk -----------------------------------------------------------------------------------
    def test_bulk_200(self, store: Store) -> None:
        prefix = f"bulk-{unique()}"
        items = {f"{prefix}/{i:02x}/{i:04d}": i.to_bytes(2, "big") * (i + 1) for i in range(200)}
        store.put_many(items)
        assert store.get_many(list(items)) == items
        listed = {obj.key: obj.size for obj in store.list(prefix)}
        assert listed == {key: len(value) for key, value in items.items()}
        store.remove_many(list(items))
        assert store.get_many(list(items), missing="omit") == {}
        assert not any(store.exists(key) for key in list(items)[:5])

    def test_get_many_reports_every_missing_key(self, store: Store) -> None:
        base = f"db/{unique()}"
        store.put(f"{base}/present", b"here")
        wanted = [f"{base}/present", f"{base}/gone1", f"{base}/gone2"]
        with pytest.raises(MissingObjectError) as info:
            store.get_many(wanted)
        assert sorted(info.value.keys) == [f"{base}/gone1", f"{base}/gone2"]
        assert f"{base}/gone1" in str(info.value) and f"{base}/gone2" in str(info.value)
        assert store.get_many(wanted, missing="omit") == {f"{base}/present": b"here"}

    def test_empty_bulk_calls(self, store: Store) -> None:
        store.put_many({})
        assert store.get_many([]) == {}
        store.remove_many([])

    def test_remove_many_skips_missing(self, store: Store) -> None:
        base = f"db/{unique()}"
        store.put(f"{base}/a", b"1")
        store.remove_many([f"{base}/a", f"{base}/never-existed"])
        assert not store.exists(f"{base}/a")

    def test_awkward_names(self, store: Store) -> None:
        """Attachment names may hold glob characters, spaces, unicode: they are literal keys."""
        base = f"db/{unique()}"
        items = {
            f"{base}/0123abcd.image[1].png": b"1",
            f"{base}/0123abce.star*.txt": b"2",
            f"{base}/0123abcf.what?.txt": b"3",
            f"{base}/0123abd0.spaced name ü.dat": b"4",
        }
        store.put_many(items)
        assert store.get_many(list(items)) == items
        assert {obj.key for obj in store.list(base)} == set(items)
        store.remove_many(list(items))
        assert store.get_many(list(items), missing="omit") == {}

    # -- listing --------------------------------------------------------------------------------
    def test_list_prefix_is_a_folder(self, store: Store) -> None:
        base = f"db{unique()}"
        store.put_many({f"{base}/a/1": b"1", f"{base}/a/2": b"22", f"{base}-other/a/3": b"333"})
        found = list(store.list(f"{base}/a"))
        assert [(o.key, o.size) for o in sorted(found)] == [(f"{base}/a/1", 1), (f"{base}/a/2", 2)]
        assert sorted(o.key for o in store.list(base)) == [f"{base}/a/1", f"{base}/a/2"]
        assert all(o.mtime is not None and abs(o.mtime - time.time()) < 3600 for o in found)
        assert list(store.list(f"{base}/nothing-here")) == []

    def test_list_whole_store_includes_everything(self, store: Store) -> None:
        key = f"db/{unique()}/whole"
        store.put(key, b"w")
        assert key in {o.key for o in store.list()}

    # -- safety ---------------------------------------------------------------------------------
    @pytest.mark.parametrize("bad", BAD_KEYS)
    def test_keys_cannot_escape_root(self, store: Store, bad: str) -> None:
        for call in (
            lambda: store.put(bad, b"x"),
            lambda: store.get(bad),
            lambda: store.exists(bad),
            lambda: store.remove(bad),
            lambda: store.put_many({"db/ok": b"1", bad: b"x"}),
            lambda: store.get_many(["db/ok", bad]),
        ):
            with pytest.raises(StoreError, match="invalid key"):
                call()

    def test_list_prefix_cannot_escape_root(self, store: Store) -> None:
        with pytest.raises(StoreError, match="invalid key"):
            list(store.list("../.."))

    def test_repr_names_store_not_secrets(self, store: Store) -> None:
        text = repr(store)
        assert store.name in text and store.spec.protocol in text
        for secret in [store.spec.secret_key, store.spec.access_key]:
            if secret:
                assert secret not in text
                assert secret not in store.describe()

    def test_pickle_roundtrip(self, store: Store) -> None:
        key = f"db/{unique()}"
        store.put(key, b"pickled")
        clone = pickle.loads(pickle.dumps(store))
        assert repr(clone) == repr(store)
        assert clone.get(key) == b"pickled"
