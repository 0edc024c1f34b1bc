"""External blobs, attachments and filepaths shared with DataJoint 0.14.10: the same MariaDB, the
same S3 bucket (SeaweedFS; DataJoint talks to it through minio's client) and the same folder
stores, read and written by both libraries.

1. A table this engine declares and fills (internal, folder-store and S3 blobs and attachments,
   and a staged filepath) is fetched by DataJoint, which then inserts into it; this engine fetches
   DataJoint's rows. The same content inserted by both is tracked (and stored) once.
2. A schema whose table and tracking tables DataJoint declares and fills is read by this engine,
   which then inserts into it, and DataJoint reads those rows.
3. schema.external of both libraries agree on the objects (fetch_external_paths, used/unused), and
   DataJoint's external delete cleans up what this engine stored.
"""

from __future__ import annotations

import os
import types
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import dj_flows
from dj_flows.connection import CONNECTION_KEYS
from tests.support.backends import mysql_settings, require_mysql, unique_name

pytestmark = [
    pytest.mark.interop,
    pytest.mark.mysql,
    pytest.mark.s3,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

DEFINITION = """
# blobs and attachments in every kind of storage
id : int
---
b0 : longblob
b1 : blob@shared
b2 : blob@local
a0 : attach
a1 : attach@shared
a2 : attach@local
f = null : filepath@staged
"""


@pytest.fixture(scope="module")
def setup(s3_server, tmp_path_factory) -> Iterator[types.SimpleNamespace]:
    """Both libraries configured for the same database server and the same stores."""
    require_mysql()
    folder = tmp_path_factory.mktemp("interop-stores")
    (folder / "stage").mkdir()
    bucket = s3_server.new_bucket("interop")
    stores = {
        "shared": s3_server.store_spec(bucket, location="lab/data"),
        "local": {"protocol": "file", "location": str(folder / "local")},
        "staged": {
            "protocol": "file",
            "location": str(folder / "staged"),
            "stage": str(folder / "stage"),
        },
    }
    (folder / "local").mkdir()  # DataJoint wants a file store's folder to exist
    (folder / "staged").mkdir()
    saved = {k: dj_flows.config[k] for k in (*CONNECTION_KEYS, "safemode", "stores", "cache")}
    dj_flows.config.update(mysql_settings())
    dj_flows.config.update({"safemode": False, "stores": stores, "cache": None})

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import datajoint

    settings = mysql_settings()
    their_saved = {k: datajoint.config.get(k) for k in ("stores", "cache", "safemode")}
    datajoint.config.update(
        {
            "database.host": f"{settings['database.host']}:{settings['database.port']}",
            "database.user": settings["database.user"],
            "database.password": settings["database.password"],
            "database.use_tls": False,
            "safemode": False,
            "loglevel": "WARNING",
            "stores": {name: dict(spec) for name, spec in stores.items()},
            "cache": None,
        }
    )
    connection = datajoint.conn(reset=True)
    previous = os.environ.get("DJ_SUPPORT_FILEPATH_MANAGEMENT")
    os.environ["DJ_SUPPORT_FILEPATH_MANAGEMENT"] = "TRUE"
    created: list[str] = []
    try:
        yield types.SimpleNamespace(
            dj=datajoint,
            folder=folder,
            stage=folder / "stage",
            bucket=bucket,
            s3=s3_server,
            created=created,
        )
    finally:
        if previous is None:
            os.environ.pop("DJ_SUPPORT_FILEPATH_MANAGEMENT", None)
        else:
            os.environ["DJ_SUPPORT_FILEPATH_MANAGEMENT"] = previous
        connection.close()  # before dropping: DataJoint's connection may hold metadata locks
        existing = set(dj_flows.list_schemas())
        for name in created:
            if name in existing:
                dj_flows.Schema(name, create_schema=False).drop(force=True)
        datajoint.config.update(their_saved)
        for key, value in saved.items():
            dj_flows.config[key] = value


class Values:
    """Rows whose values each library must read back exactly."""

    def __init__(self, folder: Path, stage: Path, database: str, first: int, tag: str) -> None:
        self.rows: list[dict] = []
        self.files: dict[tuple[int, str], bytes] = {}
        rng = np.random.default_rng(first)
        for i in range(first, first + 3):
            row: dict = {
                "id": i,
                "b0": rng.standard_normal((3, 4)),
                "b1": rng.integers(0, 1000, size=50_000, dtype=np.int64),  # compressed blob
                "b2": {"name": f"row {i}", "values": np.arange(i, dtype=np.int16)},
            }
            for column in ("a0", "a1", "a2"):
                data = rng.bytes(2000 + i) + tag.encode()
                path = folder / f"{tag}-{column}" / f"{column}_{i}.bin"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                row[column] = str(path)
                self.files[(i, column)] = data
            staged = stage / database / f"{tag}_{i}.dat"
            staged.parent.mkdir(parents=True, exist_ok=True)
            staged.write_bytes(rng.bytes(1500))
            row["f"] = str(staged)
            self.files[(i, "f")] = staged.read_bytes()
            self.rows.append(row)

    def check(self, fetched: list[dict]) -> None:
        """`fetched`: rows as dicts, by either library."""
        by_id = {int(r["id"]): r for r in fetched}
        for row in self.rows:
            got = by_id[row["id"]]
            np.testing.assert_array_equal(got["b0"], row["b0"])
            np.testing.assert_array_equal(got["b1"], row["b1"])
            assert got["b2"]["name"] == row["b2"]["name"]
            np.testing.assert_array_equal(got["b2"]["values"], row["b2"]["values"])
            for column in ("a0", "a1", "a2", "f"):
                path = Path(got[column])
                assert path.read_bytes() == self.files[(row["id"], column)], column
                if column != "f":
                    assert path.name == Path(row[column]).name


def _declare(lib, name: str, context: dict | None = None):
    schema = lib.Schema(name)
    table = type("Item", (lib.Manual,), {"definition": DEFINITION})
    schema(table, context=context or {})
    return schema, table


def _wipe_stage(values: Values) -> None:
    for row in values.rows:
        Path(row["f"]).unlink()


def test_datajoint_reads_and_extends_what_we_stored(setup, tmp_path):
    dj = setup.dj
    name = unique_name("djx_ours")
    setup.created.append(name)
    ours_schema, Ours = _declare(dj_flows, name)
    mine = Values(tmp_path / "in", setup.stage, name, 0, "ours")
    Ours.insert(mine.rows)
    _wipe_stage(mine)  # both libraries must put staged files back from the store

    their_schema, Theirs = _declare(dj, name)
    mine.check(Theirs.fetch(as_dict=True, download_path=str(tmp_path / "dj-out")))

    _wipe_stage(mine)
    theirs = Values(tmp_path / "in", setup.stage, name, 10, "theirs")
    for row in theirs.rows:
        Theirs.insert1(row)
    _wipe_stage(theirs)
    fetched = Ours.fetch(as_dict=True, download_path=tmp_path / "our-out")
    mine.check(fetched)
    theirs.check(fetched)

    # the same content from both sides is one tracking row and one object
    shared = ours_schema.external["shared"]
    before = len(shared)
    again = dict(theirs.rows[0], id=99)
    again["f"] = None
    for column in ("a0", "a1", "a2"):
        Path(again[column]).write_bytes(theirs.files[(10, column)])
    Theirs.insert1(again)
    assert len(shared) == before
    assert len(their_schema.external["shared"]) == before

    # both see the same objects at the same paths
    ours_paths = {(h, str(p)) for h, p in shared.fetch_external_paths()}
    their_paths = {(h, str(p)) for h, p in their_schema.external["shared"].fetch_external_paths()}
    assert ours_paths == their_paths and len(ours_paths) == 2 * 6  # b1 and a1 of six rows
    fs = setup.s3.filesystem()
    for _, path in ours_paths:
        assert fs.exists(f"{setup.bucket}/{path}")


def test_we_read_and_extend_what_datajoint_stored(setup, tmp_path):
    dj = setup.dj
    name = unique_name("djx_theirs")
    setup.created.append(name)
    their_schema, Theirs = _declare(dj, name)  # DataJoint declares the tracking tables too
    theirs = Values(tmp_path / "in", setup.stage, name, 20, "theirs")
    for row in theirs.rows:
        Theirs.insert1(row)
    _wipe_stage(theirs)

    ours_schema, Ours = _declare(dj_flows, name)
    fetched = Ours.fetch(as_dict=True, download_path=tmp_path / "our-out")
    theirs.check(fetched)

    mine = Values(tmp_path / "in", setup.stage, name, 30, "ours")
    Ours.insert(mine.rows)
    _wipe_stage(theirs)
    _wipe_stage(mine)
    fetched = Theirs.fetch(as_dict=True, download_path=str(tmp_path / "dj-out"))
    theirs.check(fetched)
    mine.check(fetched)

    # DataJoint's clean-up API on what this engine stored, and the other way round
    (Ours & "id >= 30").delete()
    assert len(their_schema.external["local"].unused()) == 6  # b2, a2 of three rows
    assert len(ours_schema.external["local"].unused()) == 6
    doomed = [p for _, p in ours_schema.external["local"].unused().fetch_external_paths()]
    their_schema.external["local"].delete(delete_external_files=True)
    assert not [p for p in doomed if os.path.exists(p)]
    (Theirs & "id >= 20").delete()
    paths = [str(p) for _, p in their_schema.external["shared"].unused().fetch_external_paths()]
    assert len(paths) == 12  # b1, a1 of the six rows, theirs and ours
    ours_schema.external["shared"].delete(delete_external_files=True)
    fs = setup.s3.filesystem()
    assert not [p for p in paths if fs.exists(f"{setup.bucket}/{p}")]
    assert len(their_schema.external["shared"]) == 0


def test_datajoint_cache_folder_is_readable_by_us(setup, tmp_path):
    """DataJoint and this engine share dj.config['cache'] folders (same layout, by hash)."""
    dj = setup.dj
    name = unique_name("djx_cache")
    setup.created.append(name)
    _, Theirs = _declare(dj, name)
    values = Values(tmp_path / "in", setup.stage, name, 40, "cache")
    for row in values.rows:
        Theirs.insert1(row)
    cache = tmp_path / "cache"
    dj.config["cache"] = str(cache)
    try:
        Theirs.fetch("b1", "b2")  # DataJoint caches external blobs
    finally:
        dj.config["cache"] = None
    cached = {p.name for p in cache.rglob("*") if p.is_file()}
    assert len(cached) == 6
    keys = {uuid.UUID(bytes=bytes(r[0])).hex for r in _hashes(name, ("b1", "b2"))}
    assert cached == keys

    fs = setup.s3.filesystem()
    _, Ours = _declare(dj_flows, name)
    saved = {p: fs.cat_file(p) for p in fs.find(f"{setup.bucket}/lab/data/{name}")}
    fs.rm(list(saved))
    local = setup.folder / "local" / name
    kept = {p: p.read_bytes() for p in local.rglob("*") if p.is_file()}
    for path in kept:
        path.unlink()
    try:
        with dj_flows.config(cache=str(cache)):
            b1, b2 = Ours.fetch("b1", "b2", order_by="id")
    finally:
        fs.pipe(saved)
        for path, data in kept.items():
            path.write_bytes(data)
    for got, row in zip(b1, values.rows):
        np.testing.assert_array_equal(got, row["b1"])
    assert [b["name"] for b in b2] == [r["b2"]["name"] for r in values.rows]


def _hashes(database: str, columns: tuple[str, ...]) -> list[tuple]:
    connection = dj_flows.conn()
    quote = connection.backend.quote
    found = []
    for column in columns:
        sql = f"SELECT {quote(column)} FROM {connection.backend.table_ref(database, 'item')}"
        found += list(connection.query(sql).fetchall())
    return found
