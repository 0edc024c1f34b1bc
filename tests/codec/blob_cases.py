"""The deterministic values behind the committed blob test vectors (tests/vectors/blob/).

scripts/make_blob_vectors.py packs each value with datajoint 0.14.10; the tests pack the same value
with dj_flows and compare bytes. Every value is rebuilt from this module, so the vectors need no
pickles of the inputs. Sets hold only integers (string hashes vary between processes, and with
them a set's iteration order and so its bytes).

`NATURAL` gives, for values that DataJoint packs but cannot read back (ragged cells), the value
dj_flows reads instead; `RAW` holds blobs that only MATLAB's mYm writes.
"""

from __future__ import annotations

import collections
import datetime
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np

from dj_flows.codecs import MatCell, MatStruct

_NUMERIC = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
            "float32", "float64", "complex64", "complex128"]  # fmt: skip
_UNITS = ["Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as"]


def chars(text: bytes) -> np.ndarray:
    """A MATLAB-style char array (dtype S1), one element per byte."""
    return np.frombuffer(text, dtype="S1").copy()


def _rng() -> np.random.Generator:
    return np.random.default_rng(20240501)


def _numeric(dtype: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kind = np.dtype(dtype).kind
    if kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    values = rng.standard_normal(shape) * 1e3
    if kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    return values.astype(dtype)


def _cell(shape: tuple[int, ...], *elements: Any) -> MatCell:
    cell = np.empty(shape, dtype=object)
    flat = cell.reshape(-1, order="F")
    for i, element in enumerate(elements):
        flat[i] = element
    return cell.view(MatCell)


def _struct(shape: tuple[int, ...], names: list[str], *rows: tuple) -> MatStruct:
    array = np.empty(int(np.prod(shape)), dtype=[(name, object) for name in names])
    for i, row in enumerate(rows):
        for name, value in zip(names, row):
            array[name][i] = value
    return array.reshape(shape, order="F").view(MatStruct)


def _object(*elements: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    array = np.empty(len(elements), dtype=object)
    for i, element in enumerate(elements):
        array[i] = element
    return array if shape is None else array.reshape(shape, order="F")


def _cases() -> dict[str, Callable[[], Any]]:
    cases: dict[str, Callable[[], Any]] = {}
    # numeric arrays of every dtype, in several shapes and memory orders
    for i, dtype in enumerate(_NUMERIC):
        cases[f"array_{dtype}_1d"] = lambda d=dtype, s=i: _numeric(d, (7,), s)
        cases[f"array_{dtype}_2d"] = lambda d=dtype, s=i: _numeric(d, (3, 4), s)
        cases[f"array_{dtype}_0d"] = lambda d=dtype, s=i: _numeric(d, (), s)
        cases[f"scalar_{dtype}"] = lambda d=dtype, s=i: _numeric(d, (), s)[()]
    cases["array_float64_fortran"] = lambda: np.asfortranarray(_numeric("float64", (3, 5), 1))
    cases["array_int16_3d"] = lambda: _numeric("int16", (2, 3, 4), 2)
    cases["array_complex128_3d_sliced"] = lambda: _numeric("complex128", (4, 3, 6), 3)[::2, :, 1::2]
    cases["array_float32_transposed"] = lambda: _numeric("float32", (4, 5), 4).T
    cases["array_float64_empty_0x3"] = lambda: np.zeros((0, 3))
    cases["array_int32_empty"] = lambda: np.zeros(0, dtype="int32")
    cases["array_float64_one"] = lambda: np.array([2.5])
    cases["array_float64_1x1"] = lambda: np.array([[2.5]])
    cases["array_float64_special"] = lambda: np.array([np.nan, np.inf, -np.inf, -0.0, 5e-324])
    cases["array_uint8_4d"] = lambda: _numeric("uint8", (2, 2, 2, 3), 5)
    cases["matrix_float64"] = lambda: np.arange(6.0).reshape(2, 3).view(np.matrix)
    # MATLAB char arrays (S1)
    cases["char_row"] = lambda: chars(b"hello world")
    cases["char_row_1xn"] = lambda: chars(b"row").reshape(1, 3)
    cases["char_2d"] = lambda: chars(b"abcdef").reshape(2, 3)
    cases["char_0d"] = lambda: np.array(b"x", dtype="S1")
    cases["char_single"] = lambda: np.array([b"q"], dtype="S1")
    cases["char_empty"] = lambda: np.zeros(0, dtype="S1")
    cases["char_with_nul"] = lambda: np.array([b"a", b"", b"b"], dtype="S1")
    # unicode and object arrays
    cases["unicode_1d"] = lambda: np.array(["alpha", "béta", "", "γ"])
    cases["unicode_2d"] = lambda: np.array([["a", "bb"], ["ccc", "d"]])
    cases["unicode_0d"] = lambda: np.array("solo")
    cases["object_mixed"] = lambda: _object(1, "two", 3.0, None, b"five", [6], {"seven": 7})
    cases["object_arrays_ragged"] = lambda: _object(np.arange(3), np.arange(2.0))
    cases["object_2d"] = lambda: _object(1, 2.5, "x", (4,), shape=(2, 2))
    cases["object_one_element_lists"] = lambda: _object([1], [2])
    cases["object_scalars"] = lambda: _object(np.float32(1.5), np.int64(-3), np.array(2.0))
    cases["object_empty"] = lambda: np.empty(0, dtype=object)
    # datetime64
    for unit in _UNITS:
        cases[f"datetime64_{unit}"] = lambda u=unit: np.datetime64(7_000, u)
    cases["datetime64_array_s"] = lambda: np.array(
        ["2020-01-01T10:00:00", "NaT", "1969-12-31T23:59:59"], dtype="M8[s]"
    )
    cases["datetime64_array_D_2d"] = lambda: np.arange(6).astype("M8[D]").reshape(2, 3)
    # structured arrays and record arrays
    simple = [("a", "i4"), ("b", "f8"), ("c", "U3")]
    cases["structured_simple"] = lambda: np.array([(1, 2.5, "ab"), (2, -3.5, "xyz")], dtype=simple)
    cases["recarray_simple"] = lambda: np.rec.array(
        [(1, 2.5, "ab"), (2, -3.5, "xyz")], dtype=simple
    )
    cases["structured_0d"] = lambda: np.array((7, 1.25), dtype=[("n", "u2"), ("x", "f4")])
    cases["structured_empty"] = lambda: np.zeros(0, dtype=[("n", "u2"), ("x", "f4")])
    cases["structured_2d"] = lambda: np.zeros((2, 3), dtype=[("p", "c16"), ("q", "bool")])
    cases["structured_nested"] = lambda: np.array(
        [(1, (2.5, 3)), (4, (5.5, 6))], dtype=[("a", "i4"), ("n", [("p", "f8"), ("q", "i2")])]
    )
    cases["structured_object_field"] = lambda: np.array(
        [(1, [1, 2]), (2, "x")], dtype=[("k", "i8"), ("v", "O")]
    )
    cases["structured_subarray_first"] = lambda: np.array(
        [([1, 2], 3)], dtype=[("v", "f8", (2,)), ("a", "i4")]
    )
    cases["structured_datetime_field"] = lambda: np.array(
        [(1, np.datetime64(5, "s"))], dtype=[("k", "i1"), ("t", "M8[s]")]
    )
    # MATLAB structs and cells
    cases["matstruct_1x1"] = lambda: _struct((1, 1), ["x", "label"], (np.arange(3.0), chars(b"hi")))
    cases["matstruct_1x2_numeric"] = lambda: np.array(
        [(1.5, 2), (3.5, 4)], dtype=[("x", "f8"), ("y", "i4")]
    ).view(MatStruct)
    cases["matstruct_2x2_objects"] = lambda: _struct(
        (2, 2), ["v"], (np.array([1.0]),), (np.zeros((2, 2)),), (np.int8(3),), (np.array([[5.0]]),)
    )
    cases["matstruct_nested"] = lambda: _struct(
        (1, 1),
        ["inner", "cell"],
        (_struct((1, 1), ["z"], (np.eye(2),)), _cell((1, 2), np.ones(2), np.zeros(3))),
    )
    cases["matcell_strings"] = lambda: _cell(
        (1, 3),
        chars(b"ab"),
        chars(b"cde"),
        chars(b"f"),
    )
    cases["matcell_equal_arrays"] = lambda: _cell((2, 1), np.arange(3.0), np.arange(3.0) + 1)
    cases["matcell_scalars"] = lambda: _cell((1, 2), 1.5, "a")
    cases["matcell_ragged"] = lambda: _cell((1, 2), np.arange(3.0), np.arange(2.0))
    cases["matcell_empty"] = lambda: np.empty((0, 0), dtype=object).view(MatCell)
    cases["matcell_numeric"] = lambda: np.arange(4.0).reshape(2, 2).view(MatCell)
    cases["matcell_nested"] = lambda: _cell(
        (1, 2), _cell((1, 1), np.array([1.0])), np.array([[2.0]])
    )
    # Python scalars
    for i, number in enumerate([0, 1, -1, 127, 128, -128, -129, 255, 256, 2**63, -(2**64), 3**200]):
        cases[f"int_{i}"] = lambda v=number: v
    cases["bool_true"] = lambda: True
    cases["bool_false"] = lambda: False
    cases["float_pi"] = lambda: 3.141592653589793
    cases["float_nan"] = lambda: float("nan")
    cases["float_neg_zero"] = lambda: -0.0
    cases["float_inf"] = lambda: float("inf")
    cases["complex"] = lambda: complex(1.5, -2.25)
    cases["none"] = lambda: None
    cases["str_empty"] = lambda: ""
    cases["str_unicode"] = lambda: "naïve façade — 数据 🧪"
    cases["bytes"] = lambda: bytes(range(256))
    cases["bytes_empty"] = lambda: b""
    cases["bytearray"] = lambda: bytearray(b"mutable")
    cases["decimal"] = lambda: Decimal("-12345.678900")
    cases["decimal_exp"] = lambda: Decimal("1E+30")
    cases["decimal_nan"] = lambda: Decimal("NaN")
    cases["date"] = lambda: datetime.date(2024, 2, 29)
    cases["time"] = lambda: datetime.time(23, 59, 58, 999999)
    cases["time_midnight"] = lambda: datetime.time(0, 0)
    cases["datetime"] = lambda: datetime.datetime(1999, 12, 31, 12, 30, 5, 250)
    cases["uuid"] = lambda: uuid.UUID("12345678-1234-5678-1234-567812345678")
    cases["np_str"] = lambda: np.str_("numpy text")
    cases["np_bytes"] = lambda: np.bytes_(b"numpy bytes")
    cases["np_bool"] = lambda: np.bool_(True)
    # containers
    cases["tuple_empty"] = lambda: ()
    cases["list_empty"] = lambda: []
    cases["dict_empty"] = lambda: {}
    cases["set_empty"] = lambda: set()
    cases["tuple_mixed"] = lambda: (1, "a", None, 2.5)
    cases["list_nested"] = lambda: [1, [2, [3, [4, (5,)]]], {"k": [np.arange(2)]}]
    cases["set_ints"] = lambda: {3, 1, 4, 5, 9, 2, 6}
    cases["frozenset_ints"] = lambda: frozenset({10, 20})
    cases["dict_mixed_keys"] = lambda: {"a": 1, 2: "b", (3, 4): [5], None: {}, 1.5: b"x"}
    cases["ordered_dict"] = lambda: collections.OrderedDict([("z", 1), ("a", 2)])
    cases["range"] = lambda: range(5)
    cases["dict_of_arrays"] = lambda: {
        "x": np.arange(5.0),
        "y": np.ones((2, 2), "u1"),
        "s": "label",
    }
    cases["list_of_records"] = lambda: [
        {"id": i, "v": np.arange(i, dtype="int16")} for i in range(4)
    ]
    cases["deep_nesting"] = lambda: _deep(40)
    # compressible and incompressible sizes around the 1000-byte threshold
    cases["zeros_500"] = lambda: np.zeros(500)
    cases["zeros_124"] = lambda: np.zeros(124)  # 1000 bytes of data: header tips it over
    cases["arange_1000_int32"] = lambda: np.arange(1000, dtype="int32")
    cases["random_uint8_2000"] = lambda: _rng().integers(0, 256, 2000, dtype="uint8")
    cases["random_float64_400"] = lambda: _rng().random(400)
    cases["long_text"] = lambda: "DataJoint " * 300
    cases["many_small_dicts"] = lambda: [{"i": i, "a": np.full(3, i, "float32")} for i in range(60)]
    cases["char_long"] = lambda: chars(b"abcdefgh" * 200)
    cases["unicode_many"] = lambda: np.array([f"item{i}" for i in range(100)])
    return cases


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for i in range(levels):
        value = [value] if i % 2 else {"d": value}
    return value


CASES = _cases()

# values DataJoint packs but cannot unpack (it calls np.array on ragged or stackable elements):
# what dj_flows reads instead
NATURAL: dict[str, Callable[[], Any]] = {
    "matcell_ragged": lambda: _cell((1, 2), np.arange(3.0), np.arange(2.0)),
    "matcell_equal_arrays": lambda: _cell((2, 1), np.arange(3.0), np.arange(3.0) + 1),
    "matstruct_nested": lambda: _struct(
        (1, 1),
        ["inner", "cell"],
        (_struct((1, 1), ["z"], (np.eye(2),)), _cell((1, 2), np.ones(2), np.zeros(3))),
    ),
}

# hand-built blobs that DataJoint's pack never writes (MATLAB's mYm does)
RAW: dict[str, bytes] = {
    # 1x2 MATLAB char 'aé' (é is U+00E9: DataJoint cannot decode it)
    "mym_char_latin1": b"mYm\0A"
    + (2).to_bytes(8, "little")
    + (1).to_bytes(8, "little")
    + (2).to_bytes(8, "little")
    + (4).to_bytes(4, "little")
    + (0).to_bytes(4, "little")
    + "aé".encode("utf-16-le"),
    # 1x1 complex int16 array (MATLAB allows complex integers)
    "mym_complex_int16": b"mYm\0A"
    + (2).to_bytes(8, "little")
    + (1).to_bytes(8, "little")
    + (1).to_bytes(8, "little")
    + (10).to_bytes(4, "little")
    + (1).to_bytes(4, "little")
    + (3).to_bytes(2, "little", signed=True)
    + (-4).to_bytes(2, "little", signed=True),
}
RAW_EXPECTED: dict[str, Callable[[], Any]] = {
    "mym_char_latin1": lambda: np.array(["aé"]),
    "mym_complex_int16": lambda: np.array([[3 - 4j]]),
}
