"""Read an export back into a table, checking it on the way.

Checks, before anything of a row group is inserted: the Parquet page checksums (written by
export), that each column's declared kind matches the target attribute's, tensor dtypes and shapes
(a variable-shape array's values must fill its recorded shape), and each attachment's bytes against
its recorded size and DataJoint content hash. Attachments exported without their bytes are fetched
from their URI (through the configured store of the same name, else fsspec). After the last row
group, the number of rows read must equal the provenance's row count. By default everything is
inserted in one transaction, so a failed check leaves the table as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .errors import DataJointError, DataValueError
from .export import column_descriptions, column_layouts
from .export_decode import decode
from .export_write import read_provenance, read_schema, resolve


@dataclasses.dataclass
class ImportResult:
    """What an import read and inserted."""

    url: str
    rows: int
    row_groups: int
    seconds: float


def _row_groups(fs: Any, path: str, schema: pa.Schema) -> Iterator[pa.Table]:
    """Row groups of a file or partitioned folder, partition columns restored, checksums verified."""
    if not fs.isdir(path):
        with fs.open(path, "rb") as stream:
            reader = pq.ParquetFile(stream, page_checksum_verification=True)
            for i in range(reader.num_row_groups):
                yield reader.read_row_group(i)
        return
    dataset = ds.dataset(
        path,
        format="parquet",
        filesystem=_filesystem(fs),
        partitioning="hive",
        exclude_invalid_files=False,
    )
    for fragment in dataset.get_fragments():
        keys = ds.get_partition_keys(fragment.partition_expression)
        with fs.open(fragment.path, "rb") as stream:
            reader = pq.ParquetFile(stream, page_checksum_verification=True)
            for i in range(reader.num_row_groups):
                group = reader.read_row_group(i)
                for name, value in keys.items():
                    column = pa.array([value] * group.num_rows).cast(schema.field(name).type)
                    group = group.append_column(schema.field(name), column)
                yield group.select(schema.names)


def _filesystem(fs: Any) -> pa.fs.FileSystem:
    from .export_write import _arrow_filesystem

    return _arrow_filesystem(fs)


def import_parquet(
    url: str | os.PathLike,
    table: Any,
    *,
    store: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    skip_duplicates: bool = False,
    replace: bool = False,
    ignore_extra_fields: bool = False,
    transaction: bool = True,
    download_attachments: bool = True,
) -> ImportResult:
    """Insert the rows of an export (file or partitioned folder) into `table`, verified.

    download_attachments: fetch attachments exported without bytes from their URIs.
    transaction: insert all row groups in one transaction (a failed check inserts nothing).
    """
    if isinstance(table, type):
        table = table()
    began = time.perf_counter()
    fs, path = resolve(url, store, storage_options)
    schema = read_schema(fs, path)
    record = read_provenance(url, store=store, storage_options=storage_options)
    descriptions = column_descriptions(schema)
    layouts = column_layouts(schema)
    heading = table.heading
    extra = [n for n in schema.names if n not in heading]
    if extra and not ignore_extra_fields:
        raise DataJointError(
            f"import into {table.table_name!r}: columns {extra} are not attributes of the table"
        )
    for name in schema.names:
        if name in heading and name in descriptions:
            exported, target = descriptions[name]["kind"], heading[name].kind
            if exported != "computed" and exported != target:
                raise DataJointError(
                    f"import into {table.table_name!r}: column {name!r} was exported from a {descriptions[name]['type']} "
                    f"attribute; the table declares {heading[name].type.declared}"
                )
    names = [n for n in schema.names if n in heading]
    rows = groups = 0
    connection = table.connection
    scope = connection.transaction() if transaction else contextlib.nullcontext()
    with scope, tempfile.TemporaryDirectory(prefix="dj-import-") as folder:
        for group in _row_groups(fs, path, schema):
            columns = {}
            for name in names:
                where = f"{url}: column {name!r}"
                if name in layouts:
                    columns[name] = decode(layouts[name], group.column(name), where)
                elif descriptions.get(name, {}).get("kind") in ("attach", "filepath"):
                    source_store = descriptions[name].get("store") if download_attachments else None
                    columns[name] = _attachments(
                        group.column(name),
                        heading[name],
                        Path(folder, str(groups)),
                        where,
                        download_attachments,
                        source_store,
                    )
                else:
                    columns[name] = _plain(group.column(name), descriptions.get(name, {}))
            batch = [dict(zip(names, values)) for values in zip(*(columns[n] for n in names))]
            table.insert(
                batch, skip_duplicates=skip_duplicates, replace=replace, allow_direct_insert=True
            )
            rows += len(batch)
            groups += 1
        if (
            record is not None
            and record.get("row_count") is not None
            and record["row_count"] != rows
        ):
            raise DataJointError(
                f"import from {url}: read {rows} rows, the export's provenance records {record['row_count']}"
            )
    return ImportResult(os.fspath(url), rows, groups, time.perf_counter() - began)


def _plain(column: pa.ChunkedArray, description: dict) -> list:
    values = column.to_pylist()
    if description.get("kind") == "json":
        return [None if v is None else json.loads(v) for v in values]
    return values


def _attachments(
    column: pa.ChunkedArray,
    attribute: Any,
    folder: Path,
    where: str,
    download: bool,
    source_store: str | None,
) -> list:
    """Attachment files placed under `folder` (one subfolder per row: names may repeat), verified."""
    from .codecs.attach import safe_name
    from .stores.layout import attachment_uuid

    if attribute.kind == "filepath":
        raise DataJointError(
            f"{where}: importing filepath attributes is not supported (the files stay where they are)"
        )
    out = []
    for i, item in enumerate(column.to_pylist()):
        if item is None:
            out.append(None)
            continue
        name, expected, size = item["name"], item["hash"], item["size"]
        data = item.get("bytes")
        if data is None:
            if not download or not item.get("uri"):
                raise DataValueError(
                    f"{where}, row {i}: the export holds no bytes for attachment {name!r} (export with attachment_bytes=True)"
                )
            data = _download(item["uri"], source_store, where)
        checksum = attachment_uuid(name, data)
        expected = expected if isinstance(expected, uuid.UUID) else uuid.UUID(bytes=bytes(expected))
        if len(data) != size or checksum != expected:
            raise DataValueError(
                f"{where}, row {i}: attachment {name!r} does not match its recorded size and hash"
            )
        if name != safe_name(name):
            raise DataValueError(
                f"{where}, row {i}: attachment name {name!r} is not a plain file name"
            )
        target = folder / str(i) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        out.append(str(target))
    return out


def _download(uri: str, source_store: str | None, where: str) -> bytes:
    """An attachment's bytes from its URI: through the store of the same name when one is
    configured here (its endpoint and credentials), else through fsspec's defaults."""
    import fsspec

    from .settings import config

    try:
        if source_store and source_store in (config.get("stores") or {}):
            from .stores import get_store

            fs = get_store(source_store).fs
            return fs.cat_file(fs._strip_protocol(uri))
        with fsspec.open(uri, "rb") as stream:
            return stream.read()
    except (OSError, ValueError) as error:
        raise DataJointError(f"{where}: cannot read attachment {uri}: {error}") from None


def read_arrow(
    url: str | os.PathLike,
    *,
    store: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> pa.Table:
    """An export (file or partitioned folder) as an Arrow table with its exported schema and the
    provenance in the schema metadata; page checksums are verified."""
    from . import export_provenance as provenance

    fs, path = resolve(url, store, storage_options)
    schema = read_schema(fs, path)
    record = read_provenance(url, store=store, storage_options=storage_options)
    batches = [batch for group in _row_groups(fs, path, schema) for batch in group.to_batches()]
    table = pa.Table.from_batches(batches, schema=schema)
    return table.replace_schema_metadata(provenance.encode(record)) if record else table


def read_pandas(
    url: str | os.PathLike,
    *,
    index: bool = True,
    store: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Any:
    """An export as a DataFrame of natural values (arrays with their dtype and shape, parsed JSON),
    indexed by the primary key."""
    from .export import table_to_pandas

    return table_to_pandas(
        read_arrow(url, store=store, storage_options=storage_options), index=index
    )
