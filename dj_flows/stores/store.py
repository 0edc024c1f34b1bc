"""External object stores: one small API over a local folder, S3, or any fsspec filesystem.

In the fsspec spirit, a backend implements a handful of primitives on *full paths*
(`_write_many`, `_read_many`, `_delete_many`, `_stat`, `_walk`, and `_prepare` for the first-use
check) and this base class builds the public API on them: key checking, single-object calls as
bulk calls of one, error translation into StoreError / TransientStoreError / MissingObjectError.

Keys are relative POSIX paths under the store's root (`location`; for S3 `bucket/location`).
Bulk calls move many objects concurrently, at most `dj.config['external.transfer_concurrency']`
at a time. Backends: `FileStore` (filestore.py), `S3Store` (s3.py), and the generic ones below.
"""

from __future__ import annotations

import asyncio
import datetime
import ntpath
import os
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar, Literal, NamedTuple

from ..errors import ConfigError, StoreError, TransientStoreError
from . import faults
from .spec import StoreSpec, parse_spec

MAX_KEYS_SHOWN = 5


class MissingObjectError(StoreError):
    """Objects asked for are not in the store; `.keys` lists them."""

    def __init__(self, message: str, keys: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.keys = list(keys)


class StoredObject(NamedTuple):
    """One entry of `Store.list()`: mtime is POSIX seconds, None if the backend has none."""

    key: str
    size: int
    mtime: float | None


def transfer_concurrency() -> int:
    """How many objects a bulk call moves at once (dj.config['external.transfer_concurrency'])."""
    from ..settings import config

    value = config.get("external.transfer_concurrency") or 16
    if not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"config['external.transfer_concurrency'] must be a positive integer, got {value!r}"
        )
    return value


def _show(keys: Iterable[str]) -> str:
    keys = list(keys)
    shown = ", ".join(repr(k) for k in keys[:MAX_KEYS_SHOWN])
    return shown + (f" and {len(keys) - MAX_KEYS_SHOWN} more" if len(keys) > MAX_KEYS_SHOWN else "")


class Store:
    """A named external store. Build with `Store.from_spec(name, spec)` or `get_store(name)`."""

    protocol: ClassVar[str] = ""

    def __init__(self, spec: StoreSpec) -> None:
        self.spec = spec
        self._lock = threading.RLock()  # guards the first-use check and client creation
        self._ready_pid: int | None = None

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any]) -> Store:
        """Validate a `dj.config['stores']` entry and build the matching store (no I/O yet)."""
        parsed = parse_spec(name, spec)
        if parsed.protocol == "file":
            from .filestore import FileStore

            return FileStore(parsed)
        if parsed.protocol == "s3":
            from .s3 import S3Store

            return S3Store(parsed)
        return FsspecStore.for_spec(parsed)

    # -- description (never a credential) -------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def subfolding(self) -> tuple[int, ...]:
        return self.spec.subfolding

    @property
    def stage(self) -> str | None:
        return self.spec.stage

    @property
    def location(self) -> str:
        return self.spec.location

    @property
    def root(self) -> str:
        """The full path every key is placed under."""
        raise NotImplementedError

    def describe(self) -> str:
        """How messages name this store: its name, protocol and where it lives."""
        return f"store {self.name!r} ({self.spec.protocol} {self.root})"

    def __repr__(self) -> str:
        fields = [f"name={self.name!r}", f"protocol={self.spec.protocol!r}"]
        if self.spec.endpoint is not None:
            fields.append(f"endpoint={self.spec.endpoint_url!r}")
        if self.spec.bucket is not None:
            fields.append(f"bucket={self.spec.bucket!r}")
        fields.append(f"location={self.location!r}")
        return f"{type(self).__name__}({', '.join(fields)})"

    def __getstate__(self) -> dict:
        state = {"spec": self.spec}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["spec"])  # live clients are rebuilt lazily in the new process

    # -- keys -----------------------------------------------------------------------------------
    def check_key(self, key: str) -> str:
        """Return `key` if it is a safe relative key; StoreError if it could escape the root."""
        problem = None
        if not isinstance(key, str) or not key:
            problem = "keys are non-empty strings"
        elif "\0" in key or "\\" in key:
            problem = "keys must not contain NUL or backslash"
        elif key.startswith("/") or ntpath.splitdrive(key)[0]:
            problem = "keys are relative to the store root"
        elif any(part in ("", ".", "..") for part in key.split("/")):
            problem = "keys must not contain empty, '.' or '..' parts"
        if problem:
            raise StoreError(f"{self.describe()}: invalid key {key!r}: {problem}")
        return key

    def path(self, key: str) -> str:
        """The full path of `key` in the backend's terms."""
        key = self.check_key(key)
        return self.root.rstrip("/") + "/" + key if self.root else key

    # -- public API, built on the primitives ----------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing any object there."""
        self.put_many({key: data})

    def get(self, key: str) -> bytes:
        """The object's bytes; MissingObjectError if there is none."""
        return self.get_many([key])[key]

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None if it does not exist."""
        path = self.path(key)
        self._ensure_ready()
        try:
            return self._stat(path)
        except Exception as exc:
            raise self._error("stat", [key], {key: exc}) from exc

    def remove(self, key: str) -> None:
        """Delete the object; deleting a missing object is not an error."""
        self.remove_many([key])

    def put_many(self, items: Mapping[str, bytes]) -> None:
        """Store many objects concurrently. On failure, raise after trying them all, naming the
        keys that failed (those that succeeded stay stored)."""
        paths = {self.path(key): key for key in items}
        if not paths:
            return
        for key, data in items.items():
            if not isinstance(data, bytes | bytearray | memoryview):
                raise StoreError(f"{self.describe()}: data for {key!r} must be bytes")
        self._ensure_ready()
        failures = self._write_many({path: bytes(items[key]) for path, key in paths.items()})
        if failures:
            raise self._error("write", paths.values(), {paths[p]: e for p, e in failures.items()})

    def get_many(
        self, keys: Iterable[str], *, missing: Literal["raise", "omit"] = "raise"
    ) -> dict[str, bytes]:
        """Fetch many objects concurrently, as {key: bytes}.

        Missing objects raise one MissingObjectError naming them all (its `.keys`), unless
        `missing='omit'`, which leaves them out of the result. Any other failure raises
        StoreError (TransientStoreError if every failure may pass on retry).
        """
        paths = {self.path(key): key for key in keys}
        if not paths:
            return {}
        self._ensure_ready()
        results = self._read_many(list(paths))
        found: dict[str, bytes] = {}
        failures: dict[str, BaseException] = {}
        for path, key in paths.items():
            value = results.get(path, FileNotFoundError(path))
            if isinstance(value, BaseException):
                if not (missing == "omit" and faults.is_missing(value)):
                    failures[key] = value
            else:
                found[key] = value
        if failures:
            raise self._error("read", paths.values(), failures)
        return found

    def remove_many(self, keys: Iterable[str]) -> None:
        """Delete many objects (S3: DeleteObjects batches); missing ones are skipped."""
        paths = {self.path(key): key for key in keys}
        if not paths:
            return
        self._ensure_ready()
        failures = self._delete_many(list(paths))
        failures = {p: e for p, e in failures.items() if not faults.is_missing(e)}
        if failures:
            raise self._error("delete", paths.values(), {paths[p]: e for p, e in failures.items()})

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Every object under the folder `prefix` ('' = whole store), for orphan scans.

        Includes stale temporary files of interrupted writes (FileStore), which are not tracked
        and so are garbage like any other orphan.
        """
        prefix = prefix.strip("/")
        base = self.path(prefix) if prefix else self.root
        self._ensure_ready()
        return self._listing(prefix, base)

    def _listing(self, prefix: str, base: str) -> Iterator[StoredObject]:
        cut = len(self.root.rstrip("/")) + 1 if self.root else 0
        try:
            for path, size, mtime in self._walk(base):
                yield StoredObject(path[cut:], size, mtime)
        except Exception as exc:
            raise self._error("list", [prefix or "/"], {prefix or "/": exc}) from exc

    # -- errors ---------------------------------------------------------------------------------
    def _error(
        self, action: str, keys: Iterable[str], failures: Mapping[str, BaseException]
    ) -> StoreError:
        """One exception for a call's failures: the most actionable class, naming the keys."""
        secrets = self.spec.secrets()
        failed = list(failures)
        if all(faults.is_missing(exc) for exc in failures.values()):
            message = f"{self.describe()}: {len(failed)} object(s) not found: {_show(failed)}"
            return MissingObjectError(message, failed)
        others = {k: e for k, e in failures.items() if not faults.is_missing(e)}
        first = next(iter(others.values()))
        if faults.is_missing_bucket(first):
            reason = f"bucket {self.spec.bucket!r} does not exist"
        elif faults.is_denied(first):
            reason = "access denied (check access_key and secret_key): " + faults.describe(
                first, secrets
            )
        else:
            reason = faults.describe(first, secrets)
        cls = TransientStoreError if all(map(faults.is_transient, others.values())) else StoreError
        return cls(f"{self.describe()}: cannot {action} {_show(failed)}: {reason}")

    # -- readiness ------------------------------------------------------------------------------
    def _ensure_ready(self) -> None:
        """Run the backend's first-use check once per process (reconnecting after a fork)."""
        if self._ready_pid == os.getpid():
            return
        with self._lock:
            if self._ready_pid == os.getpid():
                return
            try:
                self._prepare()
            except StoreError:
                raise
            except Exception as exc:
                raise self._error("reach", [self.root or "/"], {self.root or "/": exc}) from exc
            self._ready_pid = os.getpid()

    # -- primitives (backends override) ---------------------------------------------------------
    def _prepare(self) -> None:
        """Connect / check the root exists. Called once, before the first operation."""

    def _write_many(self, items: dict[str, bytes]) -> dict[str, BaseException]:
        """Write every path; return the failures by path."""
        raise NotImplementedError

    def _read_many(self, paths: list[str]) -> dict[str, bytes | BaseException]:
        """Read every path; each result is its bytes or the exception (FileNotFoundError if missing)."""
        raise NotImplementedError

    def _delete_many(self, paths: list[str]) -> dict[str, BaseException]:
        """Delete every path; return failures (FileNotFoundError is ignored by the caller)."""
        raise NotImplementedError

    def _stat(self, path: str) -> int | None:
        """Size of the object at path, None if there is no object there."""
        raise NotImplementedError

    def _walk(self, path: str) -> Iterator[tuple[str, int, float | None]]:
        """(full path, size, mtime) of every object below the folder `path`."""
        raise NotImplementedError


def _mtime(info: Mapping[str, Any]) -> float | None:
    """A POSIX timestamp from whatever an fsspec info dict calls its modification time."""
    for field in ("mtime", "LastModified", "last_modified", "updated", "modified", "created"):
        value = info.get(field)
        if value is None:
            continue
        if isinstance(value, datetime.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=datetime.timezone.utc)
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


class FsspecStore(Store):
    """A store on any fsspec filesystem (protocol + storage_options), one object at a time."""

    def __init__(self, spec: StoreSpec) -> None:
        super().__init__(spec)
        self._fs: Any = None
        self._fs_pid: int | None = None

    @staticmethod
    def for_spec(spec: StoreSpec) -> FsspecStore:
        import fsspec

        cls = fsspec.get_filesystem_class(spec.protocol)
        return AsyncFsspecStore(spec) if getattr(cls, "async_impl", False) else FsspecStore(spec)

    @property
    def root(self) -> str:
        import fsspec

        location = self.spec.location.rstrip("/")
        if not location:
            return ""
        return fsspec.get_filesystem_class(self.spec.protocol)._strip_protocol(location).rstrip("/")

    @property
    def fs(self) -> Any:
        """The fsspec filesystem (rebuilt in a forked child, whose parent's client is unusable)."""
        if self._fs is None or self._fs_pid != os.getpid():
            with self._lock:
                if self._fs is None or self._fs_pid != os.getpid():
                    self._fs = self._make_filesystem()
                    self._fs_pid = os.getpid()
        return self._fs

    def _make_filesystem(self) -> Any:
        import fsspec

        return fsspec.filesystem(self.spec.protocol, **self.spec.storage_options)

    def _write_many(self, items: dict[str, bytes]) -> dict[str, BaseException]:
        failures: dict[str, BaseException] = {}
        made: set[str] = set()
        for path, data in items.items():
            try:
                parent = path.rsplit("/", 1)[0] if "/" in path else ""
                if parent and parent not in made:
                    self.fs.makedirs(parent, exist_ok=True)
                    made.add(parent)
                self.fs.pipe_file(path, data)
            except Exception as exc:
                failures[path] = exc
        return failures

    def _read_many(self, paths: list[str]) -> dict[str, bytes | BaseException]:
        results: dict[str, bytes | BaseException] = {}
        for path in paths:
            try:
                results[path] = self.fs.cat_file(path)
            except Exception as exc:
                results[path] = exc
        return results

    def _delete_many(self, paths: list[str]) -> dict[str, BaseException]:
        failures: dict[str, BaseException] = {}
        for path in paths:
            try:
                self.fs.rm_file(path)
            except Exception as exc:
                failures[path] = exc
        return failures

    def _stat(self, path: str) -> int | None:
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        return int(info["size"]) if info.get("type") == "file" else None

    def _walk(self, path: str) -> Iterator[tuple[str, int, float | None]]:
        try:
            found = self.fs.find(path or "/", detail=True)
        except FileNotFoundError:
            return
        for full, info in sorted(found.items()):
            if info.get("type", "file") == "file":
                yield full, int(info.get("size") or 0), _mtime(info)


class AsyncFsspecStore(FsspecStore):
    """An fsspec filesystem with an async implementation: bulk calls run concurrently on its
    event loop, at most `transfer_concurrency()` requests in flight.

    We gather `_pipe_file` / `_cat_file` coroutines ourselves instead of calling `fs.cat(list)`:
    fsspec's bulk calls expand glob characters, and attachment names may contain '[' or '*'.
    """

    def _run_bounded(
        self, jobs: dict[str, Callable[[], Awaitable[Any]]], limit: int | None = None
    ) -> dict[str, Any | BaseException]:
        from fsspec.asyn import sync

        limit = min(limit or transfer_concurrency(), transfer_concurrency())

        async def gather() -> list[Any]:
            semaphore = asyncio.Semaphore(limit)

            async def one(job: Callable[[], Awaitable[Any]]) -> Any:
                async with semaphore:
                    return await job()

            return await asyncio.gather(
                *(one(job) for job in jobs.values()), return_exceptions=True
            )

        fs = self.fs
        return dict(zip(jobs, sync(fs.loop, gather)))

    def _write_many(self, items: dict[str, bytes]) -> dict[str, BaseException]:
        fs = self.fs
        jobs = {path: (lambda p=path, d=data: fs._pipe_file(p, d)) for path, data in items.items()}
        return {p: r for p, r in self._run_bounded(jobs).items() if isinstance(r, BaseException)}

    def _read_many(self, paths: list[str]) -> dict[str, bytes | BaseException]:
        fs = self.fs
        return self._run_bounded({path: (lambda p=path: fs._cat_file(p)) for path in paths})

    def _delete_many(self, paths: list[str]) -> dict[str, BaseException]:
        fs = self.fs
        jobs = {path: (lambda p=path: fs._rm_file(p)) for path in paths}
        return {p: r for p, r in self._run_bounded(jobs).items() if isinstance(r, BaseException)}
