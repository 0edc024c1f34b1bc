"""Export query results to Arrow, pandas and Parquet, streaming in record batches.

    table = dj.export.to_arrow(query)              # or query.to_arrow()
    frame = dj.export.to_pandas(query)             # or query.to_pandas(): arrays keep their shapes
    for batch in dj.export.to_batches(query): ...  # bounded memory, any result size
    dj.export.to_parquet(query, "s3://bucket/run.parquet", storage_options={...})
    dj.export.to_parquet(query, "exports/run", store="shared", partition_by=["subject_id"])
    dj.export.read_provenance(url); dj.import_parquet(url, Table)

Rows are read along the primary key (export_paging.py), a page at a time, and converted into
record batches of about `batch_bytes` (64 MiB by default) (export_columns.py): each batch is filled
from CHUNKS pages, and array data is copied once, from the fetched blob bytes into a page-sized
buffer (export_blobs.Stacked). `to_parquet` writes each row group from those page buffers as they
are (`batches(pieces=True)`: a table with one chunk per page); record batches copy them into one
buffer. The rows in memory are one batch plus a fraction of one. `to_parquet` and `to_arrow` read
the next pages in a background thread while a batch is converted and written (the numpy copies and
the Parquet writer release the GIL).

Column types follow the declared types; blob columns take the layout their values need
(export_layout.py), decided on the first batch. If a later batch needs a wider layout (an array of
another shape, say), `to_parquet`, `to_arrow` and `to_pandas` start over with the wider layout, at
most a few times; `to_batches`, whose earlier batches are already out, raises ExportLayoutError
naming the column and the `layouts=` hint that avoids it.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa

from . import export_provenance as provenance
from .errors import DataJointError
from .export_blobs import Stacked, predecode
from .export_columns import Column
from .export_decode import decode
from .export_layout import BLOB, Layout
from .export_paging import Pager, Reader

DEFAULT_BATCH_BYTES = 64 << 20
MAX_RESTARTS = 4
CHUNKS = 16  # pages per record batch
# pages waiting in the background reader, besides the one it reads: while the Parquet writer holds
# one batch, up to 11/16 of the next is read ahead (Python/numpy peak ~1.8 batches, under 2)
AHEAD = 11
LAYOUT_HINTS = ("blob", "variable")

__all__ = [
    "DEFAULT_BATCH_BYTES",
    "ExportLayoutError",
    "Exporter",
    "import_parquet",
    "read_arrow",
    "read_pandas",
    "read_provenance",
    "to_arrow",
    "to_batches",
    "to_pandas",
    "to_parquet",
]


class ExportLayoutError(DataJointError):
    """A page needs a wider column layout than the batches already handed out."""

    def __init__(self, message: str, layouts: Mapping[str, Layout]) -> None:
        super().__init__(message)
        self.layouts = dict(layouts)


class Exporter:
    """One pass over a query, producing record batches of one schema."""

    def __init__(
        self,
        query: Any,
        *,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        batch_rows: int | None = None,
        attachment_bytes: bool = False,
        layouts: Mapping[str, str | Layout | dict] | None = None,
        read_ahead: bool = True,
    ) -> None:
        from .expression import _as_expression

        self.query = _as_expression(query)
        if batch_bytes < 1 or (batch_rows is not None and batch_rows < 1):
            raise DataJointError("export: batch_bytes and batch_rows must be positive")
        self.batch_bytes = batch_bytes
        self.batch_rows = batch_rows
        self.read_ahead = read_ahead
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self.rows = 0
        self.columns: list[Column] = []
        self.hints: dict[str, str] = {}
        given = dict(layouts or {})
        unknown = [name for name in given if name not in self.query.heading]
        if unknown:
            raise DataJointError(
                f"export: layouts given for {unknown}, which are not attributes of the query"
            )
        for attribute in self.query.heading:
            hint = given.get(attribute.name)
            layout = None
            if isinstance(hint, str):
                if hint not in LAYOUT_HINTS:
                    raise DataJointError(
                        f"export: layout hint for {attribute.name!r} must be one of {LAYOUT_HINTS} or a Layout, got {hint!r}"
                    )
                self.hints[attribute.name] = hint
                layout = BLOB if hint == "blob" else None
            elif isinstance(hint, dict):
                layout = Layout.from_dict(hint)
            elif isinstance(hint, Layout):
                layout = hint
            column = Column(self.query, attribute, attachment_bytes=attachment_bytes, layout=layout)
            if hint is not None and not column.needs_layout:
                raise DataJointError(
                    f"export: attribute {attribute.name!r} ({attribute.type.declared}) has a fixed type; layouts apply to blob and computed columns"
                )
            self.columns.append(column)
        self.emitted = False

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def schema(self) -> pa.Schema:
        return pa.schema([c.field() for c in self.columns])

    def layouts(self) -> dict[str, Layout]:
        return {c.name: c.layout for c in self.columns if c.needs_layout and c.layout is not None}

    def provenance(self, extra: dict | None = None) -> dict[str, Any]:
        return provenance.build(
            self.query, self.schema(), row_count=self.rows, started=self.started, extra=extra
        )

    def batches(self, pieces: bool = False) -> Iterator[pa.RecordBatch | pa.Table]:
        """Record batches of about `batch_bytes` each (or `batch_rows` rows), each read in CHUNKS
        smaller pages so that the raw rows being converted are a fraction of the batch they fill;
        pages are read ahead in the background unless converting them uses the database.
        ExportLayoutError if some rows need a wider layout than rows already converted.

        pieces: yield each batch as a pa.Table whose columns keep one chunk per page (what a
        Parquet row group is written from), sparing the copy of tensors into one buffer."""
        reader = Reader(
            Pager(
                self.query,
                self.names,
                {c.name: c.tracking_table() for c in self.columns if c.reads_objects},
            ),
            target_bytes=self.batch_bytes,
            batch_rows=self.batch_rows,
            chunks=CHUNKS,
            background=self.read_ahead and not any(c.uses_database for c in self.columns),
            ahead=AHEAD,
            transform=self._predecode,
        )
        try:
            builders = None
            while True:
                page = reader.next()
                if page is None:
                    return
                if page.holder is not None:
                    chunk = page.holder.pop()
                    builders = self._add(chunk, builders, page.capacity, pieces)
                    del chunk
                if not page.last:
                    continue
                del page
                schema = self.schema()
                if pieces:
                    columns = [
                        pa.chunked_array(builder.chunks(), type=field.type)
                        for builder, field in zip(builders, schema)
                    ]
                    builders = None
                    batch = pa.Table.from_arrays(columns, schema=schema)
                    del columns
                else:
                    arrays = [builder.finish() for builder in builders]
                    builders = None
                    batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
                    del arrays
                self.rows += batch.num_rows
                self.emitted = True
                yield batch
                del batch  # hold no batch while the next one is read and converted
        finally:
            reader.close()

    def _predecode(self, columns: list[list]) -> None:
        """Decode the blobs of a page where it is read (in the reader thread when reading ahead);
        columns kept as stored blob bytes stay as they are. A page of equal arrays becomes one
        Stacked buffer."""
        for i, (column, values) in enumerate(zip(self.columns, columns)):
            if (
                column.role == "blob"
                and self.hints.get(column.name) != "blob"
                and not (column.preset is not None and column.preset.kind == "blob")
            ):
                data = predecode(values, column.name)
                if data is not None:
                    columns[i] = Stacked(values, data)
                    del values

    def _add(
        self, chunk: list[list], builders: list | None, capacity: int, pieces: bool = False
    ) -> list:
        """Convert a chunk of raw rows into the batch being built (builders made on first use)."""
        states = []
        wider: dict[str, Layout] = {}
        for column, values in zip(self.columns, chunk):
            layout, state = column.observe(values)
            states.append(state)
            if layout is not None:
                layout = self._hinted(column, layout)
                if layout != column.layout:
                    wider[column.name] = layout
        if wider and (self.emitted or builders is not None):
            names = ", ".join(f"{n!r} -> {layout.kind}" for n, layout in wider.items())
            raise ExportLayoutError(
                f"export: after {self.rows} rows, column(s) {names} need a wider layout than the "
                f"rows already converted; pass layouts={{name: 'variable' or 'blob'}} to fix it up front",
                wider,
            )
        for column in self.columns:
            if column.name in wider:
                column.layout = wider[column.name]
        if builders is None:
            builders = [column.builder(capacity, pieces) for column in self.columns]
        for i, builder in enumerate(builders):
            builder.add(chunk[i], states[i])
            chunk[i] = states[i] = None  # the raw values of this column are no longer needed
        return builders

    def _hinted(self, column: Column, layout: Layout) -> Layout:
        if self.hints.get(column.name) == "variable" and layout.kind == "tensor":
            return Layout("var_tensor", dtype=layout.dtype, ndim=len(layout.shape or ()))
        return layout


def restarting(run: Any, query: Any, options: dict) -> Any:
    """Call run(exporter) until no page needs a wider layout than the one it started with."""
    layouts: dict[str, Any] = dict(options.pop("layouts", None) or {})
    for _ in range(MAX_RESTARTS + 1):
        exporter = Exporter(query, layouts=layouts, **options)
        try:
            return run(exporter)
        except ExportLayoutError as change:
            layouts.update(exporter.layouts())  # start from what the first pages established
            layouts.update(change.layouts)
    raise DataJointError(f"export: column layouts kept widening after {MAX_RESTARTS} restarts")


# -- public API --------------------------------------------------------------------------------------
def to_batches(
    query: Any,
    *,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    batch_rows: int | None = None,
    attachment_bytes: bool = False,
    layouts: Mapping[str, Any] | None = None,
    read_ahead: bool = False,
) -> Iterator[pa.RecordBatch]:
    """Record batches of the query's rows in primary-key order, read a page at a time. Layouts
    are settled on the first batch (starting over while nothing has been yielded); a later batch
    that needs a wider one raises ExportLayoutError.

    read_ahead: read the next pages in a background thread while the caller works on a batch;
    only if the caller does not use the query's connection until the iteration ends."""
    layouts = dict(layouts or {})
    for _ in range(MAX_RESTARTS + 1):
        exporter = Exporter(
            query,
            batch_bytes=batch_bytes,
            batch_rows=batch_rows,
            attachment_bytes=attachment_bytes,
            layouts=layouts,
            read_ahead=read_ahead,
        )
        batches = exporter.batches()
        try:
            batch = next(batches, None)
        except ExportLayoutError as change:
            layouts.update(exporter.layouts())
            layouts.update(change.layouts)
            continue
        while batch is not None:
            yield batch
            del batch
            batch = next(batches, None)
        return
    raise DataJointError(f"export: column layouts kept widening after {MAX_RESTARTS} restarts")


def to_arrow(
    query: Any,
    *,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    batch_rows: int | None = None,
    attachment_bytes: bool = False,
    layouts: Mapping[str, Any] | None = None,
) -> pa.Table:
    """The query's rows as a pyarrow Table, with the provenance in its schema metadata."""

    def run(exporter: Exporter) -> pa.Table:
        batches = list(exporter.batches())
        table = pa.Table.from_batches(batches, schema=exporter.schema())
        return table.replace_schema_metadata(provenance.encode(exporter.provenance()))

    options = {
        "batch_bytes": batch_bytes,
        "batch_rows": batch_rows,
        "attachment_bytes": attachment_bytes,
        "layouts": layouts,
    }
    return restarting(run, query, options)


def to_pandas(query: Any, *, index: bool = True, **options: Any) -> Any:
    """The query's rows as a DataFrame: arrays with their dtype and shape, complex numbers as
    complex, MATLAB structs and dicts as such; indexed by the primary key like fetch(format='frame')."""
    return table_to_pandas(to_arrow(query, **options), index=index)


def table_to_pandas(table: pa.Table, *, index: bool = True) -> Any:
    """An exported Arrow table (or one read back from Parquet) as a DataFrame of natural values."""
    import json

    import pandas

    layouts = column_layouts(table.schema)
    descriptions = column_descriptions(table.schema)
    texts = [n for n, d in descriptions.items() if d.get("kind") == "json" and n not in layouts]
    simple = [name for name in table.column_names if name not in layouts and name not in texts]
    frame = (
        table.select(simple).to_pandas()
        if simple
        else pandas.DataFrame(index=range(table.num_rows))
    )
    for name, layout in layouts.items():
        series = pandas.Series(
            decode(layout, table.column(name), name), dtype=object, index=frame.index
        )
        frame[name] = series
    for name in texts:  # JSON attributes come back parsed, as fetch() returns them
        values = [
            None if v is None else json.loads(v)
            for v in table.column(name).cast(pa.string()).to_pylist()
        ]
        frame[name] = pandas.Series(values, dtype=object, index=frame.index)
    frame = frame[table.column_names]
    key = [n for n, d in descriptions.items() if d.get("in_key")]
    return frame.set_index(key) if index and key else frame


def column_descriptions(schema: pa.Schema) -> dict[str, dict]:
    """The per-column `dj_flows` field metadata of an exported schema."""
    import json

    found = {}
    for field in schema:
        raw = (field.metadata or {}).get(b"dj_flows")
        if raw:
            found[field.name] = json.loads(raw)
    return found


def column_layouts(schema: pa.Schema) -> dict[str, Layout]:
    return {
        n: Layout.from_dict(d["layout"])
        for n, d in column_descriptions(schema).items()
        if "layout" in d
    }


def to_parquet(query: Any, url: str, **options: Any) -> Any:
    """Write the query's rows to Parquet at `url` (any fsspec URL, or a key in `store=`); see
    export_write.to_parquet for the options. Returns an ExportResult."""
    from .export_write import to_parquet as write

    return write(query, url, **options)


def read_provenance(
    url: str, *, store: str | None = None, storage_options: Mapping[str, Any] | None = None
) -> dict | None:
    """The provenance record of an export (a file, or a partitioned export's folder)."""
    from .export_write import read_provenance as read

    return read(url, store=store, storage_options=storage_options)


def read_arrow(url: str, **options: Any) -> pa.Table:
    """An export read back as an Arrow table (see export_import.read_arrow)."""
    from .export_import import read_arrow as read

    return read(url, **options)


def read_pandas(url: str, **options: Any) -> Any:
    """An export read back as a DataFrame of natural values (see export_import.read_pandas)."""
    from .export_import import read_pandas as read

    return read(url, **options)


def import_parquet(url: str, table: Any, **options: Any) -> Any:
    """Insert an export back into `table`, verifying it; see export_import.import_parquet."""
    from .export_import import import_parquet as run

    return run(url, table, **options)
