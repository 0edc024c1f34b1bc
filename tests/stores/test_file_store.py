"""What only the file protocol promises: atomic writes, sane permissions, its folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from dj_flows.errors import StoreError, TransientStoreError
from dj_flows.stores import Store
from dj_flows.stores.filestore import TEMP_SUFFIX, is_temp_name

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import json, resource, signal, sys
    from dj_flows.errors import StoreError
    from dj_flows.stores import Store

    location, mode = sys.argv[1], sys.argv[2]
    store = Store.from_spec("local", {"protocol": "file", "location": location})
    store.exists("db/big")  # first use happens before the limit
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))
    # Python ignores SIGXFSZ; restoring the default makes passing the limit kill the process
    # mid-write, a crash with no chance to clean up
    if mode == "crash":
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    try:
        store.put("db/big", b"n" * (4 << 20))
        print(json.dumps({"outcome": "written"}))
    except StoreError as exc:
        print(json.dumps({"outcome": "error", "type": type(exc).__name__, "message": str(exc)}))
    """
)


def run_child(location: Path, mode: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(location), mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE (POSIX)")
def test_crash_mid_write_leaves_old_object_and_no_partial_one(tmp_path: Path) -> None:
    location = tmp_path / "store"
    store = Store.from_spec("local", {"protocol": "file", "location": str(location)})
    store.put("db/big", b"old contents")

    result = run_child(location, "crash")

    assert result.returncode == -signal.SIGXFSZ, result.stderr
    assert store.get("db/big") == b"old contents"
    leftovers = [obj for obj in store.list("db") if obj.key != "db/big"]
    assert len(leftovers) == 1 and is_temp_name(leftovers[0].key)
    assert leftovers[0].key.endswith(TEMP_SUFFIX) and leftovers[0].size == 1 << 20


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE (POSIX)")
def test_failed_write_raises_and_cleans_up(tmp_path: Path) -> None:
    location = tmp_path / "store"
    store = Store.from_spec("local", {"protocol": "file", "location": str(location)})
    store.put("db/big", b"old contents")

    result = run_child(location, "error")

    report = json.loads(result.stdout)
    assert report["outcome"] == "error" and report["type"] == "StoreError", result.stderr
    assert "'local'" in report["message"] and "db/big" in report["message"]
    assert store.get("db/big") == b"old contents"
    assert [obj.key for obj in store.list()] == ["db/big"]  # the temporary file is gone


def test_readers_never_see_a_partial_object(tmp_path: Path) -> None:
    store = Store.from_spec("local", {"protocol": "file", "location": str(tmp_path)})
    versions = [bytes([65 + i]) * (1 << 20) for i in range(2)]
    store.put("db/obj", versions[0])
    done = threading.Event()

    def writer() -> None:
        for i in range(30):
            store.put("db/obj", versions[i % 2])
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    while not done.is_set() or reads == 0:
        assert store.get("db/obj") in versions
        reads += 1
    thread.join()
    assert reads > 0


def test_new_objects_follow_the_umask(tmp_path: Path) -> None:
    store = Store.from_spec("local", {"protocol": "file", "location": str(tmp_path)})
    store.put("db/obj", b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "db" / "obj").stat().st_mode & 0o777 == 0o666 & ~umask


def test_location_is_created_at_first_use(tmp_path: Path) -> None:
    location = tmp_path / "not" / "yet"
    store = Store.from_spec("local", {"protocol": "file", "location": str(location)})
    assert not location.exists()  # building a store does no I/O
    store.put("db/obj", b"x")
    assert (location / "db" / "obj").read_bytes() == b"x"


def test_relative_location_is_made_absolute(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = Store.from_spec("local", {"protocol": "file", "location": "./dj-store"})
    assert store.root == str(tmp_path / "dj-store")
    store.put("db/obj", b"x")
    assert (tmp_path / "dj-store" / "db" / "obj").exists()


def test_unusable_location_fails_naming_store_and_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    store = Store.from_spec("local", {"protocol": "file", "location": str(blocker / "store")})
    with pytest.raises(StoreError) as info:
        store.put("db/obj", b"x")
    assert not isinstance(info.value, TransientStoreError)
    assert "'local'" in str(info.value) and str(blocker / "store") in str(info.value)


def test_nothing_is_written_outside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    store = Store.from_spec("local", {"protocol": "file", "location": str(root)})
    for bad in ["../escaped", "db/../../escaped", "/tmp/escaped"]:
        with pytest.raises(StoreError):
            store.put(bad, b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # not even the root was created


def test_a_folder_is_not_an_object(tmp_path: Path) -> None:
    store = Store.from_spec("local", {"protocol": "file", "location": str(tmp_path)})
    store.put("db/sub/obj", b"x")
    assert not store.exists("db/sub")
    assert store.size("db/sub") is None
    with pytest.raises(StoreError):
        store.get("db/sub")
