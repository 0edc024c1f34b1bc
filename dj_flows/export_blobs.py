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
