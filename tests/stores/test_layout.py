"""DataJoint 0.14's hashes and object paths, byte for byte: compared with datajoint 0.14.10's own
functions (its ExternalTable path methods are called on a plain namespace holding a spec)."""

from __future__ import annotations

import functools
import types
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dj_flows.stores import (
    Store,
    attachment_uuid,
    filepath_uuid,
    object_key,
    subfold,
    uuid_from_buffer,
    uuid_from_file,
)
from dj_flows.stores.layout import location_prefix

dj_hash = pytest.importorskip("datajoint.hash")
dj_external = pytest.importorskip("datajoint.external")

pytestmark = pytest.mark.interop

LOCATIONS = [
    "",
    "dj",
    "dj/store",
    "/dj/store",
    "dj/store/",
    "C:\\dj\\store",
    "C:dj",
    "\\\\srv\\share\\x",
    "my:bucket/x",
    "a:b/c",
    "./x",
    "x/./y",
    "x//y",
    "/",
    "\\x\\y",
    "dj store/ü",
]
FOLDS = [(2, 2), (), (1,), (3, 2, 1), (2, 2, 2, 2)]
names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\\0"),
    min_size=1,
    max_size=40,
)


def dj_table(protocol: str, location: str, database: str, folds: tuple[int, ...]):
    """An object with just what datajoint's ExternalTable path methods read."""
    table = types.SimpleNamespace(
        spec={"protocol": protocol, "location": location, "subfolding": folds}, database=database
    )
    table._make_external_filepath = functools.partial(
        dj_external.ExternalTable._make_external_filepath, table
    )
    return table


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=5000), init=st.text(max_size=30))
def test_uuid_from_buffer_matches(data: bytes, init: str) -> None:
    assert uuid_from_buffer(data, init) == dj_hash.uuid_from_buffer(data, init_string=init)


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=70000), name=names)
def test_attachment_uuid_matches_datajoint_upload(tmp_path_factory, data: bytes, name: str) -> None:
    path = tmp_path_factory.mktemp("att") / "file.bin"
    path.write_bytes(data)
    expected = dj_hash.uuid_from_file(path, init_string=name + "\0")  # external.upload_attachment
    assert attachment_uuid(name, data) == expected
    assert uuid_from_file(path, name + "\0") == expected


def test_filepath_uuid_matches() -> None:
    for relative in ["a.txt", "sub/dir/file.dat", "ü/ß"]:
        assert filepath_uuid(relative) == dj_hash.uuid_from_buffer(init_string=relative)


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=20), folds=st.lists(st.integers(1, 4), max_size=4))
def test_subfold_matches(name: str, folds: list[int]) -> None:
    assert subfold(name, tuple(folds)) == dj_external.subfold(name, tuple(folds))


@pytest.mark.parametrize("folds", FOLDS)
@pytest.mark.parametrize("attachment", [None, "photo.jpg", "archive.tar.gz", "no_extension"])
def test_object_key_matches_make_uuid_path(folds, attachment) -> None:
    for _ in range(20):
        hashed = uuid.uuid4()
        table = dj_table("s3", "", "my_db", folds)
        suffix = "." + attachment if attachment else ""
        expected = str(dj_external.ExternalTable._make_uuid_path(table, hashed, suffix))
        assert object_key("my_db", hashed.hex, folds, attachment) == expected


@pytest.mark.parametrize("location", LOCATIONS)
@pytest.mark.parametrize("protocol", ["s3", "file"])
def test_location_prefix_matches(protocol: str, location: str) -> None:
    expected = str(
        dj_external.ExternalTable._make_external_filepath(
            types.SimpleNamespace(spec={"protocol": protocol, "location": location}), "KEY"
        )
    )
    prefix = location_prefix(protocol, location)
    if prefix in ("", "."):
        ours = "KEY"
    elif prefix == "/":
        ours = "/KEY"
    else:
        ours = prefix + "/KEY"
    assert expected == ours


@pytest.mark.parametrize("location", LOCATIONS)
def test_s3_store_path_is_datajoint_bucket_key(location: str) -> None:
    """The s3fs path the store writes = bucket + the object name DataJoint gives minio."""
    store = Store.from_spec(
        "shared",
        dict(
            protocol="s3",
            endpoint="localhost:9000",
            access_key="a",
            secret_key="s",
            bucket="demo",
            location=location,
        ),
    )
    hashed = uuid.uuid4()
    dj_path = dj_external.ExternalTable._make_uuid_path(
        dj_table("s3", location, "lab_db", (2, 2)), hashed, ".img.png"
    )
    assert store.path(object_key("lab_db", hashed.hex, store.subfolding, "img.png")) == (
        f"demo/{dj_path}"
    )


def test_file_store_path_is_datajoint_file_path(tmp_path: Path) -> None:
    store = Store.from_spec("local", {"protocol": "file", "location": str(tmp_path)})
    hashed = uuid.uuid4()
    dj_path = dj_external.ExternalTable._make_uuid_path(
        dj_table("file", str(tmp_path), "lab_db", (2, 2)), hashed, ""
    )
    assert store.path(object_key("lab_db", hashed.hex)) == str(dj_path)


def test_object_key_rejects_separators() -> None:
    with pytest.raises(ValueError):
        object_key("db", uuid.uuid4().hex, (2, 2), "a/b.txt")
    with pytest.raises(ValueError):
        object_key("", uuid.uuid4().hex)
