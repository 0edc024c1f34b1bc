"""Blob columns: decoding pages of blob bytes, and building record batches of arrays.

`predecode` runs where the page is read (the export's background reader thread), so decoding and the
memory-order change overlap the Parquet writer: most blob columns of a pipeline hold plain numeric
arrays, stored uncompressed when they are large and incompressible (see codecs/blob.py), and for
those the dtype, shape and data offset are read from the blob header and the column-major data is
copied once, straight into C order (no intermediate array); anything else goes through
`codecs.blob.unpack`. A page whose arrays share one dtype and shape is decoded into one
(rows, *shape) buffer (`Stacked`), which a Parquet row group takes as one chunk without another
copy (`TensorPieces`); record batches copy the pages into one preallocated buffer per batch
(`TensorBuilder`). Each row's bytes are released as soon as it is decoded.
"""

from __future__ import annotations

import math
import struct
from collections.abc import MutableSequence
from typing import Any

import numpy as np
import pyarrow as pa

from .codecs import blob_format as fmt
from .errors import BlobError
from .export_layout import Layout, LayoutError, encode, infer, tensor_array, var_tensor_array

_HEAD = struct.Struct("<4sBQ")  # protocol, code, ndim
_ARRAY = ord("A")
_PROTOCOLS = (fmt.MYM, fmt.DJ0)


def peek(raw: Any) -> tuple[np.dtype, tuple[int, ...], int] | None:
    """(dtype, shape, data offset) of an uncompressed blob holding one numeric array of ndim >= 1,
    complex dtype meaning real parts then imaginary parts; None for anything else."""
    if not isinstance(raw, bytes | bytearray) or len(raw) < _HEAD.size:
        return None
    protocol, code, ndim = _HEAD.unpack_from(raw)
    if protocol not in _PROTOCOLS or code != _ARRAY or not 1 <= ndim <= fmt.MAX_NDIM:
        return None
    position = _HEAD.size
    if len(raw) < position + 8 * ndim + 8:
        return None
    shape = struct.unpack_from(f"<{ndim}Q", raw, position)
    type_id, is_complex = fmt.U32X2.unpack_from(raw, position + 8 * ndim)
    position += 8 * ndim + 8
    dtype = fmt.NUMERIC_DTYPES.get(type_id)
    if dtype is None or dtype.kind == "M" or is_complex not in (0, 1):
        return None
    if len(raw) - position != math.prod(shape) * dtype.itemsize * (2 if is_complex else 1):
        return None  # e.g. a 32-bit-dimension blob: let the full decoder sort it out
    if is_complex:
        dtype = np.result_type(dtype, np.complex64)
    return dtype, tuple(shape), position


def _copy_into(target: np.ndarray, raw: bytes, header: tuple) -> None:
    """Copy one blob's column-major data into a C-order target of the array's shape."""
    dtype, shape, offset = header
    count = math.prod(shape)
    if dtype.kind == "c":
        part = np.empty(0, dtype).real.dtype
        real = np.frombuffer(raw, part, count, offset).reshape(shape[::-1]).T
        imag = (
            np.frombuffer(raw, part, count, offset + count * part.itemsize).reshape(shape[::-1]).T
        )
        target.real, target.imag = real, imag
        return
    target[...] = np.frombuffer(raw, dtype, count, offset).reshape(shape[::-1]).T


def decode_one(raw: Any) -> Any:
    """One blob's value: plain numeric arrays read straight into C order, the rest unpacked."""
    header = peek(raw)
    if header is None:
        from .codecs.blob import unpack

        return unpack(raw)
    value = np.empty(header[1], header[0])
    _copy_into(value, raw, header)
    return value


class Stacked(list):
    """A page of arrays of one dtype and shape, decoded into one C-order (rows, *shape) buffer
    (`data`): the list holds views of its rows, which layouts and builders read like any values,
    and a batch built from pages takes `data` as it is (no copy)."""

    __slots__ = ("data",)

    def __init__(self, values: list, data: np.ndarray) -> None:
        super().__init__(values)
        self.data = data


def predecode(values: MutableSequence[Any], column: str) -> np.ndarray | None:
    """Decode a page's blobs in place, releasing each row's bytes as it goes. A page of plain
    arrays all of one dtype and shape is decoded into one (rows, *shape) buffer, which is returned
    (the values are then views of its rows); otherwise each value is its own array and None is
    returned."""
    headers = [peek(raw) for raw in values]
    first = headers[0] if headers else None
    if first is not None and all(
        h is not None and h[0] == first[0] and h[1] == first[1] for h in headers
    ):
        data = np.empty((len(values), *first[1]), first[0])
        for i, header in enumerate(headers):
            _copy_into(data[i], values[i], header)
            values[i] = data[i]
        return data
    del headers
    for i, raw in enumerate(values):
        if raw is not None:
            try:
                values[i] = decode_one(raw)
            except BlobError as error:
                raise BlobError(f"export: column {column!r}, row {i} of a page: {error}") from None
    return None


def blob_layout(values: MutableSequence[Any], start: Layout | None) -> tuple[Layout, Any]:
    """The layout a page of decoded blobs needs (merged with `start`); a 'blob' layout (kept as
    stored bytes) takes the raw bytes as they are."""
    if start is not None and start.kind == "blob":
        return start, None
    return infer(values, start), None


def blob_array(layout: Layout, values: MutableSequence[Any], state: Any, column: str) -> pa.Array:
    """The Arrow array of a page of blobs in `layout`."""
    if layout.kind == "blob" and any(isinstance(v, bytes | bytearray) for v in values):
        array = pa.array([None if v is None else bytes(v) for v in values], pa.large_binary())
        values[:] = [None] * len(values)
        return array
    return encode(layout, values, column)


# -- building one record batch from several chunks of rows -----------------------------------------
class TensorBuilder:
    """Fills a preallocated (capacity, *shape) array chunk by chunk, one copy per value."""

    def __init__(self, layout: Layout, capacity: int) -> None:
        self.layout = layout
        self.data = np.empty((capacity, *layout.shape), np.dtype(layout.dtype))
        self.mask = np.zeros(capacity, bool)
        self.filled = 0

    def add(self, values: MutableSequence[Any], state: Any = None) -> None:
        data, start = self.data, self.filled
        if start + len(values) > len(data):
            raise LayoutError(f"a batch got more than the {len(data)} rows it was sized for")
        if fits(values, self.layout):
            data[start : start + len(values)] = values.data  # one copy of the whole page
            values[:] = [None] * len(values)
            self.filled = start + len(values)
            return
        for i, value in enumerate(values):
            if value is None:
                data[start + i] = 0
                self.mask[start + i] = True
            else:
                data[start + i] = value
            values[i] = None
        self.filled = start + len(values)

    def finish(self) -> pa.Array:
        mask = self.mask[: self.filled]
        return tensor_array(self.layout, self.data[: self.filled], mask if mask.any() else None)

    def chunks(self) -> list[pa.Array]:
        return [self.finish()]


def fits(values: Any, layout: Layout) -> bool:
    """Whether `values` is a Stacked page whose buffer holds exactly `layout`'s arrays."""
    return (
        isinstance(values, Stacked)
        and values.data.dtype == np.dtype(layout.dtype)
        and values.data.shape[1:] == tuple(layout.shape or ())
    )


class TensorPieces:
    """A batch's tensors as one Arrow array per page: a Stacked page that fits is taken as it
    is, any other page is copied into a page-sized buffer. For writers that take chunked columns
    (a Parquet row group), this saves the copy into one batch-sized buffer."""

    def __init__(self, layout: Layout, capacity: int = 0) -> None:
        self.layout = layout
        self.arrays: list[pa.Array] = []

    def add(self, values: MutableSequence[Any], state: Any = None) -> None:
        if fits(values, self.layout):
            self.arrays.append(tensor_array(self.layout, values.data, None))
            values[:] = [None] * len(values)
            return
        builder = TensorBuilder(self.layout, len(values))
        builder.add(values)
        self.arrays.append(builder.finish())

    def chunks(self) -> list[pa.Array]:
        arrays, self.arrays = self.arrays, []
        return arrays


class VarTensorBuilder:
    """Concatenates arrays of one dtype and varying shape into a growing flat buffer."""

    def __init__(self, layout: Layout, capacity: int) -> None:
        self.layout = layout
        self.capacity = capacity  # rows expected in the batch
        self.data = np.empty(0, np.dtype(layout.dtype))
        self.offsets = [0]
        self.shapes: list[tuple[int, ...]] = []
        self.mask: list[bool] = []

    def add(self, values: MutableSequence[Any], state: Any = None) -> None:
        if not len(self.data) and values:  # reserve for the batch, extrapolating from this chunk
            sizes = sum(np.size(v) for v in values if v is not None)
            self.data = np.empty(
                max(16, sizes * self.capacity // len(values) + sizes), self.data.dtype
            )
        for i, value in enumerate(values):
            start = self.offsets[-1]
            if value is None:
                self.shapes.append(())
                self.mask.append(True)
                self.offsets.append(start)
                continue
            stop = start + value.size
            if stop > len(self.data):
                grown = np.empty(max(stop, len(self.data) * 3 // 2), self.data.dtype)
                grown[:start] = self.data[:start]
                self.data = grown
            self.data[start:stop].reshape(value.shape)[...] = value
            self.shapes.append(tuple(value.shape))
            self.mask.append(False)
            self.offsets.append(stop)
            values[i] = None

    def finish(self) -> pa.Array:
        mask = np.array(self.mask, bool)
        offsets = np.array(self.offsets, np.int64)
        data = self.data[: offsets[-1]]
        return var_tensor_array(
            self.layout, data, offsets, self.shapes, mask if mask.any() else None
        )

    def chunks(self) -> list[pa.Array]:
        return [self.finish()]
