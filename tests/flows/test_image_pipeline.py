"""The image pipeline flow end to end: SQLite with folder stores, MariaDB with the S3 server.

Images come from the bundled samples over a real HTTP server on 127.0.0.1. Each test works in its
own schema; the fault tests make one image misbehave (two 503s, a truncated body, a 404) and check
what was and was not inserted and what the flow says.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

import dj_flows as dj
from dj_flows.errors import PopulateError
from dj_flows.flows import image_pipeline
from dj_flows.pipelines import images
from dj_flows.prefect import DataJointDatabase, DataJointStore
from dj_flows.prefect.runtime import artifact_key, configured
from dj_flows.samples import FOLDER, bundled, path
from dj_flows.testing.http_server import LoopbackHTTPServer
from tests.flows.prefect_api import artifacts
from tests.support.backends import mysql_settings

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def server():
    with LoopbackHTTPServer(FOLDER) as running:
        yield running


@pytest.fixture
def http(server):
    server.reset()
    return server


@pytest.fixture(scope="module")
def blocks(backend, request, tmp_path_factory):
    """Database block for the module's backend; folder stores, and 'shared' on S3 for MySQL."""
    folder = tmp_path_factory.mktemp("stores")
    local = DataJointStore(name="local", location=str(folder / "local"))
    if backend == "mysql":
        settings = mysql_settings()
        database = DataJointDatabase(
            backend="mysql", host=settings["database.host"], port=settings["database.port"],
            user=settings["database.user"], password=settings["database.password"] or None,
            use_tls=False,
        )
        s3 = request.getfixturevalue("s3_server")
        spec = s3.store_spec(s3.new_bucket("images"))
        shared = DataJointStore(name="shared", **spec)
        return {"database": database, "stores": [shared, local], "s3": (s3, spec["bucket"])}
    database = DataJointDatabase(backend="sqlite", sqlite_path=dj.config["database.sqlite_path"])
    shared = DataJointStore(name="shared", location=str(folder / "shared"))
    return {"database": database, "stores": [shared, local], "s3": None}


def catalog(server, names=None):
    return [
        dict(entry, image_url=server.url_for(entry["filename"]))
        for entry in bundled()
        if names is None or entry["image_name"] in names
    ]


def run(blocks, schema_name, entries, output, **options):
    return image_pipeline(
        schema_name=schema_name, catalog=entries, output=str(output),
        database=blocks["database"], stores=blocks["stores"], **options,
    )


def test_end_to_end_then_nothing_twice(blocks, make_schema, http, tmp_path):
    schema_name = make_schema("img").database
    entries = catalog(http)
    summary = run(blocks, schema_name, entries, tmp_path)

    files, slides = summary["populate"]
    assert (files["made"], slides["made"]) == (4, 4)
    assert summary["errors"] == []
    assert all(http.hits(e["filename"]) == 1 for e in bundled())
    (markdown,) = artifacts(artifact_key("image-pipeline", schema_name))
    assert "OriginalFile: made 4 of 4" in markdown.data and "## Where it went" in markdown.data
    assert summary["parquet"]["url"] in markdown.data and summary["where"]["database"] in markdown.data

    with configured(blocks["database"], blocks["stores"]):
        tables = images.activate(schema_name)
        for entry in bundled():
            key = {"image_number": entry["image_number"]}
            array = (tables["Slide"] & key).fetch1("image_array")
            with Image.open(path(entry["filename"])) as original:
                assert np.array_equal(array, np.asarray(original.convert("RGB")))
            attached = (tables["OriginalFile"] & key).fetch1("image_file", download_path=tmp_path / "dl")
            assert open(attached, "rb").read() == path(entry["filename"]).read_bytes()
        if blocks["s3"] is not None:  # the attachments went to the bucket, not a folder
            s3, bucket = blocks["s3"]
            assert len(s3.filesystem().find(bucket)) == 4

    with Image.open(summary["contact_sheet"]["path"]) as sheet:
        assert sheet.format == "PNG" and sheet.width > 4 * 200
    table = pq.read_table(summary["parquet"]["url"])
    assert table.num_rows == 4
    assert {"image_number", "image_name", "image_url", "image_array"} <= set(table.column_names)
    assert sorted(table.column("image_name").to_pylist()) == sorted(e["image_name"] for e in bundled())

    again = run(blocks, schema_name, catalog(http), tmp_path)
    files, slides = again["populate"]
    assert (files["made"], slides["made"], files["existing"], slides["existing"]) == (0, 0, 4, 4)
    assert all(http.hits(e["filename"]) == 1 for e in bundled())  # nothing downloaded again
    assert again["contact_sheet"]["unchanged"] and again["parquet"]["unchanged"]
    assert "nothing to do" in again["message"] and "skipped" in again["message"]


def test_server_failing_twice_then_succeeding(blocks, make_schema, http, tmp_path):
    schema_name = make_schema("flaky").database
    entries = catalog(http, {"pyramidal", "striatal"})
    http.fail("synthetic_striatal.jpg", times=2, status=503)
    summary = run(blocks, schema_name, entries, tmp_path)
    files = summary["populate"][0]
    assert files["made"] == 2 and files["errors"] == []
    assert files["retried"] == 2  # the same key, retried twice after a transient 503
    assert http.hits("synthetic_striatal.jpg") == 3


def test_truncated_body_fails_clearly_and_inserts_nothing(blocks, make_schema, http, tmp_path):
    schema_name = make_schema("trunc").database
    entries = catalog(http, {"pyramidal", "purkinje"})
    http.truncate("synthetic_purkinje.png", 1000)
    with pytest.raises(PopulateError, match="truncated"):
        run(blocks, schema_name, entries, tmp_path)
    assert http.hits("synthetic_purkinje.png") == 3  # transient: tried 1 + 2 times, no more
    with configured(blocks["database"], blocks["stores"]):
        tables = images.activate(schema_name)
        assert tables["OriginalFile"].fetch("image_number").tolist() == [0]
        assert tables["Slide"].fetch("image_number").tolist() == [0]


def test_not_found_fails_once_and_inserts_nothing(blocks, make_schema, http, tmp_path):
    schema_name = make_schema("missing").database
    entries = catalog(http, {"pyramidal", "granule"})
    http.missing("synthetic_granule.png")
    summary = run(blocks, schema_name, entries, tmp_path, allow_errors=True)
    (error,) = summary["errors"]
    assert error["key"] == {"image_number": 3}
    assert "HTTP 404" in error["error"] and error["tries"] == 1 and not error["transient"]
    assert http.hits("synthetic_granule.png") == 1  # a 404 is never retried
    assert "1 FAILED" in summary["message"]
    with configured(blocks["database"], blocks["stores"]):
        tables = images.activate(schema_name)
        assert 3 not in tables["OriginalFile"].fetch("image_number").tolist()
        assert len(tables["Slide"]) == 1
    with pytest.raises(PopulateError, match="HTTP 404"):  # and without allow_errors the run fails
        run(blocks, schema_name, entries, tmp_path)


def test_new_loopback_port_refreshes_urls_of_images_not_yet_downloaded(blocks, make_schema, http, tmp_path):
    schema_name = make_schema("urls").database
    first = catalog(http, {"pyramidal", "striatal"})
    http.missing("synthetic_striatal.jpg")
    run(blocks, schema_name, first, tmp_path, allow_errors=True)
    moved = [dict(e, image_url=e["image_url"].replace("synthetic_", "./synthetic_")) for e in first]
    http.reset()
    summary = run(blocks, schema_name, moved, tmp_path)
    assert summary["catalog"] == {"inserted": 0, "updated": 1, "kept": 1}
    with configured(blocks["database"], blocks["stores"]):
        web = images.activate(schema_name)["WebImage"]
        urls = dict(zip(*web.fetch("image_name", "image_url")))
    assert urls["striatal"] == moved[1]["image_url"]  # refreshed: it had not been downloaded
    assert urls["pyramidal"] == first[0]["image_url"]  # kept: its file is in OriginalFile
