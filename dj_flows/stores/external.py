"""External objects: the `~external_<store>` tracking tables and the insert/fetch paths through them.

Layout, hashing and the tracking table are DataJoint 0.14's, so either client reads what the other
stored. What differs is how objects move and how races are closed:

- Objects of a whole insert (or fetch) move in one concurrent batch per store.
- Content already tracked is not uploaded again. Inside the insert's transaction the tracking rows
  are locked (SELECT ... FOR UPDATE; SQLite serializes writers anyway) and touched, and objects of
  reused rows are checked to exist (a HEAD, not an upload) and re-uploaded if a collector removed
  them. A collector removes files only while holding the same row locks, so an insert that re-uses
  content being collected always ends with the object present (DataJoint #1445).
- Every object fetched is checked against its recorded size and hash; a cache hit is checked too.
"""

from __future__ import annotations

import collections.abc
import logging
import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ..backends import PH
from ..declare import ForeignKeySpec, TableSpec
from ..errors import DataJointError, DataValueError, StoreError
from ..expression import QueryExpression
from ..settings import config
from ..table import FreeTable
from .cache import get_cache
from .layout import (
    attachment_uuid,
    filepath_uuid,
    location_prefix,
    object_key,
    uuid_from_buffer,
    uuid_from_file,
)
from .registry import get_store
from .store import MissingObjectError, Store

if TYPE_CHECKING:
    from ..heading import Attribute
    from ..table import Table

logger = logging.getLogger("dj_flows.external")
EXTERNAL_TABLE_ROOT = "~external"
BATCH = 1000
DEFINITION = """
# external storage tracking
hash  : uuid    #  hash of contents (blob), of filename + contents (attach), or relative filepath (filepath)
---
size      :bigint unsigned     # size of object in bytes
attachment_name=null : varchar(255)  # the filename of an attachment
filepath=null : varchar(1000)  # relative filepath or attachment filename
contents_hash=null : uuid      # used for the filepath datatype
timestamp=CURRENT_TIMESTAMP  :timestamp   # automatic timestamp
"""


class ExternalTable(FreeTable):
    """The tracking table of one store in one schema."""

    def __init__(self, connection: Any, store: str, database: str) -> None:
        super().__init__(connection, database, f"{EXTERNAL_TABLE_ROOT}_{store}")
        self.store_name = store
        self.definition = DEFINITION
        if not self.is_declared:
            self.declare({})
        from .history import declare_history

        declare_history(connection, database, store)

    @property
    def store(self) -> Store:
        return get_store(self.store_name)

    @property
    def spec(self) -> dict:
        from ..settings import mask_secrets

        return mask_secrets(dict(config["stores"].get(self.store_name, {})))

    def _extend_spec(self, spec: TableSpec) -> TableSpec:
        return spec

    def __repr__(self) -> str:
        store = config["stores"].get(self.store_name, {})
        where = store.get("location", "")
        if store.get("protocol") == "s3":
            where = f"{store.get('endpoint')}/{store.get('bucket')}/{where}".rstrip("/")
        header = f"External table `{self.database}`.`{self.table_name}` for store {self.store_name!r} ({store.get('protocol')}:{where})\n"
        return header + QueryExpression.__repr__(self)

    # -- object keys ----------------------------------------------------------------------------
    def object_key(
        self, hash_: uuid.UUID, attachment_name: str | None = None, filepath: str | None = None
    ) -> str:
        """The object's key relative to the store root."""
        if filepath:
            return filepath
        return object_key(self.database, hash_.hex, self.store.subfolding, attachment_name)

    def full_path(self, key: str) -> PurePosixPath:
        store = config["stores"].get(self.store_name, {})
        prefix = location_prefix(store.get("protocol", ""), store.get("location", ""))
        return PurePosixPath(prefix, key) if prefix else PurePosixPath(key)

    # -- tracking rows --------------------------------------------------------------------------
    def tracked(self, hashes: Iterable[bytes], *, lock: bool = False) -> dict[bytes, tuple]:
        """{hash: (size, attachment_name, filepath, contents_hash)} for the hashes that are tracked."""
        hashes = list(dict.fromkeys(hashes))
        found: dict[bytes, tuple] = {}
        quote = self.connection.backend.quote
        suffix = (
            self.connection.backend.lock_suffix if lock and self.connection.in_transaction else ""
        )
        for start in range(0, len(hashes), BATCH):
            batch = hashes[start : start + BATCH]
            sql = (
                f"SELECT {quote('hash')}, {quote('size')}, {quote('attachment_name')}, {quote('filepath')}, "
                f"{quote('contents_hash')} FROM {self.full_table_name} WHERE {quote('hash')} IN "
                f"({', '.join([PH] * len(batch))}){suffix}"
            )
            for row in self.connection.query(sql, batch).fetchall():
                found[bytes(row[0])] = tuple(row[1:])
        return found

    def track(self, entries: list[tuple]) -> None:
        """Insert or touch (timestamp = now) tracking rows: (hash, size, attachment_name, filepath, contents_hash)."""
        if not entries:
            return
        backend = self.connection.backend
        columns = ["hash", "size", "attachment_name", "filepath", "contents_hash"]
        sql = backend.insert_statement(self.full_table_name, columns, "touch", ["hash"])
        self.connection.query(sql, entries, many=True)

    # -- DataJoint's inspection API -------------------------------------------------------------
    @property
    def references(self) -> list[dict]:
        """[{'referencing_table': schema.table, 'column_name': name}] for every column pointing here."""
        self.connection.invalidate()
        refs = []
        for edge in self.connection.dependencies.children(self.node):
            for column in edge.attr_map:
                refs.append({"referencing_table": edge.child, "column_name": column})
        return refs

    def _referencing(self) -> list:
        return [
            FreeTable(self.connection, *ref["referencing_table"]).proj(hash=ref["column_name"])
            for ref in self.references
        ]

    def used(self) -> Any:
        """The tracking rows some table references."""
        refs = self._referencing()
        return self & refs if refs else self & "1=0"

    def unused(self) -> Any:
        """The tracking rows no table references."""
        refs = self._referencing()
        return self - refs if refs else self._copy()

    def fetch_external_paths(self, **fetch_kwargs: Any) -> list[tuple[uuid.UUID, PurePosixPath]]:
        """(hash, full external path) of each tracked object, as DataJoint returns them."""
        fetch_kwargs.update(as_dict=True)
        paths = []
        for item in self.fetch("hash", "attachment_name", "filepath", **fetch_kwargs):
            key = self.object_key(item["hash"], item["attachment_name"], item["filepath"])
            paths.append((item["hash"], self.full_path(key)))
        return paths

    def delete(  # type: ignore[override]
        self,
        *,
        delete_external_files: bool | None = None,
        limit: int | None = None,
        display_progress: bool = False,
        errors_as_string: bool = True,
    ) -> list:
        """Remove unused tracking rows, and with delete_external_files=True their objects too.

        Runs on the safe collector (grace period 0 here, as DataJoint's API has no grace period):
        rows are locked, re-checked as unused, their objects removed in bulk, and only the rows
        whose objects are gone are deleted, in one transaction. Returns the errors (DataJoint's shape).
        """
        if delete_external_files not in (True, False):
            raise DataJointError(
                "the delete_external_files argument must be set to either True or False in delete()"
            )
        from .gc import collect

        report = collect(self, grace_seconds=0, delete_files=delete_external_files, limit=limit)
        return [(e[0], e[1], e[2] if errors_as_string else StoreError(e[2])) for e in report.errors]


class ExternalMapping(collections.abc.Mapping):
    """store name -> ExternalTable of a schema; stores appear once used (or declared)."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema
        self._tables: dict[str, ExternalTable] = {}

    def _declared_stores(self) -> list[str]:
        connection = self.schema.connection
        prefix = EXTERNAL_TABLE_ROOT + "_"
        tables = connection.backend.list_tables(connection._cursor(), self.schema.database)
        return [t[len(prefix) :] for t in tables if t.startswith(prefix)]

    def __getitem__(self, store: str) -> ExternalTable:
        if store not in self._tables:
            if store not in config["stores"]:
                raise StoreError(
                    f"store {store!r} is not configured (configured: {', '.join(config['stores']) or 'none'})"
                )
            self._tables[store] = ExternalTable(self.schema.connection, store, self.schema.database)
        return self._tables[store]

    def __iter__(self):
        stores = dict.fromkeys(self._declared_stores())
        stores.update(dict.fromkeys(self._tables))
        return iter(s for s in stores if s in config["stores"])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        lines = [f"External file tables for schema `{self.schema.database}`:"]
        for name in self:
            spec = config["stores"][name]
            where = spec.get("location", "")
            if spec.get("protocol") == "s3":
                where = f"{spec.get('endpoint')}/{spec.get('bucket')}/{where}".rstrip("/")
            lines.append(f'    "{name}" {spec.get("protocol")}:{where}')
        return "\n".join(lines)


def external_table(connection: Any, database: str, store: str) -> ExternalTable:
    """The tracking table of `store` in `database`, declared on first use."""
    schema = connection.schemas.get(database)
    if schema is not None:
        return schema.external[store]
    if store not in config["stores"]:
        raise StoreError(
            f"store {store!r} is not configured (configured: {', '.join(config['stores']) or 'none'})"
        )
    return ExternalTable(connection, store, database)


# -- declaration ----------------------------------------------------------------------------------
def add_external_references(table: Table, spec: TableSpec) -> TableSpec:
    """Give every external attribute a foreign key to its store's tracking table (as DataJoint does)."""
    stores = list(dict.fromkeys(a.store for a in spec.attributes if a.is_external))
    if not stores:
        return spec
    keys = list(spec.foreign_keys)
    for store in stores:
        tracking = external_table(table.connection, table.database, store)
        for attribute in spec.attributes:
            if attribute.store == store:
                keys.append(
                    ForeignKeySpec(
                        tracking.database,
                        tracking.table_name,
                        {attribute.name: "hash"},
                        attribute.in_key,
                        attribute.nullable,
                        False,
                    )
                )
    return TableSpec(spec.table, spec.comment, spec.attributes, tuple(keys), spec.indexes)


# -- insert -----------------------------------------------------------------------------------------
class _Pending:
    """Objects of one store waiting to be tracked by an insert."""

    def __init__(self, tracking: ExternalTable) -> None:
        self.tracking = tracking
        self.objects: dict[
            bytes, tuple[str, bytes | None, Path | None]
        ] = {}  # hash -> (key, data, file)
        self.entries: dict[bytes, tuple] = {}
        self.uploaded: set[bytes] = set()


def encode_external_columns(
    table: Table, attributes: list[Attribute], rows: list[dict]
) -> list[_Pending]:
    """Replace external values in `rows` by their hashes and upload new objects (before the
    insert's transaction). Returns what `finish_external_insert` must do inside it."""
    from ..codecs.attach import read_attachment
    from ..codecs.blob import pack
    from ..values import is_missing

    pending: dict[str, _Pending] = {}
    for attribute in attributes:
        group = pending.get(attribute.store)
        if group is None:
            group = pending[attribute.store] = _Pending(
                external_table(table.connection, table.database, attribute.store)
            )
        tracking = group.tracking
        for row in rows:
            if attribute.name not in row or is_missing(attribute, row[attribute.name]):
                continue
            value = row[attribute.name]
            try:
                if attribute.kind == "blob":
                    data = pack(value)
                    hash_ = uuid_from_buffer(data)
                    group.objects[hash_.bytes] = (tracking.object_key(hash_), data, None)
                    group.entries[hash_.bytes] = (hash_.bytes, len(data), None, None, None)
                elif attribute.kind == "attach":
                    name, data = read_attachment(value, attribute.name)
                    hash_ = attachment_uuid(name, data)
                    group.objects[hash_.bytes] = (tracking.object_key(hash_, name), data, None)
                    group.entries[hash_.bytes] = (hash_.bytes, len(data), name, None, None)
                else:  # filepath
                    hash_, key, file, contents = _filepath_entry(tracking, attribute, value)
                    group.objects[hash_.bytes] = (key, None, file)
                    group.entries[hash_.bytes] = (
                        hash_.bytes,
                        file.stat().st_size,
                        None,
                        key,
                        contents.bytes,
                    )
            except (OSError, TypeError) as error:
                raise DataValueError(
                    f"insert into {table.table_name!r}: attribute {attribute.name!r}: {error}"
                ) from None
            row[attribute.name] = hash_.bytes
    for group in pending.values():
        already = group.tracking.tracked(group.objects)
        for hash_, entry in already.items():
            if entry[3] and group.entries[hash_][4] != (bytes(entry[3]) if entry[3] else None):
                relative = group.entries[hash_][3]
                raise DataValueError(
                    f"store {group.tracking.store_name!r}: a different version of {relative!r} is already tracked"
                )
        new = {h: o for h, o in group.objects.items() if h not in already}
        _upload(group, new)
    return list(pending.values())


def _filepath_entry(
    tracking: ExternalTable, attribute: Attribute, value: Any
) -> tuple[uuid.UUID, str, Path, uuid.UUID]:
    stage = tracking.store.stage
    if not stage:
        raise DataValueError(
            f"attribute {attribute.name!r}: store {tracking.store_name!r} has no 'stage' folder for filepath values"
        )
    file = Path(value).absolute()
    try:
        relative = file.relative_to(Path(stage).absolute()).as_posix()
    except ValueError:
        raise DataValueError(
            f"attribute {attribute.name!r}: {str(value)!r} is not inside the stage folder {stage!r}"
        ) from None
    if not file.is_file():
        raise DataValueError(f"attribute {attribute.name!r}: {str(value)!r} is not a file")
    return filepath_uuid(relative), relative, file, uuid_from_file(file)


def _upload(
    group: _Pending, objects: Mapping[bytes, tuple[str, bytes | None, Path | None]]
) -> None:
    if not objects:
        return
    items = {
        key: data if data is not None else file.read_bytes() for key, data, file in objects.values()
    }
    group.tracking.store.put_many(items)
    group.uploaded.update(objects)


def finish_external_insert(pending: list[_Pending]) -> None:
    """Inside the insert's transaction: lock and check tracking rows, heal, then track."""
    for group in pending:
        if not group.entries:
            continue
        existing = group.tracking.tracked(group.entries, lock=True)
        reused = [h for h in group.entries if h in existing and h not in group.uploaded]
        if reused:
            store = group.tracking.store
            keys = {group.objects[h][0]: h for h in reused}
            present = (
                {k for k in keys if store.size(k) is not None}
                if len(keys) < 8
                else _present(store, keys)
            )
            missing = {keys[k]: group.objects[keys[k]] for k in keys if k not in present}
            if missing:
                logger.warning(
                    "store %s: re-uploading %d tracked objects that were missing",
                    store.name,
                    len(missing),
                )
                _upload(group, missing)
        gone = {
            h: group.objects[h]
            for h in group.entries
            if h not in existing and h not in group.uploaded
        }
        _upload(group, gone)
        group.tracking.track(list(group.entries.values()))


def _present(store: Store, keys: Mapping[str, bytes]) -> set[str]:
    from concurrent.futures import ThreadPoolExecutor

    from .store import transfer_concurrency

    with ThreadPoolExecutor(transfer_concurrency()) as pool:
        sizes = dict(zip(keys, pool.map(store.size, keys)))
    return {k for k, size in sizes.items() if size is not None}


# -- fetch ------------------------------------------------------------------------------------------
def decode_external_column(
    query: QueryExpression,
    attribute: Attribute,
    values: list,
    *,
    squeeze: bool = False,
    download_path: str | os.PathLike = ".",
) -> list:
    """Fetch and decode the external objects of one column, concurrently and verified."""
    from ..codecs.attach import file_uuid, place_attachment, safe_name
    from ..codecs.blob import unpack

    hashes = [bytes(v) for v in values if v is not None]
    if not hashes:
        return [None] * len(values)
    database = attribute.database or getattr(query, "database", None)
    if database is None:
        raise DataJointError(
            f"attribute {attribute.name!r}: cannot tell which schema's {attribute.store!r} store tracks it"
        )
    tracking = external_table(query.connection, database, attribute.store)
    info = tracking.tracked(hashes)
    untracked = [h for h in dict.fromkeys(hashes) if h not in info]
    if untracked:
        raise StoreError(
            _where(
                query, attribute, tracking, untracked[0], "is not tracked in " + tracking.table_name
            )
        )

    wanted: dict[bytes, str] = {}
    local: dict[bytes, str] = {}
    for hash_ in dict.fromkeys(hashes):
        size, attachment_name, filepath, contents_hash = info[hash_]
        if attribute.kind == "attach":  # an existing identical file needs no download
            target = Path(download_path) / safe_name(attachment_name)
            if target.is_file() and file_uuid(target, attachment_name + "\0") == uuid.UUID(
                bytes=hash_
            ):
                local[hash_] = str(target)
                continue
        if attribute.kind == "filepath":
            target = Path(tracking.store.stage or ".") / filepath
            if (
                target.is_file()
                and contents_hash
                and file_uuid(target) == uuid.UUID(bytes=bytes(contents_hash))
            ):
                local[hash_] = str(target)
                continue
        wanted[hash_] = tracking.object_key(uuid.UUID(bytes=hash_), attachment_name, filepath)

    data = _get_verified(query, attribute, tracking, wanted, info)
    decoded: dict[bytes, Any] = dict(local)
    for hash_, blob in data.items():
        size, attachment_name, filepath, _ = info[hash_]
        if attribute.kind == "blob":
            decoded[hash_] = blob
        elif attribute.kind == "attach":
            decoded[hash_] = place_attachment(
                attachment_name, uuid.UUID(bytes=hash_), download_path, lambda b=blob: b
            )
        else:
            target = Path(tracking.store.stage or ".") / filepath
            target.parent.mkdir(parents=True, exist_ok=True)
            from ..codecs.attach import write_atomic

            write_atomic(target, blob)
            decoded[hash_] = str(target)
    if attribute.kind == "blob":
        unpacked = {h: unpack(b, squeeze=squeeze) for h, b in decoded.items()}
        return [None if v is None else unpacked[bytes(v)] for v in values]
    return [None if v is None else decoded[bytes(v)] for v in values]


def _get_verified(
    query: Any, attribute: Attribute, tracking: ExternalTable, wanted: dict[bytes, str], info: dict
) -> dict[bytes, bytes]:
    """Objects by hash: from the cache when it holds a verified copy, else from the store."""
    cache = get_cache()
    result: dict[bytes, bytes] = {}

    def verify(hash_: bytes, data: bytes) -> bool:
        size, attachment_name, _, contents_hash = info[hash_]
        if len(data) != size:
            return False
        if attribute.kind == "attach":
            return attachment_uuid(attachment_name, data).bytes == hash_
        if attribute.kind == "filepath":
            return contents_hash is None or uuid_from_buffer(data).bytes == bytes(contents_hash)
        return uuid_from_buffer(data).bytes == hash_

    if cache is not None:
        for hash_ in list(wanted):
            hit = cache.get(
                uuid.UUID(bytes=hash_).hex,
                expected_size=info[hash_][0],
                verify=lambda d, h=hash_: verify(h, d),
            )
            if hit is not None:
                result[hash_] = hit
                del wanted[hash_]
    if wanted:
        keys = {key: hash_ for hash_, key in wanted.items()}
        try:
            fetched = tracking.store.get_many(list(keys))
        except MissingObjectError as error:
            missing = keys.get(error.keys[0]) if error.keys else next(iter(wanted))
            raise StoreError(
                _where(query, attribute, tracking, missing, "is missing from the store")
            ) from None
        for key, data in fetched.items():
            hash_ = keys[key]
            if not verify(hash_, data):
                raise StoreError(
                    _where(
                        query,
                        attribute,
                        tracking,
                        hash_,
                        f"is corrupted (size or hash differs from {tracking.table_name})",
                    )
                )
            result[hash_] = data
            if cache is not None:
                cache.put(uuid.UUID(bytes=hash_).hex, data)
    return result


def _where(
    query: Any, attribute: Attribute, tracking: ExternalTable, hash_: bytes, problem: str
) -> str:
    from ..condition import Condition

    key = None
    try:
        quote = query.connection.backend.quote
        rows = query.restrict(Condition(f"{quote(attribute.name)} = {PH}", (hash_,))).fetch(
            "KEY", limit=1
        )
        key = rows[0] if rows else None
    except DataJointError:
        pass
    table = getattr(query, "table_name", None) or "query"
    return (
        f"object {uuid.UUID(bytes=hash_)} of attribute {attribute.name!r} in table {table!r}"
        f"{f' (key {key})' if key else ''} {problem}: {tracking.store.describe()}"
    )
