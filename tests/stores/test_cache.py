"""The fetch cache: hits and misses, corrupt entries discarded, LRU eviction by byte budget,
several processes sharing one folder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from dj_flows.errors import StoreError
from dj_flows.settings import config
from dj_flows.stores import ObjectCache, get_cache, subfold, uuid_from_buffer
from dj_flows.stores.cache import Blocks

REPO = Path(__file__).resolve().parents[2]


def content(i: int, size: int = 100) -> tuple[str, bytes]:
    data = (f"object {i} ".encode() * size)[:size]
    return uuid_from_buffer(data).hex, data


def matches_key(key: str):
    return lambda data: uuid_from_buffer(data).hex == key


def test_put_get_and_miss(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path)
    key, data = content(1)
    assert cache.get(key) is None
    cache.put(key, data)
    assert cache.get(key) == data
    assert cache.get(key, expected_size=len(data), verify=matches_key(key)) == data
    assert key in cache


def test_layout_is_datajoint_cache_layout(tmp_path: Path) -> None:
    """DataJoint 0.14 reads its cache at {cache}/{h0h1}/{h2h3}/{hex}: the folder can be shared."""
    cache = ObjectCache(tmp_path)
    key, data = content(2)
    cache.put(key, data)
    assert Path(tmp_path, *subfold(key, (2, 2)), key).read_bytes() == data


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_corrupt_entry_is_discarded_not_returned(tmp_path: Path, damage: str) -> None:
    cache = ObjectCache(tmp_path)
    key, data = content(3, 500)
    cache.put(key, data)
    path = cache.path(key)
    if damage == "truncate":
        path.write_bytes(data[:-10])
    elif damage == "flip":
        path.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    else:
        path.write_bytes(b"")
    by_size = cache.get(key, expected_size=len(data))
    if damage == "flip":  # same size: only the content check can tell
        assert by_size == path.read_bytes() != data
        assert cache.get(key, verify=matches_key(key)) is None
    else:
        assert by_size is None
    assert not path.exists()  # discarded, so the next fetch refills it
    cache.put(key, data)
    assert cache.get(key, expected_size=len(data), verify=matches_key(key)) == data


def test_lru_eviction_keeps_the_budget_and_recent_entries(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path, limit_bytes=1000, low_water=0.9)
    entries = [content(i, 100) for i in range(8)]
    for key, data in entries:
        cache.put(key, data)
    assert cache.usage() == 800
    assert cache.get(entries[0][0]) == entries[0][1]  # entry 0 becomes the most recent
    for key, data in [content(i, 100) for i in range(8, 12)]:
        cache.put(key, data)
    assert cache.usage() <= 1000
    kept = {key for key, _ in entries + [content(i, 100) for i in range(8, 12)] if key in cache}
    assert entries[0][0] in kept  # recently read: kept
    assert entries[1][0] not in kept and entries[2][0] not in kept  # least recently used: gone
    assert {content(i, 100)[0] for i in range(8, 12)} <= kept  # just written: kept


def test_object_larger_than_budget_is_not_cached(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path, limit_bytes=100)
    small_key, small = content(1, 50)
    cache.put(small_key, small)
    key, data = content(2, 101)
    cache.put(key, data)
    assert cache.get(key) is None and cache.get(small_key) == small


def test_budget_counts_files_written_by_others(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path, limit_bytes=1000, rescan_seconds=0)
    other = ObjectCache(tmp_path)  # another process, no budget of its own
    for i in range(15):
        other.put(*content(i, 100))
    cache.put(*content(99, 100))
    assert cache.usage() <= 1000
    assert content(99, 100)[0] in cache


def test_vanished_files_are_misses(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path, limit_bytes=10_000)
    key, data = content(5)
    cache.put(key, data)
    cache.path(key).unlink()  # another process evicted it
    assert cache.get(key) is None
    cache.put(*content(6))  # eviction scans tolerate the gap
    cache.discard(key)


def test_stale_temp_files_are_cleaned(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path, limit_bytes=10_000, rescan_seconds=0)
    stale = tmp_path / "ab" / "cd" / ".abcd.123456.dj-tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    cache.put(*content(7))
    assert not stale.exists()


def test_clear(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path, limit_bytes=10_000)
    for i in range(5):
        cache.put(*content(i))
    cache.clear()
    assert cache.usage() == 0 and all(content(i)[0] not in cache for i in range(5))


@pytest.mark.parametrize("key", ["../x", "a/b", "", ".hidden", "a\\b", "a\0b", "x" * 300])
def test_invalid_keys(tmp_path: Path, key: str) -> None:
    with pytest.raises(StoreError):
        ObjectCache(tmp_path).put(key, b"1")


def test_get_cache_follows_config(tmp_path: Path) -> None:
    with config.override(cache=None):
        assert get_cache() is None
    with config.override(cache=str(tmp_path), cache_limit=5000):
        cache = get_cache()
        assert cache is not None and cache.folder == tmp_path and cache.limit_bytes == 5000
        assert get_cache() is cache


WORKER = textwrap.dedent(
    """
    import sys
    from dj_flows.stores import ObjectCache, uuid_from_buffer
    folder, worker = sys.argv[1], int(sys.argv[2])
    cache = ObjectCache(folder, limit_bytes=20_000, rescan_seconds=0)
    for i in range(150):
        data = (f"worker {worker} object {i} ".encode() * 40)[:400]
        key = uuid_from_buffer(data).hex
        cache.put(key, data)
        got = cache.get(key, verify=lambda d, k=key: uuid_from_buffer(d).hex == k)
        assert got is None or got == data
    """
)


def test_several_processes_share_a_folder(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), str(n)], env=env)
        for n in range(3)
    ]
    assert [w.wait(120) for w in workers] == [0, 0, 0]
    cache = ObjectCache(tmp_path)
    # each writer keeps the folder within budget after its own put; concurrent writers may
    # overshoot by what the others wrote since their last scan, never by more than one round
    assert cache.usage() <= 20_000 + 3 * 400
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert not path.name.startswith("."), "no temporary file left behind"
            assert uuid_from_buffer(path.read_bytes()).hex == path.name  # every entry intact


def test_known_only_serves_only_entries_checked_by_this_process(tmp_path: Path) -> None:
    """known_only returns an entry only if this process wrote or verified it and it is unchanged
    since; anything else is left unread and untouched for the caller's full check."""
    writer = ObjectCache(tmp_path)
    key, data = content(5, 400)
    writer.put(key, data)
    assert writer.get(key, known_only=True) == data
    reader = ObjectCache(tmp_path)  # another process: it has checked nothing yet
    path = reader.path(key)
    mtime = path.stat().st_mtime_ns
    assert reader.get(key, known_only=True) is None
    assert path.stat().st_mtime_ns == mtime  # not touched either
    assert reader.get(key, verify=matches_key(key)) == data
    assert reader.get(key, known_only=True) == data
    time.sleep(0.01)
    path.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])  # same size, in place
    assert reader.get(key, known_only=True) is None  # its identity changed: not known good
    assert reader.get(key, verify=matches_key(key)) is None  # the full check discards it
    assert not path.exists()


def test_blocks_hand_out_disjoint_writable_buffers_at_their_phase() -> None:
    blocks = Blocks(phase=3, block=1 << 16)
    buffers = [blocks(size) for size in (10, 1000, 5000, 20_000, 30_000, 1 << 15)]
    shifted = blocks.shifted(25)(77)
    spans = []
    for view, phase in [*((b, 3) for b in buffers), (shifted, 12)]:
        address = np.frombuffer(view, np.uint8).ctypes.data
        assert address % 16 == phase and not view.readonly
        spans.append((address, address + len(view)))
    assert [len(b) for b in buffers] == [10, 1000, 5000, 20_000, 30_000, 1 << 15]
    spans.sort()
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))


def test_a_file_that_grows_while_read_is_not_returned(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path)
    key, data = content(6, 300)
    cache.put(key, data)

    def grow(size: int) -> memoryview:
        with open(cache.path(key), "ab") as stream:  # another writer appends after the stat
            stream.write(b"more")
        return memoryview(bytearray(size))

    assert cache.get(key, allocate=grow) is None
