"""Arrow -> Python values for exported columns: arrays get their dtype and shape back (checked
against the layout and, for variable shapes, against the recorded shape), complex parts are joined,
structs become dicts or MATLAB structs, blob bytes are unpacked. Used by to_pandas and import."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import pyarrow as pa

from .codecs.matlab import MatStruct
from .errors import DataJointError
from .export_layout import Layout, real_dtype


def decode(layout: Layout, array: pa.Array, column: str = "") -> list:
    """The Python values an array of `layout` holds: arrays with their dtype and shape restored."""
    if isinstance(array, pa.ChunkedArray):
        return [v for chunk in array.chunks for v in decode(layout, chunk, column)]
    kind = layout.kind
    n = len(array)
    valid = _valid(array)
    if kind == "null":
        return [None] * n
    if kind in ("arrow", "string", "bytes"):
        return array.to_pylist()
    if kind == "json":
        return [None if v is None else json.loads(v) for v in _storage(array).to_pylist()]
    if kind == "blob":
        from .codecs.blob import unpack

        return [None if v is None else unpack(v) for v in array.to_pylist()]
    if kind == "struct":
        children = [
            decode(child, array.field(name), f"{column}.{name}") for name, child in layout.fields
        ]
        return [
            _struct_value(layout, [c[i] for c in children]) if valid[i] else None for i in range(n)
        ]
    if layout.is_complex:
        part = dataclasses.replace(layout, dtype=real_dtype(layout.dtype).str)
        real = decode(part, array.field("real"), column)
        imag = decode(part, array.field("imag"), column)
        dtype = np.dtype(layout.dtype)
        out = []
        for i in range(n):
            if not valid[i]:
                out.append(None)
                continue
            value = np.empty(np.shape(real[i]), dtype)
            value.real, value.imag = real[i], imag[i]
            out.append(
                complex(value) if layout.python else value[()] if layout.kind == "scalar" else value
            )
        return out
    dtype = np.dtype(layout.dtype)
    if kind == "scalar":
        _expect(array.type, dtype, column)
        data = (
            array.fill_null(False if dtype.kind == "b" else 0) if array.null_count else array
        ).to_numpy(zero_copy_only=False)
        if layout.python:
            return [data[i].item() if valid[i] else None for i in range(n)]
        return [dtype.type(data[i]) if valid[i] else None for i in range(n)]
    if kind == "tensor":
        data = tensor_values(array, layout, column)
        return [data[i] if valid[i] else None for i in range(n)]
    return var_tensor_values(array, layout, column)


def _valid(array: pa.Array) -> np.ndarray:
    if array.null_count == 0:
        return np.ones(len(array), bool)
    return np.asarray(array.is_valid().to_numpy(zero_copy_only=False), bool)


def _storage(array: pa.Array) -> pa.Array:
    return array.storage if isinstance(array, pa.ExtensionArray) else array


def _expect(kind: pa.DataType, dtype: np.dtype, column: str) -> None:
    if kind != pa.from_numpy_dtype(dtype):
        raise DataJointError(f"column {column!r}: holds {kind}, its layout says {dtype}")


def tensor_values(array: pa.Array, layout: Layout, column: str = "") -> np.ndarray:
    """An (n, *shape) numpy view of a fixed_shape_tensor array (nulls read as zeros)."""
    storage = _storage(array)
    shape = tuple(layout.shape or ())
    size = math.prod(shape)
    if not pa.types.is_fixed_size_list(storage.type) or storage.type.list_size != size:
        raise DataJointError(
            f"column {column!r}: holds {array.type}, its layout says a tensor of shape {shape}"
        )
    if isinstance(array.type, pa.FixedShapeTensorType) and tuple(array.type.shape) != shape:
        raise DataJointError(
            f"column {column!r}: holds tensors of shape {tuple(array.type.shape)}, its layout says {shape}"
        )
    _expect(storage.type.value_type, np.dtype(layout.dtype), column)
    values = storage.values.slice(storage.offset * size, len(storage) * size)
    flat = values.to_numpy(zero_copy_only=False)
    return flat.reshape((len(storage), *shape))


def var_tensor_values(array: pa.Array, layout: Layout, column: str = "") -> list:
    """Arrays of a variable-shape struct, each checked against its recorded shape."""
    data, shapes = array.field("data"), array.field("shape")
    _expect(data.type.value_type, np.dtype(layout.dtype), column)
    valid = _valid(array)
    offsets = data.offsets.to_numpy()
    flat = data.values.to_numpy(zero_copy_only=False)
    shape_list = shapes.to_pylist()
    out = []
    for i in range(len(array)):
        if not valid[i]:
            out.append(None)
            continue
        shape = tuple(shape_list[i])
        start, stop = int(offsets[i]), int(offsets[i + 1])
        if math.prod(shape) != stop - start:
            raise DataJointError(
                f"column {column!r}, row {i}: shape {shape} does not match its {stop - start} values"
            )
        out.append(flat[start:stop].reshape(shape))
    return out


def _struct_value(layout: Layout, items: list) -> Any:
    names = [name for name, _ in layout.fields]
    if not layout.matlab:
        return dict(zip(names, items))
    record = np.empty(1, np.dtype([(name, object) for name in names]))
    for name, item in zip(names, items):
        record[name][0] = item
    return record.reshape(layout.shape or (1, 1), order="F").view(MatStruct)
