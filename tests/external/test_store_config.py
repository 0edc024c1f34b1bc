"""Stores as dj.config['stores'] defines them: bad names and unreachable stores fail at first use
naming the store and endpoint (never the secret); layout options (location, subfolding) and any
fsspec filesystem (storage_options) work end to end."""

from __future__ import annotations

import socket
import traceback
import uuid

import numpy as np
import pytest

import dj_flows as dj
from dj_flows.errors import DataJointError, StoreError
from dj_flows.stores import clear_store_cache, get_store
from dj_flows.stores.layout import uuid_from_buffer

from .helpers import objects_under, write

pytestmark = pytest.mark.s3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def full_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


@pytest.fixture
def extra_store(stores):
    """Add stores to dj.config['stores'] for one test."""
    added: list[str] = []

    def add(name: str, spec: dict) -> str:
        dj.config["stores"] = {**dj.config["stores"], name: spec}
        added.append(name)
        return name

    yield add
    dj.config["stores"] = {k: v for k, v in dj.config["stores"].items() if k not in added}
    clear_store_cache()


def test_unknown_store_in_a_definition_is_named(stores, make_schema):
    schema = make_schema("cfg")

    class Broken(dj.Manual):
        definition = """
        id : int
        ---
        data : blob@nowhere
        """

    with pytest.raises(DataJointError) as info:
        schema(Broken)
    assert "nowhere" in str(info.value)
    assert not dj.FreeTable(dj.conn(), schema.database, "broken").is_declared


def test_unreachable_endpoint_names_store_and_endpoint_not_secret(
    stores, make_schema, extra_store, s3_server, tmp_path
):
    port = free_port()
    secret = "never-show-this-" + uuid.uuid4().hex
    extra_store(
        "offline",
        dict(
            protocol="s3",
            endpoint=f"127.0.0.1:{port}",
            access_key="someone",
            secret_key=secret,
            bucket="nothing-here",
            location="x",
            storage_options={"config_kwargs": {"retries": {"max_attempts": 1}}},
        ),
    )
    schema = make_schema("cfg")

    @schema
    class Offline(dj.Manual):
        definition = """
        id : int
        ---
        data : blob@offline
        """

    with pytest.raises(StoreError) as info:  # the first use: an insert
        Offline.insert1({"id": 1, "data": np.arange(3)})
    text = full_text(info.value)
    assert "'offline'" in str(info.value) and f"127.0.0.1:{port}" in str(info.value)
    assert secret not in text
    assert not Offline()


def test_missing_bucket_is_named(stores, make_schema, extra_store, s3_server):
    bucket = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    extra_store("nobucket", s3_server.store_spec(bucket))
    schema = make_schema("cfg")

    @schema
    class NoBucket(dj.Manual):
        definition = """
        id : int
        ---
        data : blob@nobucket
        """

    with pytest.raises(StoreError) as info:
        NoBucket.insert1({"id": 1, "data": np.arange(3)})
    text = str(info.value)
    assert "'nobucket'" in text and bucket in text and "does not exist" in text
    assert s3_server.endpoint in text and s3_server.secret_key not in full_text(info.value)


def test_layout_options_location_and_subfolding(
    stores, make_schema, extra_store, s3_server, tmp_path
):
    extra_store("deep", s3_server.store_spec(stores.bucket, location="/lab/data", subfolding=[3]))
    extra_store("flat", {"protocol": "file", "location": str(tmp_path / "flat"), "subfolding": []})
    schema = make_schema("cfg")

    @schema
    class Laid(dj.Manual):
        definition = """
        id : int
        ---
        deep : blob@deep
        flat : attach@flat
        """

    value = np.arange(10)
    Laid.insert1({"id": 1, "deep": value, "flat": write(tmp_path / "in" / "a.txt", b"A")})
    from dj_flows.codecs.blob import pack

    hash_ = uuid_from_buffer(pack(value)).hex
    fs = s3_server.filesystem()
    assert fs.exists(f"{stores.bucket}/lab/data/{schema.database}/{hash_[:3]}/{hash_}")
    (flat,) = objects_under("flat")
    assert flat.startswith(f"{schema.database}/") and flat.count("/") == 1
    assert flat.endswith(".a.txt")
    got = Laid.fetch1("deep", "flat", download_path=tmp_path / "out")
    assert np.array_equal(got[0], value) and open(got[1], "rb").read() == b"A"


def test_any_fsspec_filesystem_with_storage_options(stores, make_schema, extra_store, tmp_path):
    extra_store(
        "mem",
        {
            "protocol": "memory",
            "location": f"/dj-{uuid.uuid4().hex[:8]}",
            "storage_options": {"skip_instance_cache": False},
        },
    )
    schema = make_schema("cfg")

    @schema
    class Anywhere(dj.Manual):
        definition = """
        id : int
        ---
        m : blob@mem
        d : attach@mem
        """

    Anywhere.insert(
        [
            {"id": i, "m": np.full(3, i), "d": write(tmp_path / f"d{i}.txt", b"%d" % i)}
            for i in range(5)
        ]
    )
    blobs, docs = Anywhere.fetch("m", "d", order_by="id", download_path=tmp_path / "out")
    assert [b[0] for b in blobs] == list(range(5))
    assert [open(d, "rb").read() for d in docs] == [b"%d" % i for i in range(5)]
    assert len(schema.external["mem"]) == 10
    assert len(list(get_store("mem").list())) == 10  # the objects live in fsspec's memory fs


def test_fetch_from_a_store_that_went_away_names_it(
    stores, make_schema, extra_store, s3_server, tmp_path
):
    """Rows stored while the endpoint answered; then the store points at a dead port."""
    spec = s3_server.store_spec(stores.bucket, location="moving")
    extra_store("moving", spec)
    schema = make_schema("cfg")

    @schema
    class Moving(dj.Manual):
        definition = """
        id : int
        ---
        data : blob@moving
        doc : attach@moving
        """

    Moving.insert1({"id": 1, "data": np.arange(5), "doc": write(tmp_path / "d.txt", b"d")})
    port = free_port()
    dj.config["stores"] = {
        **dj.config["stores"],
        "moving": {
            **spec,
            "endpoint": f"127.0.0.1:{port}",
            "storage_options": {"config_kwargs": {"retries": {"max_attempts": 1}}},
        },
    }
    with pytest.raises(StoreError) as direct:  # what the store itself says
        get_store("moving").get("anything")
    for column in ("data", "doc"):
        with pytest.raises(StoreError) as info:
            (Moving & {"id": 1}).fetch1(column, download_path=tmp_path / "out")
        text = str(info.value)
        assert type(info.value) is type(direct.value)  # a transient fault stays transient
        assert "'moving'" in text and f"127.0.0.1:{port}" in text and repr(column) in text
        assert "'id': 1" in text and s3_server.secret_key not in full_text(info.value)
