"""The `file` protocol: objects as files under a local (or mounted network) folder.

Writes are atomic: the bytes go to a temporary file in the destination folder, are flushed to
disk, then renamed over the final name, so a crash or a full disk never leaves a half-written
object under its real name, and readers see either the old object or the new one. Bulk calls
use a thread pool (network mounts have latency worth overlapping).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import stat
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from .spec import StoreSpec
from .store import Store, transfer_concurrency

TEMP_SUFFIX = ".dj-tmp"


def write_atomic(path: str, data: bytes, *, durable: bool = True) -> None:
    """Write `data` to `path` via a temporary file in the same folder and a rename."""
    folder, name = os.path.split(path)
    os.makedirs(folder or ".", exist_ok=True)
    temp = os.path.join(folder, f".{name[:64]}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")
    # os.open with 0o666 honours the umask (tempfile.mkstemp would force 0o600 on a shared store)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            if durable:
                os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def is_temp_name(name: str) -> bool:
    """True for the temporary file names `write_atomic` uses."""
    return os.path.basename(name).startswith(".") and name.endswith(TEMP_SUFFIX)


class FileStore(Store):
    """A store in a folder (`location`, made absolute when the store is built)."""

    protocol = "file"

    def __init__(self, spec: StoreSpec) -> None:
        super().__init__(spec)
        self._root = os.path.abspath(os.path.expanduser(spec.location)).replace(os.sep, "/")

    @property
    def root(self) -> str:
        return self._root

    @property
    def fs(self) -> Any:
        """An fsspec view of the same folder, for callers that want fsspec's API."""
        import fsspec

        return fsspec.filesystem("file")

    def _prepare(self) -> None:
        # DataJoint 0.14 demands an existing folder; the seed notebook points at './dj-store'
        # without creating it, so create it (a failure here names the store and the folder).
        os.makedirs(self._root, exist_ok=True)

    def _map(self, func: Callable[[str], Any], paths: list[str]) -> dict[str, Any]:
        """func(path) for every path, concurrently; exceptions are returned, not raised."""

        def safe(path: str) -> Any:
            try:
                return func(path)
            except Exception as exc:
                return exc

        workers = min(transfer_concurrency(), len(paths))
        if workers <= 1:
            return {path: safe(path) for path in paths}
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="dj-store") as pool:
            return dict(zip(paths, pool.map(safe, paths)))

    def _write_many(self, items: dict[str, bytes]) -> dict[str, BaseException]:
        results = self._map(lambda path: write_atomic(path, items[path]), list(items))
        return {p: r for p, r in results.items() if isinstance(r, BaseException)}

    def _read_many(self, paths: list[str]) -> dict[str, bytes | BaseException]:
        def read(path: str) -> bytes:
            with open(path, "rb") as stream:
                return stream.read()

        return self._map(read, paths)

    def _delete_many(self, paths: list[str]) -> dict[str, BaseException]:
        results = self._map(os.remove, paths)
        return {p: r for p, r in results.items() if isinstance(r, BaseException)}

    def _stat(self, path: str) -> int | None:
        try:
            info = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return info.st_size if stat.S_ISREG(info.st_mode) else None

    def _walk(self, path: str) -> Iterator[tuple[str, int, float | None]]:
        for folder, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(folder, name)
                try:
                    info = os.stat(full)
                except FileNotFoundError:  # removed while we walked
                    continue
                if stat.S_ISREG(info.st_mode):
                    rel = os.path.relpath(full, self._root).replace(os.sep, "/")
                    yield f"{self._root.rstrip('/')}/{rel}", info.st_size, info.st_mtime
