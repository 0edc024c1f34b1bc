"""Layouts: how the Python values of one column (decoded blobs, computed results) map to Arrow.

A blob column has no declared shape or dtype, so its Arrow type is inferred from the values and
recorded as a `Layout` (kept in the Parquet field metadata, so a reader never has to guess again):

    scalar     numpy/Python numbers and bools      -> int*/uint*/float*/bool
               complex numbers                     -> struct<real, imag>
    string     str                                 -> string
    bytes      bytes                               -> large_binary
    tensor     arrays of one dtype and shape       -> arrow.fixed_shape_tensor (C order)
    var_tensor arrays of one dtype, varying shape  -> struct<data: list<T>, shape: fixed_size_list<int32>[ndim]>
               complex arrays                      -> struct<real: tensor, imag: tensor>
    struct     dicts with the same str keys,       -> struct of the fields' own layouts
               1x1 MATLAB structs (MatStruct)
    json       dicts whose keys differ by row      -> arrow.json (values become JSON: lossy)
    blob       anything else (lists, cells, mixed) -> large_binary holding DataJoint blob bytes
    arrow      plain computed values               -> the Arrow type pyarrow infers

`merge` widens a layout to hold both of two (a tensor of another shape makes it a var_tensor, a
different dtype makes it a blob), so a column's layout only ever moves up that lattice. The variable
tensor struct is the storage of Arrow's canonical variable_shape_tensor without its extension
annotation: pyarrow 26 reads the annotated type but converts it to strings in to_pandas().
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from .codecs.matlab import MatCell, MatStruct
from .errors import DataJointError

NUMERIC_KINDS = "biuf"
KINDS = (
    "null",
    "scalar",
    "string",
    "bytes",
    "tensor",
    "var_tensor",
    "struct",
    "json",
    "blob",
    "arrow",
)


class LayoutError(DataJointError):
    """A value does not fit the layout its column was given."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """How one column's values are held in Arrow (see the module docstring)."""

    kind: str
    dtype: str | None = None  # numpy dtype (scalar, tensor); an Arrow type name for 'arrow'
    shape: tuple[int, ...] | None = None  # tensor; MATLAB struct shape for struct
    ndim: int | None = None  # var_tensor (None: the number of dimensions varies too)
    python: bool = False  # scalars given as Python numbers (restored as such)
    fields: tuple[tuple[str, Layout], ...] = ()  # struct
    matlab: bool = False  # struct read from a MATLAB struct

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        for name in ("dtype", "shape", "ndim"):
            value = getattr(self, name)
            if value is not None:
                data[name] = list(value) if name == "shape" else value
        if self.python:
            data["python"] = True
        if self.matlab:
            data["matlab"] = True
        if self.kind == "struct":
            data["fields"] = [[name, child.to_dict()] for name, child in self.fields]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layout:
        if data.get("kind") not in KINDS:
            raise DataJointError(f"unknown column layout {data!r}")
        shape = data.get("shape")
        return cls(
            kind=data["kind"],
            dtype=data.get("dtype"),
            shape=tuple(shape) if shape is not None else None,
            ndim=data.get("ndim"),
            python=bool(data.get("python")),
            fields=tuple((name, cls.from_dict(child)) for name, child in data.get("fields", ())),
            matlab=bool(data.get("matlab")),
        )

    @property
    def is_complex(self) -> bool:
        return self.dtype is not None and self.kind != "arrow" and np.dtype(self.dtype).kind == "c"

    def arrow_type(self) -> pa.DataType:
        kind = self.kind
        if kind == "null":
            return pa.null()
        if kind == "string":
            return pa.string()
        if kind in ("bytes", "blob"):
            return pa.large_binary()
        if kind == "json":
            return pa.json_()
        if kind == "arrow":
            return arrow_type_from_name(self.dtype or "null")
        if kind == "struct":
            return pa.struct([pa.field(name, child.arrow_type()) for name, child in self.fields])
        if self.is_complex:
            part = dataclasses.replace(self, dtype=real_dtype(self.dtype).str)
            return pa.struct(
                [pa.field("real", part.arrow_type()), pa.field("imag", part.arrow_type())]
            )
        value_type = pa.from_numpy_dtype(np.dtype(self.dtype))
        if kind == "scalar":
            return value_type
        if kind == "tensor":
            return pa.fixed_shape_tensor(value_type, list(self.shape or ()))
        shape_type = (
            pa.list_(pa.int32(), self.ndim) if self.ndim is not None else pa.list_(pa.int32())
        )
        return pa.struct([pa.field("data", pa.list_(value_type)), pa.field("shape", shape_type)])


BLOB = Layout("blob")
NULL = Layout("null")


def real_dtype(dtype: Any) -> np.dtype:
    return np.empty(0, np.dtype(dtype)).real.dtype


def arrow_type_from_name(name: str) -> pa.DataType:
    """The Arrow type of a 'arrow' layout, from the name `str(type)` gave it."""
    if name.startswith("decimal"):
        width, _, rest = name.partition("(")
        precision, scale = (int(x) for x in rest.rstrip(")").split(","))
        return (pa.decimal256 if width == "decimal256" else pa.decimal128)(precision, scale)
    aliases = {"date32[day]": "date32", "date64[ms]": "date64"}
    try:
        return pa.type_for_alias(aliases.get(name, name))
    except (ValueError, KeyError):
        raise DataJointError(f"unsupported computed column type {name!r}") from None


# -- inference ------------------------------------------------------------------------------------
def infer_one(value: Any) -> Layout | None:
    """The layout of one value (None for None)."""
    if value is None:
        return None
    if isinstance(value, MatStruct):
        if value.size != 1 or not value.dtype.names:
            return BLOB
        fields = tuple((name, infer_one(value[name].flat[0]) or NULL) for name in value.dtype.names)
        return Layout("struct", shape=tuple(value.shape), fields=fields, matlab=True)
    if isinstance(value, np.ndarray):
        dtype = value.dtype
        if isinstance(value, MatCell) or dtype.names or dtype.kind not in NUMERIC_KINDS + "c":
            return BLOB
        if value.ndim == 0:
            return Layout("scalar", dtype=dtype.str)
        return array_layout(dtype.str, tuple(value.shape))
    if isinstance(value, np.generic):
        if value.dtype.kind in NUMERIC_KINDS + "c":
            return Layout("scalar", dtype=value.dtype.str)
        return Layout("string") if isinstance(value, np.str_) else BLOB
    if isinstance(value, bool):
        return Layout("scalar", dtype="|b1", python=True)
    if isinstance(value, int):
        return Layout("scalar", dtype="<i8", python=True) if -(2**63) <= value < 2**63 else BLOB
    if isinstance(value, float):
        return Layout("scalar", dtype="<f8", python=True)
    if isinstance(value, complex):
        return Layout("scalar", dtype="<c16", python=True)
    if isinstance(value, str):
        return Layout("string")
    if isinstance(value, bytes):
        return Layout("bytes")
    if isinstance(value, dict):
        if value and all(isinstance(k, str) and k for k in value):
            return Layout(
                "struct", fields=tuple((k, infer_one(v) or NULL) for k, v in value.items())
            )
        return Layout("json") if _jsonable(value) else BLOB
    return BLOB


def array_layout(dtype: str, shape: tuple[int, ...]) -> Layout:
    """An array's layout: a tensor, or a var_tensor when empty (Arrow has no size-0 tensors)."""
    if math.prod(shape) == 0:
        return Layout("var_tensor", dtype=dtype, ndim=len(shape))
    return Layout("tensor", dtype=dtype, shape=shape)


def infer(values: Sequence[Any], start: Layout | None = None) -> Layout:
    """The narrowest layout holding `start` and every value."""
    layout = start or NULL
    seen: dict[tuple, Layout] = {}
    for value in values:
        if layout.kind == "blob":
            break
        one = infer_one(value)
        if one is None:
            continue
        signature = (one.kind, one.dtype, one.shape, one.python)  # fast path for repeated layouts
        if one.kind in ("scalar", "tensor", "string", "bytes") and seen.get(signature) is layout:
            continue
        layout = merge(layout, one)
        seen[signature] = layout
    return layout


def merge(a: Layout, b: Layout) -> Layout:
    """The narrowest layout that holds everything `a` and `b` hold."""
    if a == b or b.kind == "null":
        return a
    if a.kind == "null":
        return b
    kinds = {a.kind, b.kind}
    if "blob" in kinds:
        return BLOB
    if kinds <= {"tensor", "var_tensor"}:
        if a.dtype != b.dtype:
            return BLOB
        dims = {_ndim(a), _ndim(b)}
        return Layout("var_tensor", dtype=a.dtype, ndim=dims.pop() if len(dims) == 1 else None)
    if kinds == {"scalar"}:
        if a.dtype != b.dtype:
            return BLOB
        return Layout("scalar", dtype=a.dtype, python=a.python and b.python)
    if kinds == {"struct"}:
        names_a, names_b = [n for n, _ in a.fields], [n for n, _ in b.fields]
        if a.matlab != b.matlab or (a.matlab and (a.shape != b.shape or names_a != names_b)):
            return BLOB
        if names_a != names_b:
            return Layout("json")
        fields = tuple((name, merge(x, y)) for (name, x), (_, y) in zip(a.fields, b.fields))
        return dataclasses.replace(a, fields=fields)
    if kinds == {"struct", "json"}:
        struct = a if a.kind == "struct" else b
        return BLOB if struct.matlab else Layout("json")
    if kinds == {"arrow"}:
        return _merge_arrow(a, b)
    return BLOB


def _ndim(layout: Layout) -> int | None:
    return len(layout.shape) if layout.kind == "tensor" else layout.ndim


def _merge_arrow(a: Layout, b: Layout) -> Layout:
    try:
        unified = pa.unify_schemas(
            [pa.schema([("x", a.arrow_type())]), pa.schema([("x", b.arrow_type())])],
            promote_options="permissive",
        )
        return Layout("arrow", dtype=str(unified.field("x").type))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return Layout("arrow", dtype="string")


def infer_computed(values: Sequence[Any], start: Layout | None = None) -> Layout:
    """Layout of a computed (SQL expression) column: the type pyarrow infers for the values."""
    kind = pa.array(values).type if values else pa.null()
    if pa.types.is_decimal(kind) and kind.precision > 38:
        kind = pa.decimal256(kind.precision, kind.scale)
    layout = Layout("arrow", dtype=str(kind))
    return _merge_arrow(start, layout) if start is not None and start.kind == "arrow" else layout


# -- encoding: Python values -> Arrow ----------------------------------------------------------------
def encode(layout: Layout, values: Sequence[Any], column: str = "") -> pa.Array:
    """An Arrow array of `layout.arrow_type()` holding `values` (LayoutError if one does not fit)."""
    n = len(values)
    mask = np.fromiter((v is None for v in values), bool, n)
    any_null = bool(mask.any())
    kind = layout.kind
    if kind == "null":
        if not any_null and n:
            raise LayoutError(f"column {column!r}: values in a column with no layout yet")
        return pa.nulls(n)
    if kind == "arrow":
        try:
            return pa.array(values, type=layout.arrow_type())
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as error:
            raise LayoutError(f"column {column!r}: {error}") from None
    _check(layout, values, column)
    if kind == "string":
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    if kind == "bytes":
        return pa.array(values, pa.large_binary())
    if kind == "json":
        return pa.array(
            [None if v is None else json.dumps(v, default=_json_default) for v in values],
            pa.json_(),
        )
    if kind == "blob":
        from .codecs.blob import pack

        return pa.array(
            [None if v is None else pack(v) for v in values],
            pa.large_binary(),
        )
    if kind == "struct":
        children = []
        for name, child in layout.fields:
            if layout.matlab:
                items = [None if v is None else v[name].flat[0] for v in values]
            else:
                items = [None if v is None else v.get(name) for v in values]
            children.append(encode(child, items, f"{column}.{name}"))
        return pa.StructArray.from_arrays(
            children, names=[n for n, _ in layout.fields], mask=_mask(mask, any_null)
        )
    dtype = np.dtype(layout.dtype)
    if kind == "scalar":
        data = np.zeros(n, dtype)
        for i, value in enumerate(values):
            if value is not None:
                data[i] = value
        return numeric_array(layout, data, mask if any_null else None)
    if kind == "tensor":
        data = np.zeros((n, *layout.shape), dtype)
        for i, value in enumerate(values):
            if value is not None:
                data[i] = value
        return tensor_array(layout, data, mask if any_null else None)
    shapes = [() if v is None else v.shape for v in values]
    sizes = np.fromiter((math.prod(s) for s in shapes), np.int64, n)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    data = np.empty(int(offsets[-1]), dtype)
    for i, value in enumerate(values):
        if value is not None:
            data[offsets[i] : offsets[i + 1]].reshape(value.shape)[...] = value
    return var_tensor_array(layout, data, offsets, shapes, mask if any_null else None)


def _mask(mask: np.ndarray, any_null: bool) -> pa.Array | None:
    return pa.array(mask) if any_null else None


def _check(layout: Layout, values: Sequence[Any], column: str) -> None:
    """Values must fit the layout exactly: no silent casts of dtype or shape."""
    if layout.kind in ("blob",):
        return
    for value in values:
        if value is not None and merge(layout, infer_one(value)) != layout:
            raise LayoutError(
                f"column {column!r}: a value of layout {infer_one(value).to_dict()} does not fit {layout.to_dict()}"
            )


def numeric_array(layout: Layout, data: np.ndarray, mask: np.ndarray | None) -> pa.Array:
    """Scalars (real or complex) from a 1-d numpy array."""
    if data.dtype.kind == "c":
        real = pa.array(np.ascontiguousarray(data.real), mask=mask)
        imag = pa.array(np.ascontiguousarray(data.imag), mask=mask)
        return pa.StructArray.from_arrays(
            [real, imag], names=["real", "imag"], mask=_optional(mask)
        )
    return pa.array(data, mask=mask)


def _optional(mask: np.ndarray | None) -> pa.Array | None:
    return None if mask is None else pa.array(mask)


def tensor_array(layout: Layout, data: np.ndarray, mask: np.ndarray | None) -> pa.Array:
    """A fixed_shape_tensor array (a struct of two for complex) from an (n, *shape) C-order array."""
    if data.dtype.kind == "c":
        part = dataclasses.replace(layout, dtype=real_dtype(data.dtype).str)
        real = tensor_array(part, np.ascontiguousarray(data.real), mask)
        imag = tensor_array(part, np.ascontiguousarray(data.imag), mask)
        return pa.StructArray.from_arrays(
            [real, imag], names=["real", "imag"], mask=_optional(mask)
        )
    return tensor_from_parts(layout, data, mask)


def tensor_from_parts(layout: Layout, data: np.ndarray, mask: np.ndarray | None) -> pa.Array:
    size = math.prod(layout.shape or ())
    flat = (
        pa.array(data.reshape(-1)) if data.dtype != bool else pa.array(data.reshape(-1), pa.bool_())
    )
    storage = pa.FixedSizeListArray.from_arrays(flat, size, mask=_optional(mask))
    kind = pa.fixed_shape_tensor(pa.from_numpy_dtype(data.dtype), list(layout.shape or ()))
    return pa.ExtensionArray.from_storage(kind, storage)


def var_tensor_array(
    layout: Layout,
    data: np.ndarray,
    offsets: np.ndarray,
    shapes: Sequence[tuple],
    mask: np.ndarray | None,
) -> pa.Array:
    """The variable-shape struct (see module docstring) from concatenated C-order data."""
    if data.dtype.kind == "c":
        part = dataclasses.replace(layout, dtype=real_dtype(data.dtype).str)
        real = var_tensor_array(part, np.ascontiguousarray(data.real), offsets, shapes, mask)
        imag = var_tensor_array(part, np.ascontiguousarray(data.imag), offsets, shapes, mask)
        return pa.StructArray.from_arrays(
            [real, imag], names=["real", "imag"], mask=_optional(mask)
        )
    offsets32 = offsets.astype(np.int32) if offsets[-1] < 2**31 else None
    if offsets32 is None:
        raise LayoutError(
            f"a record batch of a variable-shape column holds {offsets[-1]} elements (limit 2**31): use smaller batches"
        )
    lists = pa.ListArray.from_arrays(pa.array(offsets32), pa.array(data), mask=_optional(mask))
    if layout.ndim is not None:
        flat_shapes = np.zeros((len(shapes), layout.ndim), np.int32)
        for i, shape in enumerate(shapes):
            if shape or layout.ndim == 0:
                flat_shapes[i] = shape
        shape_array = pa.FixedSizeListArray.from_arrays(
            pa.array(flat_shapes.reshape(-1)), layout.ndim
        )
    else:
        shape_array = pa.array([list(s) for s in shapes], pa.list_(pa.int32()))
    return pa.StructArray.from_arrays(
        [lists, shape_array], names=["data", "shape"], mask=_optional(mask)
    )


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, default=_json_default)
        return True
    except (TypeError, ValueError):
        return False


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.dtype.kind in NUMERIC_KINDS + "U":
        return value.tolist()
    if isinstance(value, np.generic) and value.dtype.kind in NUMERIC_KINDS + "U":
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
