"""Attachments (internal, folder store, S3): DataJoint's download rule, names that are data not
paths, and bad inputs. Hostile names are crafted by writing the stored bytes / tracking rows
directly, as a buggy or malicious client could."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import dj_flows as dj
from dj_flows.backends import PH
from dj_flows.codecs.attach import encode_internal, safe_name
from dj_flows.errors import DataValueError, StoreError
from dj_flows.stores import get_store
from dj_flows.stores.layout import attachment_uuid, subfold

from .helpers import objects_under, write

pytestmark = pytest.mark.s3
COLUMNS = {"internal": "a0", "local": "a1", "shared": "a2"}


@pytest.fixture(scope="module")
def schema(stores, make_schema):
    return make_schema("att")


@pytest.fixture(scope="module")
def Doc(schema):
    @schema
    class Doc(dj.Manual):
        definition = """
        id : int
        ---
        a0 = null : attach
        a1 = null : attach@local
        a2 = null : attach@shared
        """

    return Doc


def files_in(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("where", list(COLUMNS))
def test_download_rule_reuses_same_content_and_never_overwrites(Doc, where, tmp_path):
    column = COLUMNS[where]
    key = {"id": 100 + list(COLUMNS).index(where)}
    source = write(tmp_path / "in" / "report.txt", b"the attached report " + where.encode())
    Doc.insert1({**key, column: source})
    out = tmp_path / "out"

    first = (Doc & key).fetch1(column, download_path=out)
    assert Path(first) == out / "report.txt" and Path(first).read_bytes() == source.read_bytes()
    inode = os.stat(first).st_ino
    again = (Doc & key).fetch1(column, download_path=out)
    assert again == first and os.stat(again).st_ino == inode  # same content: reused, not rewritten

    Path(first).write_bytes(b"someone else's report")  # a different file takes the name
    aliased = (Doc & key).fetch1(column, download_path=out)
    assert Path(aliased) == out / "report_0000.txt"
    assert Path(aliased).read_bytes() == source.read_bytes()
    assert Path(first).read_bytes() == b"someone else's report"  # never overwritten
    assert (Doc & key).fetch1(column, download_path=out) == aliased  # the alias is reused
    assert files_in(out) == {"report.txt", "report_0000.txt"}


def test_default_download_path_is_the_working_folder(Doc, tmp_path, monkeypatch):
    source = write(tmp_path / "in" / "here.bin", os.urandom(100))
    Doc.insert1({"id": 110, "a0": source, "a1": source, "a2": source})
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    paths = (Doc & {"id": 110}).fetch1("a0", "a1", "a2")
    assert {os.path.abspath(p) for p in paths} == {str(work / "here.bin")}
    assert (work / "here.bin").read_bytes() == source.read_bytes()


def test_names_with_quotes_and_unicode_round_trip(Doc, schema, tmp_path):
    names = ['it\'s a "quote".txt', "naïve 文件 ; DROP TABLE x.bin", "`back`tick`.dat"]
    rows = []
    for i, name in enumerate(names):
        source = write(tmp_path / "in" / name, f"contents {i}".encode())
        rows.append({"id": 120 + i, "a0": source, "a1": source, "a2": source})
    Doc.insert(rows)
    out = tmp_path / "out"
    for i, name in enumerate(names):
        for path in (Doc & {"id": 120 + i}).fetch1("a0", "a1", "a2", download_path=out):
            assert Path(path) == out / name and Path(path).read_text() == f"contents {i}"
    tracking = schema.external["local"]
    assert len(tracking & {"attachment_name": names[0]}) == 1  # names are bound, never spliced


def test_missing_attachment_file_fails_before_any_upload(Doc, schema, tmp_path):
    before = {store: objects_under(store) for store in ("local", "shared")}
    tracked = {s: len(schema.external[s]) for s in before}
    good = write(tmp_path / "good.txt", b"fine")
    with pytest.raises(DataValueError) as info:
        Doc.insert(
            [
                {"id": 130, "a1": good, "a2": good},
                {"id": 131, "a1": tmp_path / "missing.txt", "a2": good},
            ]
        )
    assert "a1" in str(info.value) and "missing.txt" in str(info.value)
    assert not (Doc & "id in (130, 131)")
    assert {store: objects_under(store) for store in before} == before
    assert {s: len(schema.external[s]) for s in before} == tracked
    with pytest.raises(DataValueError):
        Doc.insert1({"id": 132, "a0": tmp_path})  # a folder is not an attachment
    with pytest.raises(DataValueError):
        Doc.insert1({"id": 133, "a2": 42})


HOSTILE = [
    "../../escaped.txt",
    "/etc/passwd",
    "..",
    "...",
    "",
    "C:evil.txt",
    "C:\\Windows\\win.ini",
    "\\\\server\\share\\x.txt",
    "q\"uo'te`; DROP TABLE x;--.txt",
    "ctrl\x01\x1f\x7fchars.txt",
    "a" * 300 + ".txt",
    "ü" * 200 + ".bin",
    "con:.txt",
    "nul\x00byte.txt",
]
EXTERNAL = [name for name in HOSTILE if len(name) <= 255]  # the tracking column is varchar(255)


def _set(Doc, column: str, key: dict, value: bytes) -> None:
    table = Doc()
    quote = table.connection.backend.quote
    table.connection.query(
        f"UPDATE {table.full_table_name} SET {quote(column)} = {PH} WHERE {quote('id')} = {PH}",
        (value, key["id"]),
    )


def _assert_inside(path: str, out: Path, data: bytes) -> None:
    placed = Path(path).resolve()
    assert placed.parent == out.resolve(), path
    assert placed.read_bytes() == data
    assert len(placed.name.encode()) <= 255


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_internal_name_stays_inside_download_path(Doc, name, tmp_path):
    key = {"id": 200 + HOSTILE.index(name)}
    Doc.insert1({**key, "a0": write(tmp_path / "x.txt", b"x")})
    stored = encode_internal(name, b"payload of " + name.encode())
    _set(Doc, "a0", key, stored)
    out = tmp_path / "deep" / "out"
    path = (Doc & key).fetch1("a0", download_path=out)
    _assert_inside(path, out, stored.partition(b"\0")[2])  # the name ends at the first NUL
    assert files_in(tmp_path) == {"x.txt", f"deep/out/{Path(path).name}"}
    assert (Doc & key).fetch1("a0", download_path=out) == path  # recognised as the same content


@pytest.mark.parametrize("store", ["local", "shared"])
@pytest.mark.parametrize("name", EXTERNAL, ids=range(len(EXTERNAL)))
def test_hostile_external_name_stays_inside_or_fails_cleanly(Doc, schema, store, name, tmp_path):
    column = COLUMNS[store]
    key = {"id": 300 + HOSTILE.index(name) + (50 if store == "shared" else 0)}
    data = b"external payload of " + name.encode()
    hash_ = attachment_uuid(name, data)
    tracking = schema.external[store]
    tracking.track([(hash_.bytes, len(data), name, None, None)])
    plain = "/" not in name and "\\" not in name and name != ""
    if plain:  # where DataJoint 0.14 would have put it
        folders = subfold(hash_.hex, get_store(store).subfolding)
        object_key = "/".join([schema.database, *folders, f"{hash_.hex}.{name}"])
        try:
            get_store(store).put(object_key, data)
        except StoreError:
            plain = False  # the store itself refuses such a key: the fetch must fail cleanly
    Doc.insert1(key)
    _set(Doc, column, key, hash_.bytes)
    out = tmp_path / "out"
    if plain:
        _assert_inside((Doc & key).fetch1(column, download_path=out), out, data)
    else:
        with pytest.raises(StoreError) as info:
            (Doc & key).fetch1(column, download_path=out)
        text = str(info.value)
        assert str(hash_) in text and repr(column) in text and store in text
    assert set(files_in(tmp_path)) <= {f"out/{safe_name(name)}"}
    assert len(Doc & key) == 1 and repr(tracking)  # queries and previews still work
    assert hash_ in dict(tracking.fetch_external_paths())
    assert len(tracking & {"attachment_name": name}) == 1


def test_safe_name_reduces_any_name_to_one_file_name():
    for name in HOSTILE + ["normal.txt", "dir/sub/file.tar.gz", "  spaced  ", "\x00"]:
        safe = safe_name(name)
        assert safe and safe not in (".", "..") and "/" not in safe and "\\" not in safe
        assert "\x00" not in safe and ":" not in safe and len(safe.encode()) <= 200
    assert safe_name("dir/sub/file.tar.gz") == "file.tar.gz"
    assert safe_name("a" * 300 + ".txt").endswith(".txt")


def test_concurrent_writers_never_overwrite_each_other(tmp_path):
    """Two attachments with the same name but different content, placed at the same time by two
    threads, end up in two files (the hard-link publish refuses a taken name)."""
    import threading

    from dj_flows.codecs.attach import content_uuid, place_attachment

    out = tmp_path / "out"
    results, barrier = {}, threading.Barrier(8)

    def place(i: int) -> None:
        data = f"version {i}".encode()
        barrier.wait()
        results[i] = place_attachment(
            "same.txt", content_uuid(data, "same.txt\0"), out, lambda: data
        )

    threads = [threading.Thread(target=place, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results.values())) == 8
    for i, path in results.items():
        assert Path(path).read_text() == f"version {i}"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize("where", list(COLUMNS))
def test_same_name_different_content_in_one_fetch_gets_aliases_in_row_order(Doc, where, tmp_path):
    column = COLUMNS[where]
    base = 400 + 10 * list(COLUMNS).index(where)
    rows = []
    for i in range(4):
        source = write(tmp_path / f"in{i}" / "Same.dat", b"version %d" % i)
        rows.append({"id": base + i, column: source})
    rows.append({"id": base + 4, column: write(tmp_path / "in0b" / "Same.dat", b"version 0")})
    Doc.insert(rows)
    out = tmp_path / "out"
    paths = (Doc & f"id >= {base} and id < {base + 5}").fetch(
        column, order_by="id", download_path=out
    )
    names = [Path(p).name for p in paths]
    assert names == ["Same.dat", "Same_0000.dat", "Same_0001.dat", "Same_0002.dat", "Same.dat"]
    assert [Path(p).read_bytes() for p in paths] == [b"version %d" % i for i in (0, 1, 2, 3, 0)]
