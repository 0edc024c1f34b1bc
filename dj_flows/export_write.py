"""Writing exports to Parquet on any fsspec filesystem, as one file or partitioned by key.

One file: batches go to a `pyarrow.parquet.ParquetWriter` as they come (one row group each, page
checksums on), and the provenance record goes into the footer's key-value metadata once the row
count is known. On a local disk the file is written under a temporary name and renamed, so a reader
never sees half an export. Partitioned: `pyarrow.dataset.write_dataset` writes a Hive-style folder
(`subject_id=3/part-....parquet`) and the full schema with the provenance goes to `_common_metadata`.

Destinations: a local path, any fsspec URL with `storage_options`, or a key inside a configured
store (`store='shared'`), which brings that store's endpoint and credentials.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from . import export_provenance as provenance
from .errors import DataJointError
from .export import DEFAULT_BATCH_BYTES, Exporter, restarting

COMMON_METADATA = "_common_metadata"
PARTITION_KINDS = ("int", "string", "enum", "date")


@dataclasses.dataclass
class ExportResult:
    """What an export wrote."""

    url: str
    rows: int
    files: list[str]
    bytes: int
    seconds: float
    schema: pa.Schema
    provenance: dict[str, Any]

    def __repr__(self) -> str:
        return f"ExportResult({self.url!r}, rows={self.rows}, files={len(self.files)}, bytes={self.bytes}, seconds={self.seconds:.2f})"


def resolve(
    url: str | os.PathLike,
    store: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[Any, str]:
    """(fsspec filesystem, path) for a destination."""
    if store is not None:
        from .stores import get_store

        target = get_store(store)
        return target.fs, target.path(str(url).strip("/"))
    try:
        return fsspec.core.url_to_fs(os.fspath(url), **dict(storage_options or {}))
    except (ValueError, ImportError) as error:
        raise DataJointError(f"export: cannot open {os.fspath(url)!r}: {error}") from None


def _is_local(fs: Any) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def _arrow_filesystem(fs: Any) -> pa.fs.FileSystem:
    return pa.fs.LocalFileSystem() if _is_local(fs) else pa.fs.PyFileSystem(pa.fs.FSSpecHandler(fs))


def to_parquet(
    query: Any,
    url: str | os.PathLike,
    *,
    partition_by: Sequence[str] | None = None,
    store: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    compression: str | None = "snappy",
    compression_level: int | None = None,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    batch_rows: int | None = None,
    attachment_bytes: bool = False,
    layouts: Mapping[str, Any] | None = None,
    page_checksums: bool = True,
) -> ExportResult:
    """Export the query's rows to Parquet at `url`; returns an ExportResult.

    partition_by: primary-key attributes (int, string, enum or date) to partition a folder by.
    store: write under this configured store's root (url is then a key inside it).
    attachment_bytes: include attachment contents (otherwise name, hash, size and URI only).
    layouts: {blob attribute: 'variable' | 'blob' | Layout} to fix a column's layout up front.
    """
    fs, path = resolve(url, store, storage_options)
    began = time.perf_counter()
    options = {
        "batch_bytes": batch_bytes,
        "batch_rows": batch_rows,
        "attachment_bytes": attachment_bytes,
        "layouts": layouts,
    }
    writer_options = {
        "compression": compression,
        "compression_level": compression_level,
        "write_page_checksum": page_checksums,
    }
    if partition_by:
        result = restarting(
            lambda e: _write_partitioned(e, fs, path, list(partition_by), writer_options),
            query,
            options,
        )
    else:
        result = restarting(lambda e: _write_file(e, fs, path, writer_options), query, options)
    files, record, schema = result
    size = sum(fs.size(f) for f in files)
    return ExportResult(
        os.fspath(url),
        record["row_count"],
        files,
        size,
        time.perf_counter() - began,
        schema,
        record,
    )


def _write_file(
    exporter: Exporter, fs: Any, path: str, writer_options: dict
) -> tuple[list[str], dict, pa.Schema]:
    if fs.isdir(path):
        raise DataJointError(
            f"export: {path!r} is a folder; give a file name (or partition_by to write a folder)"
        )
    batches = exporter.batches(pieces=True)  # one table (chunked by page) per row group
    batch = next(batches, None)  # the first page decides the column layouts
    schema = exporter.schema()
    local = _is_local(fs)
    if local:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        target = f"{path}.{uuid.uuid4().hex[:8]}.part"
        sink: Any = target
    else:
        target = path
        sink = fs.open(path, "wb")
    try:
        writer = pq.ParquetWriter(sink, schema, **writer_options)
        try:
            while batch is not None:
                writer.write_table(batch, row_group_size=max(1, batch.num_rows))
                del batch
                batch = next(batches, None)
            record = exporter.provenance()
            writer.add_key_value_metadata(provenance.encode(record))
        finally:
            writer.close()
        if local:
            os.replace(target, path)
        else:
            sink.close()
    except BaseException:
        if not local:
            sink.close()
        if fs.exists(target):
            fs.rm_file(target)
        raise
    return [path], record, schema


def _write_partitioned(
    exporter: Exporter, fs: Any, path: str, partition_by: list[str], writer_options: dict
) -> tuple[list[str], dict, pa.Schema]:
    heading = exporter.query.heading
    for name in partition_by:
        if (
            name not in heading
            or not heading[name].in_key
            or heading[name].kind not in PARTITION_KINDS
        ):
            raise DataJointError(
                f"export: partition_by={partition_by}: {name!r} must be a primary-key attribute of kind "
                f"{', '.join(PARTITION_KINDS)} (the query's key is {heading.primary_key})"
            )
    batches = exporter.batches()
    first = next(batches, None)
    schema = exporter.schema()
    holder = [first]
    del first

    def stream() -> Any:
        batch = holder.pop()
        while batch is not None:
            yield batch
            del batch
            batch = next(batches, None)

    written: list[str] = []
    token = uuid.uuid4().hex[:8]
    parts = pa.schema([schema.field(n).remove_metadata() for n in partition_by])
    file_options = ds.ParquetFileFormat().make_write_options(
        compression=writer_options["compression"],
        compression_level=writer_options["compression_level"],
        write_page_checksum=writer_options["write_page_checksum"],
    )
    try:
        ds.write_dataset(
            pa.RecordBatchReader.from_batches(schema, stream()),
            path,
            format="parquet",
            partitioning=ds.partitioning(parts, flavor="hive"),
            filesystem=_arrow_filesystem(fs),
            file_options=file_options,
            basename_template=f"part-{token}-{{i}}.parquet",
            existing_data_behavior="overwrite_or_ignore",
            file_visitor=lambda f: written.append(f.path),
        )
    except BaseException:
        for file in written:
            if fs.exists(file):
                fs.rm_file(file)
        raise
    record = exporter.provenance(
        {"partition_by": partition_by, "files": sorted(os.path.relpath(f, path) for f in written)}
    )
    pq.write_metadata(
        schema.with_metadata(provenance.encode(record)),
        f"{path}/{COMMON_METADATA}",
        filesystem=_arrow_filesystem(fs),
    )
    return sorted(written), record, schema


def read_provenance(
    url: str | os.PathLike,
    *,
    store: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> dict | None:
    """The provenance record of an export: a file's footer, or a folder's _common_metadata."""
    fs, path = resolve(url, store, storage_options)
    if fs.isdir(path):
        path = f"{path.rstrip('/')}/{COMMON_METADATA}"
    with fs.open(path, "rb") as stream:
        return provenance.decode(pq.read_metadata(stream).metadata)


def read_schema(fs: Any, path: str) -> pa.Schema:
    """The exported Arrow schema (with field metadata) of a file or partitioned folder."""
    if fs.isdir(path):
        path = f"{path.rstrip('/')}/{COMMON_METADATA}"
    with fs.open(path, "rb") as stream:
        return pq.read_schema(stream)
