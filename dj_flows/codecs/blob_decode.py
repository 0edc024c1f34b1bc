"""Decoder: one uncompressed blob body -> Python/numpy values, safe against hostile bytes.

Values come back as DataJoint 0.14 returns them (its quirks included: a 0-d array reads as a numpy
scalar, a one-row char array as a one-element string array, a cell array goes through
`np.array(list)`), so code moving between the two libraries sees the same values. Where DataJoint
would crash on a well-formed blob (ragged cells, subarray fields, non-ASCII chars) the decoder
returns the natural value instead; complex arrays are rebuilt from their stored parts (DataJoint's
real + 1j*imag turns 0+inf*j into nan+inf*j).

Safety: every claimed length, count and shape is checked against the bytes that remain before
anything is allocated or looped over; nesting is bounded by MAX_DEPTH; allocations that numpy
derives from the data (padding strings in a cell, broadcasting record fields) are bounded by a
budget proportional to the blob's size. Any failure surfaces as BlobError (see blob.unpack).
"""

from __future__ import annotations

import datetime
import math
import uuid
from decimal import Decimal
from itertools import repeat
from typing import Any

import numpy as np

from ..errors import BlobError
from . import blob_format as fmt
from .matlab import MatCell, MatStruct

SMALL_ARRAY = 1 << 16  # arrays below this many bytes are copied even when they could be views
_MAX_ELEMENTS = 1 << 58  # numpy's limit on elements x itemsize (2**63), for any itemsize <= 32


class Decoder:
    """Reads values from `buf` (a flat byte memoryview) between `pos` and `end`."""

    __slots__ = (
        "buf", "pos", "end", "depth", "squeeze", "dim", "dim_size", "owned", "base", "budget",
        "copy",
    )  # fmt: skip

    def __init__(
        self,
        buf: memoryview,
        pos: int,
        *,
        squeeze: bool,
        dims32: bool,
        owned: Any = None,
        copy: bool = True,
    ) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf)
        self.depth = 0
        self.squeeze = squeeze
        self.dim = fmt.U32 if dims32 else fmt.U64
        self.dim_size = 4 if dims32 else 8
        # `owned` is the writable numpy buffer that `buf` views when the blob was decompressed
        # here: arrays may then view it instead of copying.
        self.owned = owned
        self.base = owned.ctypes.data if owned is not None else 0
        self.budget = 16 * len(buf) + (64 << 20)
        self.copy = copy  # False: arrays may view `buf` even when it is not ours (read-only)

    # ---- primitive reads
    def fail(self, message: str) -> BlobError:
        return BlobError(f"Corrupt blob at byte {self.pos}: {message}")

    def need(self, n: int) -> None:
        if n > self.end - self.pos:
            raise self.fail(f"needs {n} bytes but only {self.end - self.pos} remain")

    def take(self, n: int) -> memoryview:
        self.need(n)
        start = self.pos
        self.pos = start + n
        return self.buf[start : start + n]

    def unpack(self, st: Any) -> tuple:
        self.need(st.size)
        values = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return values

    def length(self) -> int:
        """A dimension, count or byte length (uint64, or uint32 for 32-bit mYm blobs)."""
        self.need(self.dim_size)
        (value,) = self.dim.unpack_from(self.buf, self.pos)
        self.pos += self.dim_size
        return value

    def counted(self, count: int, min_bytes: int) -> int:
        """Check that `count` items of at least `min_bytes` each fit in what remains."""
        if count * min_bytes > self.end - self.pos:
            raise self.fail(f"claims {count} elements but only {self.end - self.pos} bytes remain")
        return count

    def shape(self) -> tuple[int, ...]:
        ndim = self.length()
        if ndim > fmt.MAX_NDIM:
            raise self.fail(f"claims {ndim} dimensions (numpy allows {fmt.MAX_NDIM})")
        self.need(ndim * self.dim_size)
        code = "I" if self.dim_size == 4 else "Q"
        shape = tuple(np.frombuffer(self.buf, f"<{code}", ndim, self.pos).tolist())
        self.pos += ndim * self.dim_size
        if math.prod(d for d in shape if d) >= _MAX_ELEMENTS:  # numpy refuses such shapes
            raise self.fail(f"array shape {shape} is too large")
        return shape

    def cstring(self) -> str:
        """A zero-terminated UTF-8 string (field names)."""
        start = scan = self.pos
        step = 64
        while scan < self.end:
            stop = min(scan + step, self.end)
            found = bytes(self.buf[scan:stop]).find(0)
            if found >= 0:
                self.pos = scan + found + 1
                try:
                    return bytes(self.buf[start : scan + found]).decode()
                except UnicodeDecodeError as exc:
                    raise self.fail(f"field name is not valid UTF-8: {exc}") from None
            scan, step = stop, step * 2
        raise self.fail("unterminated field name")

    # ---- values
    def value(self, n_bytes: int | None = None) -> Any:
        """One value; with `n_bytes`, it must occupy exactly that many bytes."""
        if self.depth >= fmt.MAX_DEPTH:
            raise self.fail(f"nested deeper than {fmt.MAX_DEPTH} levels")
        start = self.pos
        outer_end = self.end
        if n_bytes is not None:
            self.need(n_bytes)
            self.end = start + n_bytes
        self.need(1)
        code = self.buf[start]
        self.pos = start + 1
        reader = _READERS.get(code)
        if reader is None:
            raise self.fail(f"unknown data structure code {chr(code)!r}")
        self.depth += 1
        result = reader(self)
        self.depth -= 1
        if n_bytes is not None:
            if self.pos != self.end:
                raise self.fail("length check failed: value is shorter than its length prefix")
            self.end = outer_end
        return result

    def sized(self) -> Any:
        return self.value(self.length())

    def items(self, count: int) -> list:
        self.counted(count, self.dim_size + 1)
        out = []
        append, value, length = out.append, self.value, self.length
        for _ in range(count):
            append(value(length()))
        return out

    def squeezed(self, array: Any, to_scalar: bool = True) -> Any:
        if not self.squeeze:
            return array
        array = array.squeeze()
        return array.item() if to_scalar and array.ndim == 0 else array

    # ---- 'A' arrays
    def array(self) -> Any:
        shape = self.shape()
        type_id, is_complex = self.unpack(fmt.U32X2)
        n = math.prod(shape)
        if type_id == fmt.OBJECT_ID:
            result = object_array(self.items(n), shape)
        elif type_id == fmt.CHAR_ID:
            result = self.chars(n, shape)
        else:
            dtype = fmt.NUMERIC_DTYPES.get(type_id)
            if dtype is None:
                raise self.fail(f"unknown array type id {type_id}")
            self.need(n * dtype.itemsize * (2 if is_complex else 1))
            if is_complex:
                if dtype.kind == "M":
                    raise self.fail("a datetime64 array cannot be complex")
                data = np.empty(n, np.result_type(dtype, 1j))
                data.real = self.numbers(dtype, n, copy=False)
                data.imag = self.numbers(dtype, n, copy=False)
            else:
                data = self.numbers(dtype, n)
            if not shape:  # DataJoint returns 0-d arrays as numpy scalars
                return self.squeezed(data[0])
            try:
                result = data.reshape(shape, order="F")
            except ValueError as exc:  # e.g. a zero-size shape too big for numpy
                raise self.fail(f"bad array shape {shape}: {exc}") from None
        return self.squeezed(result)

    def numbers(self, dtype: np.dtype, n: int, copy: bool = True) -> np.ndarray:
        """n values of `dtype`: a writable view of our own buffer when aligned, else a copy."""
        nbytes = n * dtype.itemsize
        self.need(nbytes)
        offset = self.pos
        self.pos += nbytes
        data = np.frombuffer(self.buf, dtype, n, offset)
        if not copy or not self.copy:
            return data
        if self.owned is None or nbytes < SMALL_ARRAY or (self.base + offset) % dtype.alignment:
            return data.copy()
        return data

    def chars(self, n: int, shape: tuple[int, ...]) -> np.ndarray:
        """MATLAB char array: uint16 code units; a single row reads as one string (DataJoint)."""
        codes = self.numbers(np.dtype("<u2"), n, copy=False)
        if len(shape) == 1 or (len(shape) == 2 and shape[0] == 1):
            kept = codes[codes != 0].astype("<u4")
            return kept.view(f"<U{len(kept)}") if len(kept) else np.array([""])
        return codes.astype("<u4").view("<U1").reshape(shape, order="F")

    # ---- 'S' struct, 'C' cell, 'F' record array
    def struct(self) -> Any:
        shape = self.shape()
        n = math.prod(shape)
        (n_fields,) = self.unpack(fmt.U32)
        if not n_fields:
            return np.array(None)
        self.counted(n_fields, 1)
        names = [self.cstring() for _ in range(n_fields)]
        try:
            dtype = np.dtype(list(zip(names, repeat(object))))
        except (ValueError, TypeError) as exc:
            raise self.fail(f"bad struct field names {names!r}: {exc}") from None
        self.counted(n * n_fields, self.dim_size + 1)
        rows = [tuple(self.items_fixed(n_fields)) for _ in range(n)]
        data = np.empty(n, dtype)
        columns = [data[name] for name in dtype.names]  # numpy renames '' to 'f0' etc.
        for i, row in enumerate(rows):
            for column, element in zip(columns, row):
                column[i] = element
        data = data.reshape(shape, order="F")
        return self.squeezed(data, to_scalar=False).view(MatStruct)

    def items_fixed(self, count: int) -> list:
        value, length = self.value, self.length
        return [value(length()) for _ in range(count)]

    def cell(self) -> Any:
        shape = self.shape()
        n = math.prod(shape)
        elements = self.items(n)
        result = None
        if _stacked_size(elements) <= self.budget:
            try:  # DataJoint builds cells with np.array(list): keep its results where it works
                result = np.array(elements).reshape(shape, order="F")
            except (ValueError, TypeError):
                result = None
        if result is None:
            result = object_array(elements, shape, emulate=False)
        return self.squeezed(result, to_scalar=False).view(MatCell)

    def recarray(self) -> Any:
        (n_fields,) = self.unpack(fmt.U32)
        if not n_fields:
            return np.array(None)
        self.counted(n_fields, 2)  # a name terminator and a value code per field
        names = [self.cstring() for _ in range(n_fields)]
        fields = [self.field() for _ in range(n_fields)]
        base = fields[0].shape
        try:  # DataJoint's rule: the first field's shape is the record array's shape
            dtype = np.dtype([(name, f.dtype) for name, f in zip(names, fields)])
            self.within_budget(math.prod(base) * dtype.itemsize)
            rec = np.empty(base, dtype)
            for name, f in zip(names, fields):
                rec[name] = f
        except (ValueError, TypeError):  # subarray fields: trailing dimensions go in the dtype
            try:
                dtype = np.dtype(
                    [(nm, f.dtype, _trailing(f.shape, base)) for nm, f in zip(names, fields)]
                )
                self.within_budget(math.prod(base) * dtype.itemsize)
                rec = np.empty(base, dtype)
                for name, f in zip(names, fields):
                    rec[name] = f
            except (ValueError, TypeError) as exc:
                raise self.fail(f"record array fields do not fit together: {exc}") from None
        return rec.view(np.recarray)

    def field(self) -> np.ndarray:
        """A record array's field: an array, or (squeezed) a scalar, held as a 0-d array."""
        value = self.value()
        if isinstance(value, (np.ndarray, np.generic, int, float, complex, str, bytes)):
            return np.asarray(value)
        holder = np.empty((), dtype=object)
        holder[()] = value
        return holder

    def within_budget(self, nbytes: int) -> None:
        if nbytes > self.budget:
            raise self.fail(f"would expand to {nbytes} bytes, far more than the blob holds")

    # ---- containers and scalars
    def none(self) -> None:
        return None

    def tuple_(self) -> tuple:
        return tuple(self.items(self.length()))

    def list_(self) -> list:
        return self.items(self.length())

    def set_(self) -> set:
        elements = self.items(self.length())
        try:
            return set(elements)
        except TypeError as exc:
            raise self.fail(f"set element is not hashable: {exc}") from None

    def dict_(self) -> dict:
        count = self.counted(self.length(), 2 * (self.dim_size + 1))
        pairs = self.items(2 * count)
        try:
            return dict(zip(pairs[::2], pairs[1::2]))
        except TypeError as exc:
            raise self.fail(f"dict key is not hashable: {exc}") from None

    def text(self) -> str:
        raw = self.take(self.length())
        try:
            return str(raw, "utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"string is not valid UTF-8: {exc}") from None

    def bytes_(self) -> bytes:
        return bytes(self.take(self.length()))

    def int_(self) -> int:
        (n,) = self.unpack(fmt.U16)
        return int.from_bytes(self.take(n), "little", signed=True)

    def bool_(self) -> bool:
        return self.take(1)[0] != 0

    def complex_(self) -> complex:
        return complex(*self.unpack(fmt.C128))

    def float_(self) -> float:
        return self.unpack(fmt.F64)[0]

    def decimal(self) -> Decimal:
        text = self.text()
        try:
            return Decimal(text)
        except ArithmeticError:
            raise self.fail(f"not a decimal number: {text[:40]!r}") from None

    def datetime_(self) -> Any:
        day, clock = self.unpack(fmt.DATE_TIME)
        try:
            date = datetime.date(day // 10000, (day // 100) % 100, day % 100) if day >= 0 else None
            time = (
                datetime.time(
                    (clock // 10**10) % 100,
                    (clock // 10**8) % 100,
                    (clock // 10**6) % 100,
                    clock % 10**6,
                )
                if clock >= 0
                else None
            )
        except ValueError as exc:
            raise self.fail(f"invalid date or time: {exc}") from None
        if date is not None and time is not None:
            return datetime.datetime.combine(date, time)
        return time or date

    def uuid_(self) -> uuid.UUID:
        return uuid.UUID(bytes=bytes(self.take(16)))

    def sparse(self) -> Any:
        raise self.fail("MATLAB sparse arrays are not supported (nor by DataJoint)")


def object_array(elements: list, shape: tuple[int, ...], emulate: bool = True) -> np.ndarray:
    """An object array of `elements` in Fortran order.

    DataJoint builds it with np.array(elements, dtype=object), which unwraps one-element
    sequences; that result is kept where it works, else each element is stored as it is.
    """
    if emulate:
        try:
            return np.array(elements, dtype=object).reshape(shape, order="F")
        except (ValueError, TypeError):
            pass
    out = np.empty(len(elements), dtype=object)
    for i, element in enumerate(elements):
        out[i] = element
    return out.reshape(shape, order="F")


def _trailing(shape: tuple[int, ...], base: tuple[int, ...]) -> tuple[int, ...]:
    return shape[len(base) :] if shape[: len(base)] == base else ()


def _stacked_size(elements: list) -> int:
    """An upper bound on the bytes np.array(elements) can allocate (it pads strings to the widest)."""
    leaves, widest, stack = 0, 128, list(elements)
    while stack:
        x = stack.pop()
        if isinstance(x, (str, bytes)):
            leaves += 1
            widest = max(widest, 4 * len(x))
        elif isinstance(x, np.ndarray):
            leaves += x.size
            widest = max(widest, 4 * x.dtype.itemsize)
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
        else:
            leaves += 1
    return leaves * widest


_READERS = {
    fmt.ARRAY: Decoder.array,
    fmt.SPARSE: Decoder.sparse,
    fmt.STRUCT: Decoder.struct,
    fmt.CELL: Decoder.cell,
    fmt.RECARRAY: Decoder.recarray,
    fmt.NONE: Decoder.none,
    fmt.TUPLE: Decoder.tuple_,
    fmt.LIST: Decoder.list_,
    fmt.SET: Decoder.set_,
    fmt.DICT: Decoder.dict_,
    fmt.STR: Decoder.text,
    fmt.BYTES: Decoder.bytes_,
    fmt.INT: Decoder.int_,
    fmt.BOOL: Decoder.bool_,
    fmt.COMPLEX: Decoder.complex_,
    fmt.FLOAT: Decoder.float_,
    fmt.DECIMAL: Decoder.decimal,
    fmt.DATETIME: Decoder.datetime_,
    fmt.UUID: Decoder.uuid_,
}
