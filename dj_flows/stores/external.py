"""External objects: the `~external_<store>` tracking tables and `schema.external`.

Layout, hashing and the tracking table are DataJoint 0.14's, so either client reads what the other
stored. What differs is how objects move and how races are closed:

- Insert (external_insert.py): values are encoded on worker threads and streamed to the store's
  bulk upload while later values are still being packed; content already tracked, or repeated in
  the insert, is not uploaded again. Inside the insert's transaction the tracking rows are written
  first (which locks them) and the collector mark (gc.py) tells whether a collector may have
  removed any of the insert's objects meanwhile; only then are they checked and put back
  (DataJoint #1445).
- Fetch (external_fetch.py): one tracking query per column, then verified local copies, the
  cache, or the store in concurrent chunks; every object is checked against its recorded size and
  hash before it is returned, cache hits included.
"""

from __future__ import annotations

import collections.abc
import logging
import uuid
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from ..backends import PH
from ..declare import ForeignKeySpec, TableSpec
from ..errors import DataJointError, StoreError
from ..expression import QueryExpression
from ..settings import config
from ..table import FreeTable
from .layout import (
    location_prefix,
    object_key,
)
from .registry import get_store
from .store import Store

if TYPE_CHECKING:
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
        self,
        hash_: uuid.UUID,
        attachment_name: str | None = None,
        filepath: str | None = None,
        *,
        subfolding: tuple[int, ...] | None = None,
    ) -> str:
        """The object's key relative to the store root (DataJoint's, whatever the stored name:
        a name holding a path separator, which no client inserts, still gives DataJoint's key;
        the store refuses keys that would leave its root). `subfolding`: the store's, when the
        caller already has it (looking the store up costs more than the key)."""
        if filepath:
            return filepath
        folds = self.store.subfolding if subfolding is None else subfolding
        try:
            return object_key(self.database, hash_.hex, folds, attachment_name)
        except ValueError:
            if not attachment_name:
                raise
            return object_key(self.database, hash_.hex, folds) + "." + attachment_name

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


# -- insert and fetch (external_insert.py, external_fetch.py) -------------------------------------
from .external_fetch import decode_external_column  # noqa: E402
from .external_insert import encode_external_columns, finish_external_insert  # noqa: E402

__all__ = [
    "ExternalMapping",
    "ExternalTable",
    "add_external_references",
    "decode_external_column",
    "encode_external_columns",
    "external_table",
    "finish_external_insert",
]
