"""A local cache of fetched external objects, keyed by content hash, with an LRU byte budget.

Same layout as DataJoint 0.14's `dj.config['cache']` folder (`{folder}/{k0k1}/{k2k3}/{key}`), so
a folder can be shared with DataJoint clients. Unlike it, entries are checked on the way out
(size and an optional verifier: a bad file is deleted and reported as a miss, never returned),
and the folder is kept under `limit_bytes` by evicting the least recently used files.

Within a process, an entry it wrote or verified and that has not been written since (same size,
inode, mtime and ctime, which no writer can set back) is not checked again on the next hit.

Several processes may share one folder: files are written by atomic rename, recency is the file's
mtime (set explicitly on write and on every hit, since atime is often disabled), and files that
vanish under us (another process evicted them) are simply misses.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy

from ..errors import StoreError
from .filestore import TEMP_SUFFIX, write_atomic
from .layout import DEFAULT_SUBFOLDING, subfold

logger = logging.getLogger("dj_flows")
KEY_PATTERN = re.compile(r"[^./\\\0][^/\\\0]{0,199}")
STALE_TEMP_SECONDS = 3600
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)
_HAS_READV = hasattr(os, "readv")


class ObjectCache:
    """Cached object bytes by key (an object's UUID hex).

    limit_bytes: the byte budget (None = unbounded). When a put takes the folder past it, the
    least recently used entries are removed until the folder holds at most `low_water` of it.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        limit_bytes: int | None = None,
        *,
        low_water: float = 0.9,
        rescan_seconds: float = 30.0,
    ) -> None:
        if limit_bytes is not None and (not isinstance(limit_bytes, int) or limit_bytes < 0):
            raise StoreError(f"cache limit must be a non-negative integer, got {limit_bytes!r}")
        self.folder = Path(folder).expanduser().absolute()
        self._root = str(self.folder).rstrip(os.sep) or os.sep
        self.limit_bytes = limit_bytes
        self.low_water = low_water
        self.rescan_seconds = rescan_seconds
        self._lock = threading.Lock()
        self._estimate: int | None = None  # bytes in the folder at the last scan + our puts since
        self._scanned_at = 0.0
        # path -> file identity (size, inode, device, mtime ns, ctime ns) when this process last
        # wrote or verified it: an entry whose identity is unchanged has not been written since
        # (ctime cannot be set back), so its check is not repeated
        self._verified: dict[str, tuple[int, ...]] = {}

    def __repr__(self) -> str:
        return f"ObjectCache(folder={str(self.folder)!r}, limit_bytes={self.limit_bytes!r})"

    def path(self, key: str) -> Path:
        return Path(self._file(key))

    def _file(self, key: str) -> str:
        """The entry's path as a string (no pathlib objects on the hit path)."""
        if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key) or key == "..":
            raise StoreError(f"invalid cache key {key!r}: use the object's hash (a file name)")
        return os.sep.join((self._root, *subfold(key, DEFAULT_SUBFOLDING), key))

    # -- reading --------------------------------------------------------------------------------
    def get(
        self,
        key: str,
        expected_size: int | None = None,
        verify: Callable[[memoryview], bool] | None = None,
        *,
        allocate: Callable[[int], memoryview] | None = None,
        known_only: bool = False,
    ) -> memoryview | None:
        """The cached bytes, or None on a miss. An entry of the wrong size, or that `verify`
        rejects (e.g. its hash does not match the key), is deleted and reported as a miss.
        The bytes come in a writable buffer the caller owns (from `allocate(size)` if given, e.g.
        a `Blocks`), so arrays decoded from them can be writable views instead of copies.
        known_only: None also for an entry that would need checking (not known good here), which
        is then neither read nor touched: the caller may check it elsewhere (on a thread)."""
        path = self._file(key)
        expect = self._verified.get(path) if known_only else None
        if known_only and expect is None:
            return None
        try:
            data, identity = _read_owned(path, allocate or _fresh, expect)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            logger.warning("cache entry %s unreadable, ignored: %s", path, exc)
            return None
        if data is None:  # changed since it was checked: not known good
            return None
        bad_size = expected_size is not None and len(data) != expected_size
        known = self._verified.get(path) == identity
        if bad_size or (verify is not None and not known and not verify(data)):
            logger.warning("cache entry %s is corrupt (%d bytes): discarded", path, len(data))
            self._verified.pop(path, None)
            self.discard(key)
            return None
        now = time.time_ns()
        with contextlib.suppress(OSError):
            os.utime(path, ns=(now, now))  # recency for LRU
            if known or verify is not None:  # only a checked entry counts as known-good
                self._remember(path)
        return data

    def _remember(self, path: str) -> None:
        if len(self._verified) > 100_000:
            self._verified.clear()
        self._verified[path] = _identity(os.stat(path))

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    # -- writing --------------------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        """Cache `data` under `key` (atomically), then evict if over budget. An object larger
        than the whole budget is not cached."""
        path = self._file(key)
        if self.limit_bytes is not None and len(data) > self.limit_bytes:
            return
        try:
            write_atomic(path, bytes(data), durable=False)
            now = time.time_ns()
            os.utime(path, ns=(now, now))
            self._remember(path)  # callers put only data they have verified
        except OSError as exc:  # a cache that cannot be written is a slower fetch, not a failure
            logger.warning("cannot write cache entry %s: %s", path, exc)
            return
        if self.limit_bytes is not None:
            self._account(len(data), keep=Path(path))

    def discard(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()

    def clear(self) -> None:
        """Remove every entry (and stale temporary files)."""
        for _, _, path in self._entries(include_temp=True):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        with self._lock:
            self._estimate = 0

    def usage(self) -> int:
        """Bytes currently held by the cache folder (a scan)."""
        return sum(size for _, size, _ in self._entries())

    # -- eviction -------------------------------------------------------------------------------
    def _account(self, added: int, keep: Path) -> None:
        with self._lock:
            stale = time.monotonic() - self._scanned_at > self.rescan_seconds
            if self._estimate is not None and not stale:
                self._estimate += added
                if self._estimate <= self.limit_bytes:
                    return
            self._evict(keep)

    def _evict(self, keep: Path) -> None:
        """Scan the folder; if over budget, delete least recently used files down to low water."""
        entries = sorted(self._entries(clean_temp=True))
        total = sum(size for _, size, _ in entries)
        if total > self.limit_bytes:
            target = int(self.limit_bytes * self.low_water)
            for _, size, path in entries:
                if total <= target:
                    break
                if path == keep:
                    continue
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass  # another process evicted it first
                total -= size
        self._estimate = total
        self._scanned_at = time.monotonic()

    def _entries(
        self, include_temp: bool = False, clean_temp: bool = False
    ) -> list[tuple[int, int, Path]]:
        """(mtime_ns, size, path) of every cached file; temp files only if asked."""
        found = []
        cutoff = time.time() - STALE_TEMP_SECONDS
        for folder, _, files in os.walk(self.folder):
            for name in files:
                path = Path(folder, name)
                try:
                    info = path.stat()
                except FileNotFoundError:
                    continue
                if name.startswith("."):
                    if clean_temp and name.endswith(TEMP_SUFFIX) and info.st_mtime < cutoff:
                        with contextlib.suppress(FileNotFoundError):
                            path.unlink()  # left behind by a crashed writer
                    if not include_temp:
                        continue
                found.append((info.st_mtime_ns, info.st_size, path))
        return found


_caches: dict[tuple[str, int | None], ObjectCache] = {}


def _identity(status: os.stat_result) -> tuple[int, ...]:
    return (status.st_size, status.st_ino, status.st_dev, status.st_mtime_ns, status.st_ctime_ns)


class Blocks:
    """Writable buffers carved from large numpy blocks, for reading many entries in one fetch.

    Why: a block of 4 MiB or more is backed by huge pages where the kernel offers them (numpy
    asks for them), so reading 500 entries of 200 KB took ~50 ms instead of ~70 ms here: memory
    allocated entry by entry is faulted in 4 KiB at a time. Each buffer starts at `phase` modulo 16, so
    that a caller can put the arrays it decodes from the buffer on aligned addresses.
    The price: an array viewing a buffer keeps its whole block alive (at most `block` bytes).
    """

    def __init__(self, phase: int = 0, block: int = 8 << 20) -> None:
        self.phase = phase % 16
        self.block = block
        self._lock = threading.Lock()
        self._current: memoryview | None = None
        self._start = 0  # address of the current block
        self._used = 0

    def __call__(self, size: int) -> memoryview:
        return self.take(size, self.phase)

    def shifted(self, offset: int) -> Callable[[int], memoryview]:
        """The same blocks, buffers starting `offset` bytes later modulo 16."""
        return lambda size: self.take(size, self.phase + offset)

    def take(self, size: int, phase: int) -> memoryview:
        if size > self.block // 4:  # a large entry gets a block of its own
            array = numpy.empty(size + 16, numpy.uint8)
            skip = (phase - array.ctypes.data) % 16
            return memoryview(array)[skip : skip + size]
        with self._lock:
            skip = (phase - self._start - self._used) % 16
            if self._current is None or self._used + skip + size > self.block:
                array = numpy.empty(self.block, numpy.uint8)
                self._current, self._start, self._used = memoryview(array), array.ctypes.data, 0
                skip = (phase - self._start) % 16
            begin = self._used + skip
            self._used = begin + size
            return self._current[begin : begin + size]


def _fresh(size: int) -> memoryview:
    """An uninitialised buffer: no zero-fill pass; its pages are first touched by the read."""
    return memoryview(numpy.empty(size, numpy.uint8))


def _read_owned(
    path: str, allocate: Callable[[int], memoryview], expect: tuple[int, ...] | None = None
) -> tuple[memoryview | None, tuple[int, ...]]:
    """A file's contents in a fresh writable buffer (from `allocate`), and the identity of the
    file that was read. The buffer is filled by readv, with the GIL released. With `expect`, a
    file of another identity is not read (None)."""
    fd = os.open(path, _READ_FLAGS)
    try:
        status = os.fstat(fd)
        if expect is not None and _identity(status) != expect:
            return None, _identity(status)
        data = allocate(status.st_size)
        filled, extra = 0, bytearray(1)  # a byte read into `extra` means the file grew
        while True:
            count = _read_into(fd, data[filled:], extra)
            filled += count
            if filled > len(data):
                raise OSError(f"cache entry {path} grew while being read")
            if filled == len(data) or not count:
                break
        if filled < len(data):
            data = data[:filled]  # the file shrank under us: the size check will reject it
        if _identity(os.fstat(fd)) != _identity(status):
            raise OSError(f"cache entry {path} changed while being read")
    finally:
        os.close(fd)
    return data, _identity(status)


def _read_into(fd: int, view: memoryview, extra: bytearray) -> int:
    """One read into `view`, then `extra` (readv: one call reads the entry and tells if it grew)."""
    if _HAS_READV:
        return os.readv(fd, [view, extra])
    chunk = os.read(fd, len(view) + len(extra))  # no readv (Windows): one extra copy
    view[: len(chunk)] = chunk[: len(view)]
    extra[: len(chunk) - len(view)] = chunk[len(view) :]
    return len(chunk)


def get_cache() -> ObjectCache | None:
    """The cache configured by dj.config['cache'] / ['cache_limit'], or None if there is none."""
    from ..settings import config

    folder = config.get("cache")
    if not folder:
        return None
    folder = os.path.abspath(os.path.expanduser(str(folder)))  # './x' follows the working folder
    key = (folder, config.get("cache_limit"))
    if key not in _caches:
        _caches[key] = ObjectCache(folder, config.get("cache_limit"))
    return _caches[key]
