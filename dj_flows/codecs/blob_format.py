"""Byte-level facts of the DataJoint/mYm blob format, shared by the encoder and the decoder.

Layout (all integers little-endian): an optional `ZL123\\0` + uint64 length + zlib stream, then a
protocol header (`mYm\\0` for what MATLAB's mYm can read, `dj0\\0` once a Python-only feature is
used), then one value: a one-byte code followed by that code's payload. Dimensions and lengths are
uint64 (uint32 in blobs from the 32-bit mYm build).
"""

from __future__ import annotations

import struct

import numpy as np

MYM = b"mYm\0"
DJ0 = b"dj0\0"
ZL123 = b"ZL123\0"

MAX_DEPTH = 200  # nesting bound for packing and unpacking (Python's stack is ~1000 frames)
MAX_NDIM = 64  # numpy's limit on array dimensions

# data structure codes (first byte of every value)
ARRAY = ord("A")  # MATLAB numeric/char/logical array, or (dj0) an object/unicode array
SPARSE = ord("P")  # MATLAB sparse array: never supported by DataJoint
STRUCT = ord("S")  # MATLAB struct array
CELL = ord("C")  # MATLAB cell array
RECARRAY = ord("F")  # numpy structured array
NONE = 0xFF
TUPLE, LIST, SET, DICT, STR, BYTES = 1, 2, 3, 4, 5, 6
INT, BOOL, COMPLEX, FLOAT = 0x0A, 0x0B, 0x0C, 0x0D
DECIMAL, DATETIME, UUID = ord("d"), ord("t"), ord("u")

# array type ids ('A' payload)
CHAR_ID = 4  # uint16 per character (MATLAB char)
OBJECT_ID = 5  # each element a length-prefixed nested blob
_DATETIME_UNITS = ("Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as")

NUMERIC_DTYPES: dict[int, np.dtype] = {
    3: np.dtype("bool"),
    6: np.dtype("<f8"),
    7: np.dtype("<f4"),
    8: np.dtype("i1"),
    9: np.dtype("u1"),
    10: np.dtype("<i2"),
    11: np.dtype("<u2"),
    12: np.dtype("<i4"),
    13: np.dtype("<u4"),
    14: np.dtype("<i8"),
    15: np.dtype("<u8"),
    **{65536 + i: np.dtype(f"<M8[{unit}]") for i, unit in enumerate(_DATETIME_UNITS)},
}
TYPE_IDS: dict[np.dtype, int] = {
    **{dtype: type_id for type_id, dtype in NUMERIC_DTYPES.items()},
    np.dtype("S1"): CHAR_ID,
    np.dtype("O"): OBJECT_ID,
}

U8 = struct.Struct("<B")
U16 = struct.Struct("<H")
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
U32X2 = struct.Struct("<II")
F64 = struct.Struct("<d")
C128 = struct.Struct("<dd")
DATE_TIME = struct.Struct("<iq")
