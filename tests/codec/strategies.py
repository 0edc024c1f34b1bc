"""Hypothesis strategies for blob values, and what each value unpacks to.

`expected(value)` applies DataJoint's normalizations: a 0-d numeric array comes back as a numpy
scalar, a unicode array as an object array of str, a frozenset as a set; time zones are dropped.
(S1 char arrays are left to the vectors: DataJoint writes them in C order and reads F order.)
"""

from __future__ import annotations

import datetime
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dj_flows.codecs import MatCell, MatStruct

NUMERIC = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
           "float32", "float64", "complex64", "complex128"]  # fmt: skip
DATETIME = [f"M8[{unit}]" for unit in ("Y", "M", "D", "h", "m", "s", "ms", "us", "ns")]

shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)
numeric_arrays = st.sampled_from(NUMERIC).flatmap(lambda d: hnp.arrays(np.dtype(d), shapes))
datetime_arrays = st.tuples(
    st.sampled_from(DATETIME),
    hnp.arrays(np.dtype("i8"), shapes, elements=st.integers(-(10**6), 10**6)),
).map(lambda pair: pair[1].view(pair[0]))
unicode_arrays = st.sampled_from(["<U4", ">U4"]).flatmap(
    lambda d: hnp.arrays(
        np.dtype(d),
        shapes,
        elements=st.text(st.characters(codec="utf-8", min_codepoint=1), max_size=4),
    )
)
numpy_scalars = st.sampled_from(NUMERIC).flatmap(lambda d: hnp.from_dtype(np.dtype(d)))
ordered_arrays = st.one_of(numeric_arrays, datetime_arrays).flatmap(
    lambda a: st.sampled_from([a, np.asfortranarray(a), a.T, a[::-1] if a.ndim else a])
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**600), max_value=2**600),
    st.floats(),
    st.complex_numbers(),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.decimals(),
    st.dates(),
    st.times(),
    st.datetimes(),
    st.uuids(),
    numpy_scalars,
)

hashable = st.one_of(st.integers(), st.text(max_size=8), st.none(), st.booleans())

values = st.recursive(
    st.one_of(scalars, ordered_arrays, unicode_arrays),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(hashable, inner, max_size=4),
        st.sets(st.integers(), max_size=4),
        st.frozensets(st.integers(), max_size=4),
    ),
    max_leaves=12,
)


def expected(value: Any) -> Any:
    """What unpack(pack(value)) returns."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "U":  # read back as an object array, 0-d included
            return value.astype(object)
        return value[()] if value.ndim == 0 else value
    if isinstance(value, frozenset):
        return set(value)
    if isinstance(value, list):
        return [expected(v) for v in value]
    if isinstance(value, tuple):
        return tuple(expected(v) for v in value)
    if isinstance(value, dict):
        return {k: expected(v) for k, v in value.items()}
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=None, fold=0)
    if isinstance(value, datetime.time):
        return value.replace(tzinfo=None, fold=0)
    return value


# ---- structured arrays, MATLAB structs and cells (compared with datajoint, not with the input:
# datajoint reads struct fields as objects, char fields and cells through np.array)

FIELD_TYPES = ["i1", "u2", "f4", "f8", "c16", "?", "U3", "O", "M8[s]"]
field_values = st.one_of(
    st.integers(-5, 5), st.text("abé", max_size=3), st.none(), st.floats(allow_nan=False)
)


@st.composite
def structured_arrays(draw: st.DrawFn) -> np.ndarray:
    """Structured arrays, as plain ndarray, np.recarray or MatStruct."""
    fields = draw(
        st.lists(
            st.tuples(st.sampled_from(["a", "b", "cd", "é"]), st.sampled_from(FIELD_TYPES)),
            min_size=1,
            max_size=3,
            unique_by=lambda field: field[0],
        )
    )
    array = np.zeros(draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3)), fields)
    for name, kind in fields:
        flat = array[name].reshape(-1)
        if kind == "O":
            for i in range(flat.size):
                flat[i] = draw(field_values)
        else:
            numbers = draw(st.lists(st.integers(0, 100), min_size=flat.size, max_size=flat.size))
            flat[:] = np.array(numbers).astype(kind)
        array[name] = flat.reshape(array[name].shape)
    return array.view(draw(st.sampled_from([np.ndarray, np.recarray, MatStruct])))


def _char_row(text: bytes) -> np.ndarray:
    return np.frombuffer(text, dtype="S1").copy().reshape(1, -1)


cell_elements = st.one_of(
    field_values,
    hnp.arrays(
        "f8", hnp.array_shapes(min_dims=1, max_dims=2, max_side=3), elements=st.floats(-5, 5)
    ),
    st.binary(max_size=4).map(lambda b: _char_row(bytes(97 + x % 26 for x in b))),
)


@st.composite
def cells(draw: st.DrawFn) -> MatCell:
    cell = np.empty(draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=3)), object)
    flat = cell.reshape(-1)
    for i in range(flat.size):
        flat[i] = draw(cell_elements)
    return flat.reshape(cell.shape).view(MatCell)
