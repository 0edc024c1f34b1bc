"""Blob columns to Arrow, straight from the bytes the database returned.

Most blob columns of a pipeline hold plain numeric arrays, stored uncompressed when they are large
and incompressible (see codecs/blob.py). For those the array's dtype, shape and data offset can be
read from the blob header, and the data copied once, from the fetched bytes into the Arrow buffer
(transposed from the blob's column-major order into C order), with no intermediate numpy array and
no second copy. Each row's bytes are released as soon as they are copied, so a page of raw rows
turns into a record batch without holding both in full. Anything else (compressed blobs, other
values) is decoded with `codecs.blob.unpack` and converted by `export_layout.encode`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import MutableSequence
from typing import Any

import numpy as np
import pyarrow as pa

from .codecs import blob_format as fmt
from .export_layout import (
    Layout,
    LayoutError,
    RawBlob,
    array_layout,
    encode,
    infer,
    merge,
    tensor_array,
    var_tensor_array,
)

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


def _layout_of(header: tuple[np.dtype, tuple[int, ...], int]) -> Layout:
    return array_layout(header[0].str, header[1])


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


def observe(values: MutableSequence[Any]) -> tuple[Layout | None, list | None]:
    """The layout of a page of raw blob values read from headers alone, with the headers;
    (None, None) when some value needs full decoding."""
    headers = []
    layout = Layout("null")
    last = None
    for raw in values:
        if raw is None:
            headers.append(None)
            continue
        header = peek(raw)
        if header is None:
            return None, None
        headers.append(header)
        if header[:2] != last:
            layout = merge(layout, _layout_of(header))
            last = header[:2]
    return layout, headers


def encode_raw(
    layout: Layout, values: MutableSequence[Any], headers: list, column: str
) -> pa.Array:
    """Arrow array for raw numeric-array blobs (headers from `observe`); empties `values`."""
    n = len(values)
    mask = np.fromiter((h is None for h in headers), bool, n)
    dtype = np.dtype(layout.dtype)
    if layout.kind == "tensor":
        data = np.zeros((n, *layout.shape), dtype)
        for i, header in enumerate(headers):
            if header is not None:
                _copy_into(data[i], values[i], header)
                values[i] = None
        return tensor_array(layout, data, mask if mask.any() else None)
    if layout.kind != "var_tensor":
        raise LayoutError(f"column {column!r}: numeric arrays do not fit layout {layout.to_dict()}")
    shapes = [() if h is None else h[1] for h in headers]
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(
        [math.prod(s) if h is not None else 0 for s, h in zip(shapes, headers)], out=offsets[1:]
    )
    data = np.empty(int(offsets[-1]), dtype)
    for i, header in enumerate(headers):
        if header is not None:
            _copy_into(data[offsets[i] : offsets[i + 1]].reshape(header[1]), values[i], header)
            values[i] = None
    return var_tensor_array(layout, data, offsets, shapes, mask if mask.any() else None)


def decode_raw(values: MutableSequence[Any], keep_raw: bool) -> list:
    """Unpack each blob, releasing the bytes as it goes (kept alongside when `keep_raw`)."""
    from .codecs.blob import unpack

    decoded = []
    for i, raw in enumerate(values):
        if raw is None:
            decoded.append(None)
            continue
        value = unpack(raw)
        decoded.append(RawBlob(bytes(raw), value) if keep_raw else value)
        values[i] = None
    return decoded


def blob_layout(values: MutableSequence[Any], start: Layout | None) -> tuple[Layout, Any]:
    """The layout a page of raw blobs needs (merged with `start`) and what `blob_array` needs."""
    if start is not None and start.kind == "blob":
        return start, ("raw", None)
    observed, headers = observe(values)
    if observed is not None:
        return (merge(start, observed) if start is not None else observed), ("raw", headers)
    decoded = decode_raw(values, keep_raw=True)
    layout = infer([d.value if isinstance(d, RawBlob) else d for d in decoded], start)
    return layout, ("decoded", decoded)


def blob_array(layout: Layout, values: MutableSequence[Any], state: Any, column: str) -> pa.Array:
    """The Arrow array of a page of raw blobs in `layout` (state from `blob_layout`)."""
    how, data = state
    if how == "raw":
        if layout.kind == "blob":  # the bytes as stored: nothing to decode
            array = pa.array([None if v is None else bytes(v) for v in values], pa.large_binary())
            values[:] = [None] * len(values)
            return array
        if layout.kind in ("tensor", "var_tensor") and not _mixed(data, layout):
            return encode_raw(layout, values, data, column)
        data = decode_raw(values, keep_raw=False)
    return encode(layout, data, column)


def _mixed(headers: list, layout: Layout) -> bool:
    """Whether some array differs from a fixed layout (a var_tensor holds any of its dtype)."""
    if layout.kind == "var_tensor":
        return any(
            h is not None
            and (h[0].str != layout.dtype or (layout.ndim is not None and len(h[1]) != layout.ndim))
            for h in headers
        )
    return any(
        h is not None and (h[0].str != layout.dtype or h[1] != layout.shape) for h in headers
    )


# -- building one record batch from several chunks of rows -----------------------------------------
class TensorBuilder:
    """Fills a preallocated (capacity, *shape) array chunk by chunk: one copy per value, from the
    raw blob bytes (fast path) or from decoded arrays."""

    def __init__(self, layout: Layout, capacity: int) -> None:
        self.layout = layout
        self.data = np.empty((capacity, *layout.shape), np.dtype(layout.dtype))
        self.mask = np.zeros(capacity, bool)
        self.filled = 0

    def add(self, values: MutableSequence[Any], state: Any) -> None:
        how, extra = state if isinstance(state, tuple) else ("decoded", None)
        data, start = self.data, self.filled
        if start + len(values) > len(data):
            raise LayoutError(f"a batch got more than the {len(data)} rows it was sized for")
        for i, value in enumerate(values):
            row = start + i
            if value is None:
                data[row] = 0
                self.mask[row] = True
            elif how == "raw":
                _copy_into(data[row], value, extra[i])
            else:
                data[row] = value.value if isinstance(value, RawBlob) else value
            values[i] = None
        self.filled = start + len(values)

    def finish(self) -> pa.Array:
        mask = self.mask[: self.filled]
        return tensor_array(self.layout, self.data[: self.filled], mask if mask.any() else None)


class VarTensorBuilder:
    """Concatenates arrays of one dtype and varying shape into a growing flat buffer."""

    def __init__(self, layout: Layout, capacity: int) -> None:
        self.layout = layout
        self.capacity = capacity  # rows expected in the batch
        self.data = np.empty(0, np.dtype(layout.dtype))
        self.offsets = [0]
        self.shapes: list[tuple[int, ...]] = []
        self.mask: list[bool] = []

    def add(self, values: MutableSequence[Any], state: Any) -> None:
        how, extra = state if isinstance(state, tuple) else ("decoded", None)
        if not len(self.data) and values:  # reserve for the batch, extrapolating from this chunk
            if how == "raw":
                sizes = sum(math.prod(h[1]) for h in extra if h is not None)
            else:
                sizes = sum(
                    np.size(v.value if isinstance(v, RawBlob) else v)
                    for v in values
                    if v is not None
                )
            self.data = np.empty(
                max(16, sizes * self.capacity // len(values) + sizes), self.data.dtype
            )
        for i, value in enumerate(values):
            if value is None:
                self.shapes.append(())
                self.mask.append(True)
                self.offsets.append(self.offsets[-1])
                continue
            header = extra[i] if how == "raw" else None
            array = None if header else (value.value if isinstance(value, RawBlob) else value)
            shape = header[1] if header else array.shape
            start = self.offsets[-1]
            stop = start + math.prod(shape)
            if stop > len(self.data):
                grown = np.empty(max(stop, len(self.data) * 3 // 2), self.data.dtype)
                grown[:start] = self.data[:start]
                self.data = grown
            target = self.data[start:stop].reshape(shape)
            if header:
                _copy_into(target, value, header)
            else:
                target[...] = array
            self.shapes.append(tuple(shape))
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
