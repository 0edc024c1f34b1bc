"""Encoder: Python/numpy values -> the parts of an uncompressed blob body.

The encoder mirrors DataJoint 0.14's type dispatch exactly (the order of its isinstance checks
decides, e.g., that a numpy float is a 0-d array and a Python float is a `\\x0d` scalar), so the
bytes match DataJoint's. It is faster because it collects parts in one flat list — large arrays as
zero-copy memoryviews — and joins once, instead of concatenating bytes at every level, and packs
headers with `struct` instead of temporary numpy arrays.
"""

from __future__ import annotations

import collections.abc
import datetime
import uuid
from decimal import Decimal
from typing import Any

import numpy as np

from ..errors import BlobError
from . import blob_format as fmt
from .matlab import MatCell, MatStruct

_u64 = fmt.U64.pack
_u32 = fmt.U32.pack
_TRUE, _FALSE, _NONE = b"\x0b\x01", b"\x0b\x00", b"\xff"
_SLAB_ABOVE = 1 << 20  # arrays from this size are transposed to F order in slabs...
_SLAB_BYTES = 2 << 20  # ...of about this many source bytes


def _f_order_bytes(array: np.ndarray) -> memoryview:
    """The array's elements in Fortran order as a flat byte view (a view when already F-ordered).

    Large arrays in C order are transposed in slabs along the first axis: numpy's own F-order
    copy reads the source with a large stride and is several times slower on images.
    """
    if array.flags.f_contiguous:
        flat = array.reshape(-1, order="F")
    elif array.ndim < 2 or array.nbytes < _SLAB_ABOVE:
        flat = array.ravel(order="F")
    else:
        reversed_axes = array.transpose()  # its C order is the array's F order
        out = np.empty(reversed_axes.shape, array.dtype)
        step = max(16, _SLAB_BYTES // max(1, array[0].nbytes))
        for start in range(0, array.shape[0], step):
            out[..., start : start + step] = reversed_axes[..., start : start + step]
        flat = out.reshape(-1)
    return memoryview(flat.view(np.uint8))


class Encoder:
    """Collects the parts of one blob body; `dj0` records whether a Python-only feature was used."""

    __slots__ = ("parts", "size", "dj0", "native", "depth")

    def __init__(self, native: bool) -> None:
        self.parts: list[Any] = []
        self.size = 0
        self.dj0 = False
        self.native = native
        self.depth = 0

    # ---- plumbing
    def put(self, chunk: bytes | memoryview) -> None:
        self.parts.append(chunk)
        self.size += len(chunk)

    def need_dj0(self, obj: object) -> None:
        """Mark the blob as dj0 (Python-only), refusing when native blobs are disabled."""
        if not self.native:
            raise BlobError(
                f"Cannot pack {type(obj).__name__}: it needs DataJoint's Python-native blob "
                "format (dj0), and config['enable_python_native_blobs'] is False."
            )
        self.dj0 = True

    def item(self, obj: object) -> None:
        """Pack `obj` preceded by its uint64 byte length (how containers hold their elements)."""
        if self.depth >= fmt.MAX_DEPTH:
            raise BlobError(f"Cannot pack a value nested deeper than {fmt.MAX_DEPTH} levels.")
        parts = self.parts
        slot = len(parts)
        parts.append(b"")
        self.size += 8
        start = self.size
        self.depth += 1
        self.value(obj)
        self.depth -= 1
        parts[slot] = _u64(self.size - start)

    # ---- dispatch
    def value(self, obj: object) -> None:
        fast = _EXACT.get(type(obj))
        if fast is not None:
            fast(self, obj)
        else:
            self.generic(obj)

    def generic(self, obj: Any) -> None:
        """DataJoint's dispatch order, check for check."""
        if isinstance(obj, MatCell):
            return self.cell(obj)
        if isinstance(obj, MatStruct):
            return self.struct(obj)
        if isinstance(obj, np.ndarray) and obj.dtype.fields is None:
            return self.array(obj)
        self.need_dj0(obj)
        if not isinstance(obj, (np.ndarray, np.number)):
            if isinstance(obj, bool):
                return self.put(_TRUE if obj else _FALSE)
            if isinstance(obj, int):
                return self.int_(obj)
            if isinstance(obj, complex):
                return self.put(b"\x0c" + fmt.C128.pack(obj.real, obj.imag))
            if isinstance(obj, float):
                return self.put(b"\x0d" + fmt.F64.pack(obj))
        if isinstance(obj, np.ndarray) and obj.dtype.fields:
            return self.recarray(np.asarray(obj))
        if isinstance(obj, (np.number, np.datetime64, np.bool_)):
            return self.array(np.asarray(obj))
        if isinstance(obj, (datetime.datetime, datetime.date, datetime.time)):
            return self.datetime_(obj)
        if isinstance(obj, Decimal):
            text = str(obj).encode()
            return self.put(b"d" + _u64(len(text)) + text)
        if isinstance(obj, uuid.UUID):
            return self.put(b"u" + obj.bytes)
        if isinstance(obj, collections.abc.Mapping):
            return self.mapping(obj)
        if isinstance(obj, str):
            return self.str_(obj)
        if isinstance(obj, (bytes, bytearray)):
            return self.bytes_(obj)
        if isinstance(obj, collections.abc.MutableSequence):
            return self.sequence(fmt.LIST, obj)
        if isinstance(obj, collections.abc.Sequence):
            return self.sequence(fmt.TUPLE, obj)
        if isinstance(obj, collections.abc.Set):
            return self.sequence(fmt.SET, obj)
        if obj is None:
            return self.put(_NONE)
        raise BlobError(
            f"Cannot pack a value of type {type(obj).__module__}.{type(obj).__qualname__}."
        )

    # ---- scalars (each assumes need_dj0 was called)
    def int_(self, v: int) -> None:
        n = v.bit_length() // 8 + 1
        if n > 0xFFFF:
            raise BlobError("Cannot pack an integer longer than 65535 bytes.")
        self.put(b"\x0a" + fmt.U16.pack(n) + v.to_bytes(n, "little", signed=True))

    def str_(self, s: str) -> None:
        try:
            data = s.encode()
        except UnicodeEncodeError as exc:
            raise BlobError(f"Cannot pack a string that is not valid Unicode: {exc}") from None
        self.put(b"\x05" + _u64(len(data)))
        self.put(data)

    def bytes_(self, b: bytes | bytearray) -> None:
        self.put(b"\x06" + _u64(len(b)))
        self.put(bytes(b) if isinstance(b, bytearray) else b)

    def datetime_(self, d: datetime.date | datetime.time) -> None:
        if isinstance(d, datetime.datetime):
            date, time = d.date(), d.time()
        elif isinstance(d, datetime.date):
            date, time = d, None
        else:
            date, time = None, d
        day = -1 if date is None else (date.year * 100 + date.month) * 100 + date.day
        clock = (
            -1
            if time is None
            else ((time.hour * 100 + time.minute) * 100 + time.second) * 1_000_000
            + time.microsecond
        )
        self.put(b"t" + fmt.DATE_TIME.pack(day, clock))

    # ---- containers
    def sequence(self, code: int, seq: Any) -> None:
        self.put(bytes((code,)) + _u64(len(seq)))
        item = self.item
        for element in seq:
            item(element)

    def mapping(self, m: Any) -> None:
        self.put(b"\x04" + _u64(len(m)))
        item = self.item
        for key, val in m.items():
            item(key)
            item(val)

    # ---- arrays
    def array(self, array: np.ndarray) -> None:
        """'A': numeric, logical, char, datetime64, unicode and object arrays."""
        array = np.asarray(array)
        dtype = array.dtype
        if dtype.kind == "M":
            self.need_dj0(array)
        if dtype.byteorder == ">":  # DataJoint refuses these; store the same values little-endian
            array = array.astype(dtype.newbyteorder("<"))
            dtype = array.dtype
        is_complex = dtype.kind == "c"
        if is_complex:
            real, imag = array.real, array.imag
            base = real.dtype
        else:
            real, imag, base = array, None, dtype
        type_id = fmt.OBJECT_ID if dtype.kind == "U" else fmt.TYPE_IDS.get(base)
        if type_id is None:
            raise BlobError(f"Type {base} is ambiguous or unknown to the blob format.")
        ndim = array.ndim
        self.put(
            b"A"
            + _u64(ndim)
            + (_u64(array.shape[0]) if ndim == 1 else b"".join(map(_u64, array.shape)))
            + fmt.U32X2.pack(type_id, is_complex)
        )
        if type_id == fmt.OBJECT_ID:
            item = self.item
            for element in array.ravel(order="F").tolist():
                item(element)
            self.need_dj0(array)
        elif type_id == fmt.CHAR_ID:  # one uint16 per char, in C order as DataJoint writes them
            codes = np.ascontiguousarray(array).view(np.uint8).astype("<u2")
            self.put(memoryview(codes.reshape(-1).view(np.uint8)))
        else:
            if ndim == 0:
                self.need_dj0(array)
            self.put(_f_order_bytes(real))
            if imag is not None:
                self.put(_f_order_bytes(imag))

    def ndarray(self, array: np.ndarray) -> None:
        """Fast path for exact np.ndarray: plain arrays, else structured ones via DataJoint's order."""
        if array.dtype.fields is None:
            self.array(array)
        else:
            self.generic(array)

    def recarray(self, array: np.ndarray) -> None:
        """'F': a structured array as its field names, then each field as an array."""
        names = array.dtype.names
        try:
            header = "\0".join(names).encode() + b"\0"
        except UnicodeEncodeError as exc:
            raise BlobError(f"Cannot pack a field name that is not valid Unicode: {exc}") from None
        self.put(b"F" + _u32(len(names)) + header)
        if self.depth >= fmt.MAX_DEPTH:
            raise BlobError(f"Cannot pack a value nested deeper than {fmt.MAX_DEPTH} levels.")
        self.depth += 1
        for name in names:
            field = array[name]
            if field.dtype.fields:
                self.recarray(field)
            else:
                self.array(field)
        self.depth -= 1

    def _dims(self, code: bytes, array: np.ndarray) -> bytes:
        return code + _u64(array.ndim) + b"".join(map(_u64, array.shape))

    def struct(self, struct: MatStruct) -> None:
        """'S': a MATLAB struct array, its field values in Fortran order of the elements."""
        array = np.asarray(struct)
        names = array.dtype.names
        if not names:
            raise BlobError("Cannot pack a MatStruct without fields.")
        try:
            header = "\0".join(names).encode() + b"\0"
        except UnicodeEncodeError as exc:
            raise BlobError(f"Cannot pack a field name that is not valid Unicode: {exc}") from None
        self.put(self._dims(b"S", array) + _u32(len(names)) + header)
        item = self.item
        for record in array.ravel(order="F"):
            for element in record:
                item(element)

    def cell(self, cell: MatCell) -> None:
        """'C': a MATLAB cell array, its elements in Fortran order."""
        array = np.asarray(cell)
        self.put(self._dims(b"C", array))
        flat = array.ravel(order="F")
        item = self.item
        for element in flat.tolist() if flat.dtype.kind == "O" else flat:
            item(element)


def _exact_float(enc: Encoder, v: float) -> None:
    enc.need_dj0(v)
    enc.put(b"\x0d" + fmt.F64.pack(v))


def _exact_int(enc: Encoder, v: int) -> None:
    enc.need_dj0(v)
    enc.int_(v)


def _exact_bool(enc: Encoder, v: bool) -> None:
    enc.need_dj0(v)
    enc.put(_TRUE if v else _FALSE)


def _exact_str(enc: Encoder, v: str) -> None:
    enc.need_dj0(v)
    enc.str_(v)


def _exact_none(enc: Encoder, v: None) -> None:
    enc.need_dj0(v)
    enc.put(_NONE)


def _exact_list(enc: Encoder, v: list) -> None:
    enc.need_dj0(v)
    enc.sequence(fmt.LIST, v)


def _exact_tuple(enc: Encoder, v: tuple) -> None:
    enc.need_dj0(v)
    enc.sequence(fmt.TUPLE, v)


def _exact_dict(enc: Encoder, v: dict) -> None:
    enc.need_dj0(v)
    enc.mapping(v)


# exact types whose place in DataJoint's dispatch is known without walking it
_EXACT: dict[type, Any] = {
    np.ndarray: Encoder.ndarray,
    float: _exact_float,
    int: _exact_int,
    bool: _exact_bool,
    str: _exact_str,
    type(None): _exact_none,
    list: _exact_list,
    tuple: _exact_tuple,
    dict: _exact_dict,
}
