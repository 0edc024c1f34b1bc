"""Store specs are checked when a store is built: errors name the store and key, never a secret;
and get_store() follows dj.config['stores']."""

from __future__ import annotations

import pytest

from dj_flows.errors import ConfigError, StoreError
from dj_flows.settings import config
from dj_flows.stores import Store, clear_store_cache, get_store
from dj_flows.stores.filestore import FileStore
from dj_flows.stores.s3 import S3Store
from dj_flows.stores.store import AsyncFsspecStore, FsspecStore

SECRET = "s3cr3t-value-never-shown"
S3 = dict(
    protocol="s3",
    endpoint="localhost:9000",
    access_key="datajoint",
    secret_key=SECRET,
    bucket="datajoint-demo",
    location="",
)


def test_datajoint_specs_build_the_right_stores(tmp_path) -> None:
    assert isinstance(Store.from_spec("shared", S3), S3Store)
    assert isinstance(
        Store.from_spec("local", {"protocol": "file", "location": str(tmp_path)}), FileStore
    )
    assert type(Store.from_spec("m", {"protocol": "memory", "location": "/x"})) is FsspecStore
    gcs_like = Store.from_spec("h", {"protocol": "http", "location": "http://127.0.0.1:1/x"})
    assert isinstance(gcs_like, AsyncFsspecStore)


def test_defaults_and_options() -> None:
    store = Store.from_spec("shared", S3)
    assert store.subfolding == (2, 2) and store.stage is None
    assert store.spec.endpoint_url == "http://localhost:9000"
    secure = Store.from_spec("shared", {**S3, "secure": True, "subfolding": [3], "stage": "/s"})
    assert secure.spec.endpoint_url == "https://localhost:9000"
    assert secure.subfolding == (3,) and secure.stage == "/s"
    upper = Store.from_spec("shared", {**S3, "protocol": "S3"})  # DataJoint ignores case
    assert isinstance(upper, S3Store)


@pytest.mark.parametrize(
    "spec, words",
    [
        ({"protocol": "ftpx"}, ["'protocol'", "ftpx"]),
        ({"location": "/x"}, ["'protocol'"]),
        ({"protocol": 3, "location": "/x"}, ["'protocol'"]),
        ({"protocol": "file"}, ["'location'"]),
        ({"protocol": "file", "location": ""}, ["'location'", "empty"]),
        ({"protocol": "file", "location": 5}, ["'location'", "string", "int"]),
        ({"protocol": "file", "location": "/x", "bucket": "b"}, ["'bucket'", "unknown"]),
        ({**S3, "bucket": 12}, ["'bucket'", "string"]),
        ({k: v for k, v in S3.items() if k != "endpoint"}, ["'endpoint'"]),
        ({k: v for k, v in S3.items() if k != "secret_key"}, ["'secret_key'"]),
        ({**S3, "endpoint": ""}, ["'endpoint'", "empty"]),
        ({**S3, "secure": "yes"}, ["'secure'"]),
        ({**S3, "subfolding": (2, 0)}, ["'subfolding'"]),
        ({**S3, "subfolding": "22"}, ["'subfolding'"]),
        ({**S3, "location": "a/../b"}, ["'location'", ".."]),
        ({**S3, "storage_options": "anon"}, ["'storage_options'"]),
        ({**S3, "colour": "blue"}, ["'colour'"]),
    ],
)
def test_bad_specs_name_store_and_key(spec: dict, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        Store.from_spec("shared", spec)
    message = str(info.value)
    assert "'shared'" in message
    for word in words:
        assert word in message
    assert SECRET not in message


def test_wrongly_typed_secret_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        Store.from_spec("shared", {**S3, "secret_key": 1234567890123})
    assert "1234567890123" not in str(info.value) and "'secret_key'" in str(info.value)


def test_repr_and_describe_hide_credentials() -> None:
    store = Store.from_spec("shared", {**S3, "storage_options": {"token": "tok-123456"}})
    for text in (repr(store), store.describe(), repr(store.spec)):
        assert SECRET not in text and "tok-123456" not in text
    assert "localhost:9000" in repr(store) and "datajoint-demo" in repr(store)
    assert set(store.spec.secrets()) == {SECRET, "tok-123456"}


# -- registry --------------------------------------------------------------------------------------
@pytest.fixture
def stores_config(tmp_path):
    clear_store_cache()
    stores = {"local": {"protocol": "file", "location": str(tmp_path / "a")}, "shared": S3}
    with config.override(stores=stores):
        yield stores
    clear_store_cache()


def test_get_store_caches_per_spec(stores_config, tmp_path) -> None:
    first = get_store("local")
    assert get_store("local") is first
    assert first.root.endswith("/a")
    config["stores"] = {
        **stores_config,
        "local": {"protocol": "file", "location": str(tmp_path / "b")},
    }
    second = get_store("local")
    assert second is not first and second.root.endswith("/b")
    config["stores"]["local"]["location"] = str(tmp_path / "c")  # edited in place
    assert get_store("local").root.endswith("/c")


def test_get_store_unknown_name_lists_configured(stores_config) -> None:
    with pytest.raises(StoreError) as info:
        get_store("nope")
    assert "'nope'" in str(info.value)
    assert "'local'" in str(info.value) and "'shared'" in str(info.value)


def test_get_store_bad_spec_is_a_config_error(stores_config) -> None:
    config["stores"] = {"local": {"protocol": "file"}}
    with pytest.raises(ConfigError, match="'location'"):
        get_store("local")
