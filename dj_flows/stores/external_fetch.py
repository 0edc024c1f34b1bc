"""The fetch path of external attributes: find each object, verify it, decode it.

Per column: one SELECT reads the tracking rows of its hashes. Each distinct object then comes from
the cheapest source that can be verified: a file already in download_path (attachments) or in the
stage (filepaths) with the same content, a cache entry (fetch_cache.py), or the store. Copies this
process wrote or checked, unchanged since, need no hashing: they are taken first, in the calling
thread (no hand-offs); only the rest is checked on worker threads. Store reads go in chunks, a
few bulk `get_many` calls in flight at once, and each chunk is verified (size and hash against the
tracking row), cached and decoded on its worker thread while later chunks are still on the network.
Nothing unverified is ever returned: a bad cache entry is discarded and fetched again, a bad store
object raises StoreError naming the store, table, attribute and key.

Files are written by the worker that verified them; only attachments whose names reduce to the same
file name wait, and are then placed one after another in row order, so that aliases are chosen
deterministically.
"""

from __future__ import annotations

import concurrent.futures
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends import PH
from ..codecs.attach import DownloadFolder
from ..errors import DataJointError, StoreError
from . import fetch_cache
from .cache import get_cache
from .layout import attachment_uuid, uuid_from_buffer
from .store import MissingObjectError, transfer_concurrency

if TYPE_CHECKING:
    from ..expression import QueryExpression
    from ..heading import Attribute
    from .external import ExternalTable

PARALLEL_MIN = 4  # fewer objects than this are handled in the calling thread
FETCH_WORKERS = 4  # bulk reads in flight at once (each one concurrent inside)


class _Problem(Exception):
    """Raised on worker threads; turned into a StoreError (which queries the database) later."""

    def __init__(self, hash_: bytes, problem: str, cls: type[StoreError] = StoreError) -> None:
        super().__init__(problem)
        self.hash = hash_
        self.problem = problem
        self.cls = cls  # TransientStoreError stays transient for retry policies


def _run(tasks: list[Callable[[], Any]], workers: int) -> list[Any]:
    """Run the tasks (on threads when there are several), results in order; first error wins."""
    if workers <= 1 or len(tasks) <= 1:
        return [task() for task in tasks]
    pool = concurrent.futures.ThreadPoolExecutor(
        min(workers, len(tasks)), thread_name_prefix="dj-fetch"
    )
    try:
        futures = [pool.submit(task) for task in tasks]
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class _Column:
    """The objects of one external column being fetched."""

    def __init__(
        self,
        query: QueryExpression,
        attribute: Attribute,
        tracking: ExternalTable,
        info: dict[bytes, tuple],
        squeeze: bool,
        download_path: str | os.PathLike,
    ) -> None:
        self.query = query
        self.attribute = attribute
        self.kind = attribute.kind
        self.tracking = tracking
        self.store = tracking.store
        self.info = info
        self.squeeze = squeeze
        self.download_path = download_path
        self.folder: DownloadFolder | None = None  # resolved on first use
        self.subfolding = tuple(self.store.subfolding)
        self.cache = get_cache() if self.kind != "filepath" else None
        self.blocks = fetch_cache.reader() if self.cache is not None else None
        self.keys: dict[bytes, str] = {}

    # -- keys and checks ------------------------------------------------------------------------
    def key(self, hash_: bytes) -> str:
        _, attachment_name, filepath, _ = self.info[hash_]
        try:
            key = self.tracking.object_key(
                uuid.UUID(bytes=hash_), attachment_name, filepath, subfolding=self.subfolding
            )
            return self.store.check_key(key)
        except (ValueError, StoreError) as error:
            raise _Problem(
                hash_, f"cannot be located (its tracking row is unusable: {error})"
            ) from None

    def verify(self, hash_: bytes, data: bytes) -> bool:
        size, attachment_name, _, contents_hash = self.info[hash_]
        if len(data) != size:
            return False
        if self.kind == "attach":
            return attachment_uuid(attachment_name, data).bytes == hash_
        if self.kind == "filepath":
            return contents_hash is None or uuid_from_buffer(data).bytes == bytes(contents_hash)
        return uuid_from_buffer(data).bytes == hash_

    def stage_target(self, hash_: bytes) -> Path:
        stage = self.store.stage
        if not stage:
            raise _Problem(hash_, "cannot be placed: the store has no 'stage' folder")
        return Path(stage).absolute() / self.keys[hash_]

    def download_folder(self) -> DownloadFolder:
        if self.folder is None:
            self.folder = DownloadFolder(self.download_path)
        return self.folder

    # -- stage 1: what is already here ----------------------------------------------------------
    def local(self, hash_: bytes, known_only: bool = False) -> tuple[str, Any] | None:
        """('path', p) for a verified local copy, ('data', bytes) for a verified cache hit.
        known_only: only what needs no hashing to verify (this process wrote or checked it)."""
        from ..codecs.attach import file_uuid

        size, attachment_name, _, contents_hash = self.info[hash_]
        if self.kind == "attach":
            folder, checksum = self.download_folder(), uuid.UUID(bytes=hash_)
            if known_only:
                existing = folder.known(attachment_name, checksum)
            else:
                existing, _ = folder.find(attachment_name, checksum)
            if existing is not None:
                return ("path", existing)
        elif self.kind == "filepath":
            if known_only:
                return None
            target = self.stage_target(hash_)
            if (
                contents_hash is not None
                and target.is_file()
                and target.stat().st_size == size
                and file_uuid(target).bytes == bytes(contents_hash)
            ):
                return ("path", str(target))
            return None
        if self.cache is not None:
            hit = fetch_cache.lookup(
                self.cache,
                hash_,
                size,
                lambda data: self.verify(hash_, data),
                self.blocks,
                known_only,
            )
            if hit is not None:
                return ("data", hit)
        return None

    # -- stage 2: the store ---------------------------------------------------------------------
    def download(self, hashes: list[bytes]) -> dict[bytes, bytes]:
        """Read, verify and cache one chunk."""
        by_key = {self.keys[h]: h for h in hashes}
        try:
            fetched = self.store.get_many(list(by_key))
        except MissingObjectError as error:
            first = by_key.get(error.keys[0]) if error.keys else hashes[0]
            raise _Problem(
                first, f"is missing from the store ({len(error.keys)} missing)"
            ) from None
        except StoreError as error:  # named by key in the store's message
            text = str(error)
            first = next((h for k, h in by_key.items() if repr(k) in text), hashes[0])
            raise _Problem(first, f"cannot be read ({text})", type(error)) from error
        result = {}
        for key, data in fetched.items():
            hash_ = by_key[key]
            if not self.verify(hash_, data):
                raise _Problem(
                    hash_,
                    f"is corrupted (its size or hash differs from {self.tracking.table_name})",
                )
            if self.cache is not None:  # blobs that inflate slowly are cached inflated
                inflated = fetch_cache.inflated(data) if self.kind == "blob" else None
                fetch_cache.keep(self.cache, hash_, data, inflated)
                data = inflated or data
            result[hash_] = data
        return result

    def decode_blobs(self, items: dict[bytes, Any]) -> dict[bytes, Any]:
        from ..codecs.blob import unpack

        # a buffer this fetch owns and may change (a cache read) is decoded in place: writable
        # arrays without a copy; any other buffer (bytes from a store) is copied out as usual
        return {
            h: unpack(data, squeeze=self.squeeze, copy=not _owned(data))
            for h, data in items.items()
        }

    # -- files ----------------------------------------------------------------------------------
    def group(self, hash_: bytes) -> str:
        """Attachments whose names reduce to the same file name compete for it (and its aliases);
        case is folded for case-insensitive file systems."""
        from ..codecs.attach import safe_name

        return safe_name(self.info[hash_][1]).lower()

    def place(self, hash_: bytes, data: dict[bytes, Any]) -> str:
        """Write one verified object: an attachment into download_path (DataJoint's rule: reuse
        a file with the same content, never overwrite another), a filepath into the stage."""
        from ..codecs.attach import place_attachment, write_atomic

        if self.kind == "filepath":
            target = self.stage_target(hash_)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, data[hash_])
            return str(target)
        name = self.info[hash_][1]
        return place_attachment(
            name, uuid.UUID(bytes=hash_), self.download_folder(), lambda: data[hash_]
        )

    def place_group(self, hashes: list[bytes], data: dict[bytes, Any]) -> dict[bytes, str]:
        """Write attachments that share a name group, in row order (deterministic aliases)."""
        return {hash_: self.place(hash_, data) for hash_ in hashes}


def decode_external_column(
    query: QueryExpression,
    attribute: Attribute,
    values: list,
    *,
    squeeze: bool = False,
    download_path: str | os.PathLike = ".",
) -> list:
    """Fetch and decode the external objects of one column, concurrently and verified."""
    from .external import external_table

    hashes = list(dict.fromkeys(bytes(v) for v in values if v is not None))
    if not hashes:
        return [None] * len(values)
    database = attribute.database or getattr(query, "database", None)
    if database is None:
        raise DataJointError(
            f"attribute {attribute.name!r}: cannot tell which schema's {attribute.store!r} store tracks it"
        )
    tracking = external_table(query.connection, database, attribute.store)
    info = tracking.tracked(hashes)
    column = _Column(query, attribute, tracking, info, squeeze, download_path)
    try:
        decoded = _fetch(column, hashes)
    except _Problem as problem:
        raise problem.cls(
            _where(query, attribute, tracking, problem.hash, problem.problem)
        ) from problem.__cause__
    return [None if v is None else decoded[bytes(v)] for v in values]


def _fetch(column: _Column, hashes: list[bytes]) -> dict[bytes, Any]:
    untracked = [h for h in hashes if h not in column.info]
    if untracked:
        raise _Problem(untracked[0], f"is not tracked in {column.tracking.table_name}")
    if column.kind == "filepath":  # the stage is looked up by key
        column.keys.update((h, column.key(h)) for h in hashes)
    workers = FETCH_WORKERS if len(hashes) >= PARALLEL_MIN else 1
    size = max(1, transfer_concurrency())

    # 1. verified copies already here (download folder, stage, cache); cached blobs decoded
    blobs = column.kind == "blob"
    found: dict[bytes, Any] = {}
    data: dict[bytes, bytes] = {}
    if not (blobs and column.cache is None):

        def look(batch: list[bytes], known_only: bool = False) -> list:
            results = [column.local(h, known_only) for h in batch]
            if blobs:
                hits = {h: r[1] for h, r in zip(batch, results) if r is not None}
                values = column.decode_blobs(hits)
                results = [
                    None if r is None else ("value", values[h]) for h, r in zip(batch, results)
                ]
            return results

        def collect(batch: list[bytes], results: list) -> None:
            for hash_, result in zip(batch, results):
                if result is None:
                    continue
                if result[0] == "data":
                    data[hash_] = result[1]
                else:
                    found[hash_] = result[1]

        # what this process already checked (unchanged since) needs no hashing: taken here, in
        # this thread, with no hand-offs; only the rest (to hash, or absent) goes to the workers
        collect(hashes, look(hashes, known_only=True))
        batches = _chunks([h for h in hashes if h not in found and h not in data], size)
        for batch, results in zip(batches, _run([lambda b=b: look(b) for b in batches], workers)):
            collect(batch, results)

    # 2. the rest from the store, chunk by chunk, each decoded (blobs) or written (files whose
    # name no other object of the column shares) by its worker as soon as it arrives
    remote = [h for h in hashes if h not in found and h not in data]
    column.keys.update((h, column.key(h)) for h in remote if h not in column.keys)
    alone = _alone(column, [h for h in hashes if h not in found])

    def finish(got: dict[bytes, Any]) -> tuple[dict[bytes, Any], dict[bytes, Any]]:
        """(done: hash -> value, left: hash -> bytes still to place)."""
        if blobs:
            return column.decode_blobs(got), {}
        done = {h: column.place(h, got) for h in got if h in alone}
        return done, {h: v for h, v in got.items() if h not in done}

    tasks = [lambda c=c: finish(column.download(c)) for c in _chunks(remote, size)]
    cached = [h for h in data if h in alone]
    tasks += [lambda c=c: finish({h: data[h] for h in c}) for c in _chunks(cached, size)]
    for done, left in _run(tasks, workers):
        found.update(done)
        data.update(left)
    if blobs:
        return found

    # 3. attachments sharing a safe name: one name at a time, in row order (DataJoint's aliases)
    pending = [h for h in hashes if h not in found]
    groups: dict[str, list[bytes]] = {}
    for hash_ in pending:
        groups.setdefault(column.group(hash_), []).append(hash_)
    for result in _run([lambda g=g: column.place_group(g, data) for g in groups.values()], workers):
        found.update(result)
    return found


def _alone(column: _Column, hashes: list[bytes]) -> set[bytes]:
    """The hashes whose file no other hash of the column competes with for a name."""
    if column.kind == "filepath":
        return set(hashes)  # distinct hashes are distinct relative paths
    if column.kind != "attach":
        return set()
    count: dict[str, int] = {}
    for hash_ in hashes:
        count[column.group(hash_)] = count.get(column.group(hash_), 0) + 1
    return {h for h in hashes if count[column.group(h)] == 1}


def _where(
    query: Any, attribute: Attribute, tracking: ExternalTable, hash_: bytes, problem: str
) -> str:
    """A message naming the object, its attribute, table and key, and the store."""
    from ..condition import Condition

    table = getattr(query, "table_name", None)
    if table is not None and getattr(query, "database", None):
        table = f"{query.database}.{table}"
    key = None
    quote = query.connection.backend.quote
    condition = Condition(f"{quote(attribute.name)} = {PH}", (hash_,))
    try:
        rows = query.restrict(condition).fetch("KEY", limit=1)
        key = rows[0] if len(rows) else None
    except DataJointError:
        pass
    if table is None:  # a join or projection: name the table that holds the column
        try:
            for ref in tracking.references:
                if ref["column_name"] == attribute.name:
                    table = ".".join(ref["referencing_table"])
                    break
        except DataJointError:
            pass
    try:
        store = tracking.store.describe()
    except DataJointError:
        store = f"store {tracking.store_name!r}"
    return (
        f"object {uuid.UUID(bytes=hash_)} of attribute {attribute.name!r} in table "
        f"{table or 'query'!r}{f' (key {key})' if key else ''} {problem}: {store}"
    )


def _owned(data: object) -> bool:
    return isinstance(data, bytearray) or (isinstance(data, memoryview) and not data.readonly)
