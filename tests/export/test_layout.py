"""Column layouts without a database: inference, widening, Arrow encoding and exact decoding, and
the raw-blob fast path agreeing with the full decoder."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dj_flows.codecs.blob import pack, unpack
from dj_flows.codecs.matlab import MatStruct
from dj_flows.errors import DataJointError
from dj_flows.export_blobs import (
    Stacked,
    TensorBuilder,
    TensorPieces,
    VarTensorBuilder,
    blob_array,
    blob_layout,
    peek,
    predecode,
)
from dj_flows.export_decode import decode
from dj_flows.export_layout import (
    BLOB,
    Layout,
    LayoutError,
    encode,
    infer,
    merge,
)


def same(a, b) -> bool:
    """Equal values, types, dtypes and shapes, recursively."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            type(a) is type(b)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and (
                all(same(x, y) for x, y in zip(a.ravel(), b.ravel()))
                if a.dtype.kind == "O" or a.dtype.names
                else np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
            )
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and (a == b or (a != a and b != b))


def roundtrip(values):
    layout = infer(values)
    array = encode(layout, values, "c")
    assert array.type == layout.arrow_type()
    restored = decode(Layout.from_dict(layout.to_dict()), array, "c")
    return layout, array, restored


def matstruct(**fields):
    record = np.empty(1, [(name, object) for name in fields])
    for name, value in fields.items():
        record[name][0] = value
    return record.reshape((1, 1), order="F").view(MatStruct)


CASES = {
    "float32 tensors": [np.arange(6, dtype="f4").reshape(2, 3) * i for i in range(3)],
    "bool tensors": [np.array([[True, False]]), None, np.array([[False, False]])],
    "uint64 tensors": [np.array([2**64 - 1, 0], "u8")],
    "complex64 tensors": [np.arange(4, dtype="c8").reshape(2, 2) * (1 + 2j), None],
    "variable shapes": [
        np.ones((2, 3), "i2"),
        None,
        np.zeros((5, 1), "i2"),
        np.zeros((0, 4), "i2"),
    ],
    "variable ndim": [np.ones(3), np.ones((2, 2)), np.ones((1, 2, 3))],
    "variable complex": [np.ones(3, "c16") * 1j, np.arange(4, dtype="c16").reshape(2, 2)],
    "numpy scalars": [np.float32(1.5), None, np.float32(-2)],
    "python ints": [1, None, -(2**63)],
    "python floats": [1.5, float("nan")],
    "python complex": [1 + 2j, None, -3j],
    "numpy complex": [np.complex64(1 + 1j)],
    "strings": ["a", None, "ü"],
    "bytes": [b"\x00\x01", None],
    "dicts": [{"a": 1, "b": np.arange(3.0)}, None, {"a": 2, "b": np.arange(3.0) * 2}],
    "nested dicts": [{"x": {"y": "s", "z": np.ones((2, 2), "f4")}}],
    "matlab structs": [
        matstruct(a=np.array([[1.0]]), b="text"),
        matstruct(a=np.array([[2.0]]), b="more"),
    ],
    "ragged dicts (json)": [{"a": 1}, {"b": [1, 2]}],
    "lists (blob)": [[1, "a", np.ones(2)], None],
    "mixed (blob)": [np.ones(2), "text", 3],
    "all null": [None, None],
}


@pytest.mark.parametrize("name", list(CASES))
def test_roundtrip_keeps_dtype_shape_and_value(name):
    values = CASES[name]
    layout, array, restored = roundtrip(values)
    if name == "ragged dicts (json)":
        assert layout.kind == "json" and restored == values  # JSON is exact for JSON-native values
        return
    assert len(restored) == len(values)
    for original, back in zip(values, restored):
        assert same(original, back), (name, original, back)


def test_layout_kinds_and_arrow_types():
    assert roundtrip(CASES["float32 tensors"])[0] == Layout("tensor", dtype="<f4", shape=(2, 3))
    tensor = roundtrip(CASES["float32 tensors"])[1]
    assert isinstance(tensor.type, pa.FixedShapeTensorType) and tensor.type.shape == [2, 3]
    assert np.array_equal(
        tensor.to_numpy_ndarray()[2], CASES["float32 tensors"][2]
    )  # plain pyarrow reads it
    assert roundtrip(CASES["variable shapes"])[0] == Layout("var_tensor", dtype="<i2", ndim=2)
    assert roundtrip(CASES["variable ndim"])[0].ndim is None
    complex_type = roundtrip(CASES["complex64 tensors"])[0].arrow_type()
    assert (
        complex_type.names == ["real", "imag"]
        and complex_type.field("real").type.value_type == pa.float32()
    )
    assert roundtrip(CASES["python complex"])[1].type == pa.struct(
        [("real", pa.float64()), ("imag", pa.float64())]
    )
    assert roundtrip(CASES["lists (blob)"])[0] == BLOB
    assert roundtrip(CASES["all null"])[1].type == pa.null()
    struct = roundtrip(CASES["matlab structs"])[0]
    assert struct.matlab and [n for n, _ in struct.fields] == ["a", "b"]


def test_variable_tensor_storage_is_data_plus_shape():
    array = roundtrip(CASES["variable shapes"])[1]
    assert array.type.names == ["data", "shape"]
    assert array.field("shape").to_pylist() == [[2, 3], [0, 0], [5, 1], [0, 4]]
    assert array.is_null().to_pylist() == [False, True, False, False]
    assert array.field("data")[0].as_py() == [1] * 6


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (
            Layout("tensor", "<f4", (2, 2)),
            Layout("tensor", "<f4", (3, 2)),
            Layout("var_tensor", "<f4", ndim=2),
        ),
        (
            Layout("tensor", "<f4", (2,)),
            Layout("tensor", "<f4", (3, 2)),
            Layout("var_tensor", "<f4"),
        ),
        (Layout("tensor", "<f4", (2,)), Layout("tensor", "<f8", (2,)), BLOB),
        (Layout("scalar", "<i8", python=True), Layout("scalar", "<i8"), Layout("scalar", "<i8")),
        (Layout("scalar", "<i8"), Layout("scalar", "<f8"), BLOB),
        (Layout("null"), Layout("string"), Layout("string")),
        (Layout("string"), Layout("bytes"), BLOB),
        (
            Layout("struct", fields=(("a", Layout("null")),)),
            Layout("struct", fields=(("a", Layout("string")),)),
            Layout("struct", fields=(("a", Layout("string")),)),
        ),
        (
            Layout("struct", fields=(("a", Layout("string")),)),
            Layout("struct", fields=(("b", Layout("string")),)),
            Layout("json"),
        ),
        (Layout("arrow", "int64"), Layout("arrow", "double"), Layout("arrow", "double")),
    ],
)
def test_merge_widens(a, b, expected):
    assert merge(a, b) == expected
    assert merge(b, a).kind == expected.kind


def test_values_must_fit_exactly():
    with pytest.raises(LayoutError):
        encode(Layout("tensor", "<f4", (2, 2)), [np.ones((2, 2), "f8")], "c")
    with pytest.raises(LayoutError):
        encode(Layout("var_tensor", "<f4", ndim=2), [np.ones(3, "f4")], "c")
    with pytest.raises(LayoutError):
        encode(Layout("scalar", "<i8", python=True), [np.int64(3)], "c")


def test_decode_checks_shape_and_dtype():
    layout, array, _ = roundtrip(CASES["variable shapes"])
    shapes = pa.FixedSizeListArray.from_arrays(pa.array([2, 2, 0, 0, 5, 1, 0, 4], pa.int32()), 2)
    bad = pa.StructArray.from_arrays(
        [array.field("data"), shapes], names=["data", "shape"], mask=array.is_null()
    )
    with pytest.raises(DataJointError, match="shape"):
        decode(layout, bad, "c")
    with pytest.raises(DataJointError, match="layout says"):
        decode(Layout("tensor", "<f8", (2, 3)), roundtrip(CASES["float32 tensors"])[1], "c")


def test_sliced_arrays_decode_their_own_rows():
    values = CASES["float32 tensors"] + CASES["float32 tensors"]
    layout, array, _ = roundtrip(values)
    assert all(same(a, b) for a, b in zip(decode(layout, array.slice(2, 3)), values[2:5]))
    layout, array, _ = roundtrip(CASES["variable shapes"])
    assert all(
        same(a, b) for a, b in zip(decode(layout, array.slice(1, 3)), CASES["variable shapes"][1:4])
    )


# -- the raw-blob fast path ---------------------------------------------------------------------------
def test_peek_reads_plain_numeric_blobs_only():
    dtype, shape, offset = peek(pack(np.ones((3, 4), "f4"), compress=False))
    assert dtype == np.dtype("<f4") and shape == (3, 4)
    assert peek(pack(np.ones((300, 4), "f4"))) is None  # compressed: the full decoder handles it
    assert peek(pack(np.float64(3))) is None  # 0-d
    assert peek(pack({"a": 1})) is None
    assert peek(pack(np.array(["a", "b"], object))) is None
    assert peek(pack(np.ones(3))[:-1]) is None  # truncated


numeric = st.sampled_from(["<f4", "<f8", "<i2", "|u1", "|b1", "<i8", "<c8", "<c16"])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            numeric.flatmap(
                lambda d: hnp.arrays(
                    d, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4)
                )
            ),
        ),
        min_size=1,
        max_size=6,
    ),
    st.booleans(),
)
def test_fast_path_matches_full_decoder(arrays, compress):
    raws = [
        None if a is None else pack(np.asfortranarray(a) if a.ndim > 1 else a, compress=compress)
        for a in arrays
    ]
    expected = [None if r is None else unpack(r) for r in raws]
    values = list(raws)
    predecode(values, "c")
    assert all(same(a, b) for a, b in zip(expected, values))  # C order here, values the same
    assert all(v is None or v.flags.c_contiguous for v in values if isinstance(v, np.ndarray))
    layout, state = blob_layout(values, None)
    restored = decode(layout, blob_array(layout, values, state, "c"), "c")
    assert all(same(a, b) for a, b in zip(expected, restored))


def test_predecode_releases_raw_values_and_builders_copy_them_in_c_order():
    a = np.arange(12, dtype="f8").reshape(3, 4)
    values = [pack(a, compress=False), None, pack(a * 2, compress=False)]
    predecode(values, "c")
    assert not any(isinstance(v, bytes) for v in values)
    layout, _ = blob_layout(values, None)
    builder = TensorBuilder(layout, 4)
    builder.add(values)
    assert values == [None, None, None]
    array = builder.finish()
    assert np.array_equal(array.storage.values.to_numpy().reshape(3, 3, 4)[2], a * 2)
    assert array.is_null().to_pylist() == [False, True, False]
    ragged = [np.ones((2, 3), "i2"), None, np.zeros((1, 1), "i2")]
    builder = VarTensorBuilder(Layout("var_tensor", "<i2", ndim=2), 2)
    builder.add(list(ragged[:2]))
    builder.add(list(ragged[2:]))  # grows past the reservation made from the first chunk
    assert all(
        same(x, y)
        for x, y in zip(ragged, decode(Layout("var_tensor", "<i2", ndim=2), builder.finish()))
    )


def test_a_page_of_equal_arrays_is_one_buffer_a_row_group_takes_without_a_copy():
    arrays = [np.arange(12, dtype="f4").reshape(3, 4) * k for k in range(3)]
    values = [pack(a, compress=False) for a in arrays]
    data = predecode(values, "c")
    assert data is not None and data.shape == (3, 3, 4) and data.flags.c_contiguous
    assert all(np.shares_memory(v, data) and same(v, a) for v, a in zip(values, arrays))
    layout, _ = blob_layout(values, None)
    page = Stacked(values, data)
    pieces = TensorPieces(layout)
    pieces.add(page)
    assert list(page) == [None] * 3  # the views are released; the chunk holds the buffer
    (chunk,) = pieces.chunks()
    assert chunk.storage.values.buffers()[1].address == data.ctypes.data
    assert all(same(x, y) for x, y in zip(arrays, decode(layout, chunk)))
    builder = TensorBuilder(layout, 4)  # a record batch copies the page in one step
    builder.add(Stacked([v for v in data], data))
    assert all(same(x, y) for x, y in zip(arrays, decode(layout, builder.finish())))


def test_a_page_with_a_null_or_another_shape_is_decoded_row_by_row():
    a = np.ones((2, 2), "f8")
    for raws in ([pack(a, compress=False), None], [pack(a), pack(np.ones((3, 2)))]):
        values = list(raws)
        assert predecode(values, "c") is None
        layout, _ = blob_layout(values, None)
        if layout.kind != "tensor":
            continue
        pieces = TensorPieces(layout)
        pieces.add(values)  # copied into a page-sized buffer, nulls masked
        (chunk,) = pieces.chunks()
        assert chunk.is_null().to_pylist() == [False, True]
        assert same(decode(layout, chunk)[0], a)


def test_corrupt_blob_names_its_column():
    values = [pack(np.ones(3))[:-2] + b"xx" + b"\x00" * 40]
    with pytest.raises(DataJointError, match="column 'img'"):
        predecode(values, "img")


def test_blob_hint_keeps_the_stored_bytes():
    raw = pack([1, "two"])
    values = [raw]
    layout, state = blob_layout(values, BLOB)
    array = blob_array(layout, values, state, "c")
    assert array.to_pylist() == [raw]
