"""The thin flows over the engine's export and GC calls, on both backends with folder stores."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

import dj_flows as dj
from dj_flows.flows import export_flow, external_gc_flow
from dj_flows.pipelines import images
from dj_flows.prefect import DataJointStore
from dj_flows.samples import FOLDER, bundled
from dj_flows.testing.http_server import LoopbackHTTPServer

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def stores(backend, tmp_path_factory):
    folder = tmp_path_factory.mktemp("stores")
    blocks = [DataJointStore(name=n, location=str(folder / n)) for n in ("shared", "local")]
    saved = dj.config["stores"]
    for block in blocks:
        block.apply()
    yield blocks
    dj.config["stores"] = saved


@pytest.fixture(scope="module")
def populated(stores, make_schema):
    """A schema with the image pipeline run on the bundled samples (engine calls, no flow)."""
    name = make_schema("gcx").database
    tables = images.activate(name)
    with LoopbackHTTPServer(FOLDER) as server:
        images.load_catalog(tables, [dict(e, image_url=server.url_for(e["filename"])) for e in bundled()])
        tables["OriginalFile"].populate()
    tables["Slide"].populate()
    return name, tables


def test_export_flow_writes_the_restricted_projected_join(populated, stores, tmp_path):
    name, tables = populated
    report = export_flow(
        schema_name=name, tables=["WebImage", "Slide"], url=str(tmp_path / "two.parquet"),
        restriction=[{"image_number": 1}, {"image_number": 2}], stores=stores,
    )
    assert report["rows"] == 2 and report["files"] == [str(tmp_path / "two.parquet")]
    table = pq.read_table(tmp_path / "two.parquet")
    assert sorted(table.column("image_number").to_pylist()) == [1, 2]
    assert "image_array" in table.column_names

    names = export_flow(
        schema_name=name, tables=["#web_image"], url=str(tmp_path / "names.parquet"),
        attributes=["image_name"], restriction="image_number < 3",
    )
    assert names["rows"] == 3
    assert pq.read_table(tmp_path / "names.parquet").column_names == ["image_number", "image_name"]


def test_gc_flow_reports_first_then_removes_only_unused(populated, stores):
    name, tables = populated
    slide = tables["Slide"]
    local = dj.Schema(name).external["local"]
    before = len(local)
    (slide & {"image_number": 0}).delete()
    assert len(local) == before  # deleting rows leaves the objects: that is what GC is for

    dry = external_gc_flow(schema_name=name, grace_seconds=0, stores=stores)
    by_store = {r["store"]: r for r in dry}
    assert set(by_store) == {"shared", "local"}
    assert by_store["local"]["unused"]["count"] == 1 and by_store["shared"]["unused"]["count"] == 0
    assert len(local) == before  # a dry run removes nothing

    done = external_gc_flow(
        schema_name=name, store_names=["local"], grace_seconds=0, dry_run=False, stores=stores
    )
    assert done[0]["unused"]["deleted_rows"] == 1 and done[0]["unused"]["deleted_files"] == 1
    assert len(local) == before - 1
    assert len(slide.fetch("image_array")) == 3  # the slides in use are all still readable
