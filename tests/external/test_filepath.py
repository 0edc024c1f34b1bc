"""filepath@store: files under the store's stage folder keep their relative path in the store;
fetch puts them back under the stage (verified), and a changed file cannot silently replace the
tracked version."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import dj_flows as dj
from dj_flows.errors import DataValueError, StoreError
from dj_flows.stores import get_store
from dj_flows.stores.layout import filepath_uuid, uuid_from_buffer

from .helpers import write

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def schema(stores, make_schema):
    return make_schema("fp")


@pytest.fixture(scope="module")
def Scan(schema):
    @schema
    class Scan(dj.Manual):
        definition = """
        scan : int
        ---
        raw : filepath@staged
        """

    return Scan


def test_round_trip_through_the_stage(stores, schema, Scan):
    relative = f"{schema.database}/session 1/scan'001.raw"
    staged = write(stores.stage / relative, os.urandom(5000))
    data = staged.read_bytes()
    Scan.insert1({"scan": 1, "raw": staged})

    store = get_store("staged")
    assert store.get(relative) == data  # kept under its relative path, not a hash
    row = schema.external["staged"].tracked([filepath_uuid(relative).bytes])
    size, attachment_name, filepath, contents_hash = row[filepath_uuid(relative).bytes]
    assert (size, attachment_name, filepath) == (5000, None, relative)
    assert bytes(contents_hash) == uuid_from_buffer(data).bytes

    inode = staged.stat().st_ino
    assert (Scan & {"scan": 1}).fetch1("raw") == str(staged)
    assert staged.stat().st_ino == inode  # the staged copy matched: nothing written

    staged.unlink()
    assert (Scan & {"scan": 1}).fetch1("raw") == str(staged)  # put back from the store
    assert staged.read_bytes() == data

    staged.write_bytes(b"edited locally")
    assert Path((Scan & {"scan": 1}).fetch1("raw")).read_bytes() == data  # the tracked version


def test_reinserting_the_same_file_uploads_nothing(stores, schema, Scan):
    relative = f"{schema.database}/again.raw"
    staged = write(stores.stage / relative, b"same bytes")
    Scan.insert1({"scan": 2, "raw": staged})
    stored = Path(get_store("staged").root) / relative
    inode = stored.stat().st_ino
    Scan.insert1({"scan": 3, "raw": staged})  # same path, same contents
    assert stored.stat().st_ino == inode  # a rewrite would have renamed a new file into place
    assert len(schema.external["staged"] & {"filepath": relative}) == 1


def test_a_changed_file_cannot_replace_the_tracked_version(stores, schema, Scan):
    relative = f"{schema.database}/changing.raw"
    staged = write(stores.stage / relative, b"version 1")
    Scan.insert1({"scan": 4, "raw": staged})
    staged.write_bytes(b"version 2")
    with pytest.raises(DataValueError, match="different version"):
        Scan.insert1({"scan": 5, "raw": staged})
    assert get_store("staged").get(relative) == b"version 1"
    assert not (Scan & {"scan": 5})


def test_files_outside_the_stage_or_missing_are_refused(stores, Scan, tmp_path):
    outside = write(tmp_path / "elsewhere.raw", b"x")
    with pytest.raises(DataValueError, match="not inside the stage"):
        Scan.insert1({"scan": 6, "raw": outside})
    with pytest.raises(DataValueError, match="not a file"):
        Scan.insert1({"scan": 7, "raw": stores.stage / "missing.raw"})
    write(stores.stage.parent / "elsewhere.raw", b"y")
    sneaky = stores.stage / ".." / "elsewhere.raw"
    with pytest.raises(DataValueError, match="not inside the stage"):
        Scan.insert1({"scan": 8, "raw": sneaky})


def test_hostile_tracked_filepath_cannot_write_outside_the_stage(stores, schema, Scan):
    """A tracking row whose filepath climbs out of the stage (written by hand) fails to fetch."""
    relative = "../../outside.raw"
    hash_ = filepath_uuid(relative)
    schema.external["staged"].track(
        [(hash_.bytes, 3, None, relative, uuid_from_buffer(b"bad").bytes)]
    )
    table = Scan()
    quote = table.connection.backend.quote
    from dj_flows.backends import PH

    table.connection.query(
        f"INSERT INTO {table.full_table_name} ({quote('scan')}, {quote('raw')}) VALUES ({PH}, {PH})",
        (9, hash_.bytes),
    )
    with pytest.raises(StoreError) as info:
        (Scan & {"scan": 9}).fetch1("raw")
    assert "'raw'" in str(info.value) and str(hash_) in str(info.value)
    assert not (stores.stage.parent.parent / "outside.raw").exists()
