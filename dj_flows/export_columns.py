"""One attribute of a query -> one Arrow column: its type, field metadata and arrays per page.

Declared kinds map to fixed Arrow types (see `plain_type`); blob and computed columns get a
`Layout` inferred from their values (export_layout.py). Attachments become a struct of name, hash,
size and URI (and the bytes when asked for); `blob@store` objects of a page are fetched in one
concurrent, verified batch through stores/external.py; `attach@store` and `filepath@store` need only
their tracking rows (no download) unless bytes are asked for.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import MutableSequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .errors import DataJointError
from .export_blobs import (
    TensorBuilder,
    TensorPieces,
    VarTensorBuilder,
    blob_array,
    blob_layout,
)
from .export_layout import Layout, LayoutError, encode, infer, infer_computed
from .heading import Attribute

if TYPE_CHECKING:
    from .expression import QueryExpression

INT_TYPES = {
    "tinyint": pa.int8(),
    "smallint": pa.int16(),
    "mediumint": pa.int32(),
    "int": pa.int32(),
    "bigint": pa.int64(),
}
UINT_TYPES = {
    "tinyint": pa.uint8(),
    "smallint": pa.uint16(),
    "mediumint": pa.uint32(),
    "int": pa.uint32(),
    "bigint": pa.uint64(),
}
DECODED_KINDS = {"decimal", "date", "datetime", "timestamp", "time"}
FIELD_KEY = b"dj_flows"


def plain_type(attribute: Attribute) -> pa.DataType | None:
    """The Arrow type of a declared, non-blob attribute (None for layout-inferred columns)."""
    info = attribute.type
    kind = info.kind
    if kind in ("int", "bool"):
        base = info.declared.split()[0]
        return (UINT_TYPES if info.unsigned else INT_TYPES).get(base, pa.int64())
    if kind == "float":
        return pa.float64()  # as fetch(): MySQL FLOAT values widen exactly, SQLite keeps doubles
    if kind == "decimal":
        precision, scale = info.precision or 10, info.scale or 0
        return (pa.decimal128 if precision <= 38 else pa.decimal256)(precision, scale)
    if kind == "string":
        return pa.string()
    if kind == "enum":
        return pa.dictionary(pa.int8() if len(info.enum_values) < 128 else pa.int16(), pa.string())
    if kind == "date":
        return pa.date32()
    if kind in ("datetime", "timestamp"):
        return pa.timestamp("us")
    if kind == "time":
        return pa.duration(
            "us"
        )  # MySQL TIME is a signed interval up to 838 hours, not a time of day
    if kind == "uuid":
        return pa.uuid()
    if kind == "json":
        return pa.json_()
    return None


def reference_type(attribute: Attribute, with_bytes: bool) -> pa.DataType:
    """Attachments and filepaths: what identifies the file, and optionally its bytes."""
    fields = [
        pa.field("path" if attribute.kind == "filepath" else "name", pa.string()),
        pa.field("hash", pa.uuid()),
        pa.field("size", pa.int64()),
        pa.field("uri", pa.string()),
    ]
    if with_bytes:
        fields.append(pa.field("bytes", pa.large_binary()))
    return pa.struct(fields)


class Column:
    """Converts the raw database values of one attribute, page by page."""

    def __init__(
        self,
        query: QueryExpression,
        attribute: Attribute,
        *,
        attachment_bytes: bool,
        layout: Layout | None,
    ) -> None:
        self.query = query
        self.attribute = attribute
        self.name = attribute.name
        self.attachment_bytes = attachment_bytes
        kind = attribute.kind
        if kind in ("attach", "filepath"):
            self.role = "reference"
        elif kind == "blob":
            self.role = "external_blob" if attribute.is_external else "blob"
        elif kind == "computed" or plain_type(attribute) is None:
            self.role = "computed"
        else:
            self.role = "plain"
        self.layout = layout  # the layout batches are written in (None: not known yet)
        self.preset = layout  # the layout given up front (fixed for the whole export)

    # -- the schema ---------------------------------------------------------------------------
    @property
    def uses_database(self) -> bool:
        """Whether converting this column queries the database (external tracking tables)."""
        return self.attribute.is_external

    @property
    def reads_objects(self) -> bool:
        """Whether the column's external objects are read in full (not only their tracking rows)."""
        return self.attribute.is_external and (
            self.role == "external_blob" or self.attachment_bytes
        )

    def tracking_table(self) -> str:
        """The SQL name of the tracking table of this column's store."""
        from .stores.external import external_table

        attribute = self.attribute
        database = attribute.database or getattr(self.query, "database", None)
        return external_table(self.query.connection, database, attribute.store).full_table_name

    @property
    def needs_layout(self) -> bool:
        return self.role in ("blob", "external_blob", "computed")

    def arrow_type(self) -> pa.DataType:
        if self.role == "plain":
            return plain_type(self.attribute)
        if self.role == "reference":
            return reference_type(self.attribute, self.attachment_bytes)
        return (self.layout or Layout("null")).arrow_type()

    def field(self) -> pa.Field:
        attribute = self.attribute
        description: dict[str, Any] = {
            "type": attribute.type.declared,
            "kind": attribute.kind,
            "in_key": attribute.in_key,
            "nullable": attribute.nullable,
        }
        if attribute.comment:
            description["comment"] = attribute.comment
        if attribute.store:
            description["store"] = attribute.store
        if attribute.sql_expression:
            description["expression"] = attribute.sql_expression
        if attribute.kind == "enum":
            description["enum"] = list(attribute.type.enum_values)
        if self.needs_layout:
            description["layout"] = (self.layout or Layout("null")).to_dict()
        nullable = not attribute.in_key or attribute.nullable
        return pa.field(
            self.name, self.arrow_type(), nullable, {FIELD_KEY: json.dumps(description)}
        )

    # -- one page -----------------------------------------------------------------------------
    def observe(self, values: MutableSequence[Any]) -> tuple[Layout | None, Any]:
        """What this page needs: (layout, state for `array`); layout None for fixed-type columns."""
        if self.role == "blob":
            return blob_layout(values, self.layout)
        if self.role == "external_blob":
            decoded = self._external_values(values)
            return infer(decoded, self.layout), decoded
        if self.role == "computed":
            return infer_computed(values, self.layout), None
        return None, None

    def builder(self, capacity: int, pieces: bool = False) -> Any:
        """Collects this column's arrays for one record batch of up to `capacity` rows; with
        `pieces`, tensors stay one array per page (see TensorPieces)."""
        layout = self.layout
        if self.role in ("blob", "external_blob") and layout is not None:
            if layout.kind == "tensor":
                kind = TensorPieces if pieces else TensorBuilder
                return _Values(self, kind(layout, capacity))
            if layout.kind == "var_tensor" and not layout.is_complex:
                return _Values(self, VarTensorBuilder(layout, capacity))
        return _Chunks(self)

    def array(self, values: MutableSequence[Any], state: Any) -> pa.Array:
        if self.role == "blob":
            return blob_array(self.layout, values, state, self.name)
        if self.role == "external_blob":
            return encode(self.layout, state, self.name)
        if self.role == "computed":
            return encode(self.layout, values, self.name)
        if self.role == "reference":
            return self._references(values)
        return self._plain(values)

    def _plain(self, values: MutableSequence[Any]) -> pa.Array:
        attribute = self.attribute
        kind = attribute.kind
        arrow_type = plain_type(attribute)
        try:
            if kind == "uuid":
                storage = pa.array([None if v is None else bytes(v) for v in values], pa.binary(16))
                return pa.ExtensionArray.from_storage(pa.uuid(), storage)
            if kind == "json":
                return pa.array(values, pa.string()).cast(pa.json_())
            if kind == "enum":
                index = {value: i for i, value in enumerate(attribute.type.enum_values)}
                codes = pa.array(
                    [None if v is None else index[v] for v in values], arrow_type.index_type
                )
                return pa.DictionaryArray.from_arrays(
                    codes, pa.array(attribute.type.enum_values, pa.string())
                )
            if kind in DECODED_KINDS:
                from .fetch import _decode_column

                values = _decode_column(
                    self.query, attribute, list(values), squeeze=False, download_path="."
                )
            return pa.array(values, arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError, OverflowError) as error:
            raise DataJointError(
                f"export: attribute {self.name!r} ({attribute.type.declared}): {error}"
            ) from None

    # -- external objects and attachments -----------------------------------------------------
    def _external_values(self, values: MutableSequence[Any]) -> list:
        from .stores.external import decode_external_column

        with tempfile.TemporaryDirectory(prefix="dj-export-") as folder:
            return decode_external_column(
                self.query, self.attribute, list(values), squeeze=False, download_path=folder
            )

    def _references(self, values: MutableSequence[Any]) -> pa.Array:
        attribute = self.attribute
        n = len(values)
        names: list[str | None] = [None] * n
        hashes: list[bytes | None] = [None] * n
        sizes: list[int | None] = [None] * n
        uris: list[str | None] = [None] * n
        contents: list[bytes | None] = [None] * n
        if not attribute.is_external:  # an internal attachment: name + NUL + contents
            from .codecs.attach import content_uuid, decode_internal

            for i, raw in enumerate(values):
                if raw is None:
                    continue
                name, data = decode_internal(raw)
                names[i], hashes[i], sizes[i] = name, content_uuid(raw).bytes, len(data)
                if self.attachment_bytes:
                    contents[i] = bytes(data)
                values[i] = None
        else:
            info = external_info(self.query, attribute, values)
            for i, raw in enumerate(values):
                if raw is None:
                    continue
                size, attachment_name, filepath, contents_hash, uri = info[bytes(raw)]
                names[i] = filepath if attribute.kind == "filepath" else attachment_name
                hashes[i] = (
                    bytes(contents_hash)
                    if attribute.kind == "filepath" and contents_hash
                    else bytes(raw)
                )
                sizes[i], uris[i] = size, uri
            if self.attachment_bytes:
                contents = self._external_bytes(values)
        arrays = [
            pa.array(names, pa.string()),
            pa.ExtensionArray.from_storage(pa.uuid(), pa.array(hashes, pa.binary(16))),
            pa.array(sizes, pa.int64()),
            pa.array(uris, pa.string()),
        ]
        if self.attachment_bytes:
            arrays.append(pa.array(contents, pa.large_binary()))
        mask = pa.array([v is None for v in names])
        return pa.StructArray.from_arrays(
            arrays, fields=list(self.arrow_type()), mask=mask if mask.true_count else None
        )

    def _external_bytes(self, values: MutableSequence[Any]) -> list:
        from .stores.external import decode_external_column

        with tempfile.TemporaryDirectory(prefix="dj-export-") as folder:
            paths = decode_external_column(
                self.query, self.attribute, list(values), squeeze=False, download_path=folder
            )
            return [None if p is None else Path(p).read_bytes() for p in paths]


class _Values:
    """A tensor builder fed with a column's values (decoded objects for `blob@store`)."""

    def __init__(self, column: Column, builder: Any) -> None:
        self.column = column
        self.builder = builder

    def add(self, values: MutableSequence[Any], state: Any) -> None:
        if self.column.role == "external_blob":
            values, state = state, None
        self.builder.add(values, state)

    def finish(self) -> pa.Array:
        return self.builder.finish()

    def chunks(self) -> list[pa.Array]:
        return self.builder.chunks()


class _Chunks:
    """Any other column: one Arrow array per chunk, concatenated at the end of the batch."""

    def __init__(self, column: Column) -> None:
        self.column = column
        self.arrays: list[pa.Array] = []

    def add(self, values: MutableSequence[Any], state: Any) -> None:
        self.arrays.append(self.column.array(values, state))

    def finish(self) -> pa.Array:
        arrays, self.arrays = self.arrays, []
        return arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)

    def chunks(self) -> list[pa.Array]:
        arrays, self.arrays = self.arrays, []
        return arrays


def external_info(
    query: QueryExpression, attribute: Attribute, values: MutableSequence[Any]
) -> dict[bytes, tuple]:
    """{hash: (size, attachment_name, filepath, contents_hash, uri)} from the store's tracking table,
    without downloading anything."""
    from .stores.external import external_table

    hashes = [bytes(v) for v in values if v is not None]
    if not hashes:
        return {}
    database = attribute.database or getattr(query, "database", None)
    if database is None:
        raise DataJointError(
            f"export: attribute {attribute.name!r}: cannot tell which schema tracks its store {attribute.store!r}"
        )
    tracking = external_table(query.connection, database, attribute.store)
    tracked = tracking.tracked(hashes)
    missing = [h for h in hashes if h not in tracked]
    if missing:
        raise DataJointError(
            f"export: attribute {attribute.name!r}: object {uuid.UUID(bytes=missing[0])} is not tracked "
            f"in {database}.{tracking.table_name}"
        )
    store = tracking.store
    info = {}
    for hash_, (size, attachment_name, filepath, contents_hash) in tracked.items():
        key = tracking.object_key(uuid.UUID(bytes=hash_), attachment_name, filepath)
        info[hash_] = (size, attachment_name, filepath, contents_hash, object_uri(store, key))
    return info


def object_uri(store: Any, key: str) -> str:
    """A URI any fsspec client can open (credentials and endpoint come from the store's config)."""
    path = store.path(key)
    protocol = store.spec.protocol
    if protocol == "file":
        return Path(path).absolute().as_uri()
    return f"{protocol}://{path}"


__all__ = ["Column", "LayoutError", "external_info", "object_uri", "plain_type", "reference_type"]
