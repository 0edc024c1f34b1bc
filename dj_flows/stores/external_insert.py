"""The insert path of external attributes: encode, deduplicate, upload new objects, track them.

Work is streamed so that CPU and network overlap:

1. Values are checked first (attachment files exist, filepaths are inside the stage) so that a bad
   input fails before anything is uploaded.
2. Values are encoded (blob packed, file read once, content hashed) on a small thread pool, in row
   order, at most a bounded window ahead (zlib and MD5 release the GIL).
3. Encoded objects are gathered into chunks; for each chunk the calling thread asks the tracking
   table which hashes it already holds (one SELECT per chunk), and hands the new objects to a
   background uploader that calls the store's bulk `put_many` (itself concurrent). Content already
   tracked, or repeated within the insert, is never uploaded again.
4. `finish_external_insert`, inside the insert's transaction, writes the tracking rows first (in
   hash order; the upsert locks them, and takes no gap locks on absent rows as SELECT ... FOR
   UPDATE would), then reads the store's collector mark again (see gc.py). Only if a collector
   was busy, or finished a page, since the mark was read before the tracked-check does it check
   that the insert's objects exist, uploading missing ones again from the bytes it kept. With no
   collector in between, an insert makes no HEAD request at all.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DataJointError, DataValueError, StoreError
from .layout import attachment_uuid, filepath_uuid, uuid_from_buffer
from .store import Store, transfer_concurrency

if TYPE_CHECKING:
    from ..heading import Attribute
    from ..table import Table
    from .external import ExternalTable

logger = logging.getLogger("dj_flows.external")
CHUNK_BYTES = 32 << 20  # an upload chunk holds at most this many bytes ...
CHUNK_FACTOR = 4  # ... or this many times transfer_concurrency objects
PARALLEL_MIN = 4  # fewer values than this are encoded in the calling thread
MAX_NAME = 255  # the tracking table's attachment_name is varchar(255)


@dataclass
class Encoded:
    """One external value, ready to upload and track."""

    hash: bytes
    key: str
    entry: tuple  # (hash, size, attachment_name, filepath, contents_hash): a tracking row
    data: bytes


class Pending:
    """Objects of one store in one insert: what `finish_external_insert` must track."""

    def __init__(self, tracking: ExternalTable) -> None:
        from .gc import read_mark

        self.tracking = tracking
        self.mark = read_mark(tracking)  # before anything is checked or uploaded
        self.entries: dict[bytes, tuple] = {}  # hash -> tracking row
        self.keys: dict[bytes, str] = {}  # hash -> object key
        self.data: dict[bytes, bytes] = {}  # hash -> bytes, to upload again if a collector took it
        self.uploaded: set[bytes] = set()

    def add(self, item: Encoded) -> bool:
        """Record `item`; False if the same content is already part of this insert."""
        if item.hash in self.entries:
            return False
        self.entries[item.hash] = item.entry
        self.keys[item.hash] = item.key
        self.data[item.hash] = item.data
        return True


# -- encoding ---------------------------------------------------------------------------------------
def _context(table: Table, attribute: Attribute) -> str:
    return f"insert into {table.table_name!r}: attribute {attribute.name!r}"


def _check(table: Table, attribute: Attribute, value: Any, tracking: ExternalTable) -> None:
    """Cheap checks done before any upload, so that a bad value uploads nothing."""
    if attribute.kind == "blob":
        return
    if not isinstance(value, str | os.PathLike):
        raise DataValueError(
            f"{_context(table, attribute)}: expected a file path, got {type(value).__name__}"
        )
    if attribute.kind == "attach":
        if not os.path.isfile(value):
            raise DataValueError(
                f"{_context(table, attribute)}: attachment {os.fspath(value)!r} is not a readable file"
            )
    else:
        _stage_relative(table, attribute, value, tracking)


def _stage_relative(table: Table, attribute: Attribute, value: Any, tracking: ExternalTable) -> str:
    stage = tracking.store.stage
    where = f"{_context(table, attribute)}: store {tracking.store_name!r}"
    if not stage:
        raise DataValueError(f"{where} has no 'stage' folder for filepath values")
    file = Path(os.path.abspath(value))  # '..' resolved: stage/../x is not in the stage
    try:
        relative = file.relative_to(os.path.abspath(stage)).as_posix()
    except ValueError:
        raise DataValueError(
            f"{where}: {os.fspath(value)!r} is not inside the stage folder {stage!r}"
        ) from None
    if not file.is_file():
        raise DataValueError(f"{where}: {os.fspath(value)!r} is not a file")
    return relative


def _encode(table: Table, attribute: Attribute, value: Any, tracking: ExternalTable) -> Encoded:
    """Pack or read the value once and hash it (runs on worker threads: no database access)."""
    from ..codecs.attach import read_attachment
    from ..codecs.blob import pack

    try:
        if attribute.kind == "blob":
            data = pack(value)
            hash_ = uuid_from_buffer(data)
            entry = (hash_.bytes, len(data), None, None, None)
            return Encoded(hash_.bytes, tracking.object_key(hash_), entry, data)
        if attribute.kind == "attach":
            name, data = read_attachment(value, attribute.name)
            if len(name) > MAX_NAME:
                raise DataValueError(f"attachment name {name[:40]!r}... is longer than {MAX_NAME}")
            hash_ = attachment_uuid(name, data)
            entry = (hash_.bytes, len(data), name, None, None)
            return Encoded(hash_.bytes, tracking.object_key(hash_, name), entry, data)
        relative = _stage_relative(table, attribute, value, tracking)
        data = Path(value).read_bytes()
        hash_ = filepath_uuid(relative)
        contents = uuid_from_buffer(data)
        entry = (hash_.bytes, len(data), None, relative, contents.bytes)
        return Encoded(hash_.bytes, relative, entry, data)
    except DataJointError as error:  # DataValueError, BlobError, ...: same class, with context
        message = str(error)
        prefix = _context(table, attribute)
        raise type(error)(
            message if message.startswith(prefix) else f"{prefix}: {message}"
        ) from None
    except (OSError, TypeError, ValueError) as error:
        raise DataValueError(f"{_context(table, attribute)}: {error}") from None


def _ordered_map(func: Callable[[Any], Any], items: list, workers: int) -> Iterator[Any]:
    """func over items on `workers` threads, results in order, at most a window ahead."""
    if workers <= 1 or len(items) < PARALLEL_MIN:
        yield from map(func, items)
        return
    window = workers * 4
    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="dj-encode")
    try:
        source = iter(items)
        queue = collections.deque(
            pool.submit(func, item) for item in itertools.islice(source, window)
        )
        while queue:
            result = queue.popleft().result()
            for item in itertools.islice(source, 1):
                queue.append(pool.submit(func, item))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def encode_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


# -- uploading --------------------------------------------------------------------------------------
class Uploader:
    """Runs bulk uploads in the background, at most `depth` chunks at a time; `close()` waits
    for all of them and raises the first failure."""

    def __init__(self, depth: int = 2) -> None:
        self.depth = depth
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._futures: list[concurrent.futures.Future] = []
        self.objects = 0
        self.bytes = 0

    def submit(self, store: Store, items: dict[str, bytes], *, last: bool = False) -> None:
        if not items:
            return
        self.objects += len(items)
        self.bytes += sum(map(len, items.values()))
        if last and not any(not f.done() for f in self._futures):
            store.put_many(items)  # nothing in flight: no thread needed
            return
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self.depth, thread_name_prefix="dj-upload"
            )
        in_flight = [f for f in self._futures if not f.done()]
        if len(in_flight) >= self.depth:  # bound memory: wait for a slot
            concurrent.futures.wait(in_flight, return_when=concurrent.futures.FIRST_COMPLETED)
        self._futures.append(self._pool.submit(store.put_many, items))

    def close(self, quiet: bool = False) -> None:
        """Wait for every upload; raise the first failure unless `quiet`."""
        try:
            for future in self._futures:
                if quiet:
                    concurrent.futures.wait([future])
                else:
                    future.result()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None


def _flush(chunk: list[tuple[Pending, Encoded]], uploader: Uploader, last: bool) -> None:
    """Upload the chunk's objects that no tracking row holds yet; keep the others' bytes."""
    by_group: dict[int, tuple[Pending, list[Encoded]]] = {}
    for group, item in chunk:
        by_group.setdefault(id(group), (group, []))[1].append(item)
    groups = list(by_group.values())
    for index, (group, items) in enumerate(groups):
        tracked = group.tracking.tracked(item.hash for item in items)
        new = {}
        for item in items:
            found = tracked.get(item.hash)
            if found is None:
                new[item.key] = item.data
                group.uploaded.add(item.hash)
                continue
            contents_hash = found[3]
            if contents_hash is not None and bytes(contents_hash) != item.entry[4]:
                raise DataValueError(
                    f"store {group.tracking.store_name!r}: a different version of "
                    f"{item.entry[3]!r} is already tracked in {group.tracking.table_name}"
                )
        uploader.submit(group.tracking.store, new, last=last and index == len(groups) - 1)


def encode_external_columns(
    table: Table, attributes: list[Attribute], rows: list[dict]
) -> list[Pending]:
    """Replace external values in `rows` by their hashes and upload the new objects (before the
    insert's transaction). Returns what `finish_external_insert` must do inside it."""
    from ..values import is_missing
    from .external import external_table

    groups: dict[str, Pending] = {}
    jobs: list[tuple[Pending, Attribute, dict, Any]] = []
    for attribute in attributes:
        for row in rows:
            if attribute.name not in row or is_missing(attribute, row[attribute.name]):
                continue
            group = groups.get(attribute.store)
            if group is None:  # only stores that get a value cost a collector-mark read
                tracking = external_table(table.connection, table.database, attribute.store)
                group = groups[attribute.store] = Pending(tracking)
            value = row[attribute.name]
            _check(table, attribute, value, group.tracking)
            jobs.append((group, attribute, row, value))
    if not jobs:
        return list(groups.values())

    def encode(job: tuple[Pending, Attribute, dict, Any]) -> Encoded:
        group, attribute, _, value = job
        return _encode(table, attribute, value, group.tracking)

    limit = transfer_concurrency() * CHUNK_FACTOR
    uploader = Uploader()
    try:
        chunk: list[tuple[Pending, Encoded]] = []
        size = 0
        for job, item in zip(jobs, _ordered_map(encode, jobs, encode_workers())):
            group, attribute, row, _ = job
            row[attribute.name] = item.hash
            if not group.add(item):
                continue
            chunk.append((group, item))
            size += len(item.data)
            if size >= CHUNK_BYTES or len(chunk) >= limit:
                _flush(chunk, uploader, last=False)
                chunk, size = [], 0
        _flush(chunk, uploader, last=True)
    except BaseException:
        uploader.close(quiet=True)  # the first failure is the one to report
        raise
    uploader.close()
    return list(groups.values())


# -- inside the insert's transaction ----------------------------------------------------------------
def finish_external_insert(pending: list[Pending]) -> None:
    """Track the insert's objects (locking their rows), then make sure no collector took any."""
    from .gc import read_mark, uploads_may_be_gone

    for group in pending:
        if not group.entries:
            continue
        tracking = group.tracking
        tracking.track([group.entries[h] for h in sorted(group.entries)])
        if not uploads_may_be_gone(group.mark, read_mark(tracking)):
            continue
        present = _present(tracking.store, group, group.entries)
        missing = [h for h in group.entries if h not in present]
        if missing:
            logger.warning(
                "store %s: uploading again %d tracked objects that a collector removed",
                tracking.store_name,
                len(missing),
            )
            tracking.store.put_many({group.keys[h]: group.data[h] for h in missing})


def _present(store: Store, group: Pending, hashes: Iterable[bytes]) -> set[bytes]:
    """The hashes whose objects exist in the store with their tracked size (concurrent HEADs)."""
    hashes = list(hashes)
    if not hashes:
        return set()
    keys = [group.keys[h] for h in hashes]
    workers = min(transfer_concurrency(), len(keys))
    try:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            sizes = list(pool.map(store.size, keys))
    except DataJointError:
        raise
    except Exception as error:  # pragma: no cover - Store.size translates its errors
        raise StoreError(f"{store.describe()}: cannot check objects: {error}") from error
    return {h for h, size in zip(hashes, sizes) if size == group.entries[h][1]}
