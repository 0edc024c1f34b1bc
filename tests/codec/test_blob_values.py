"""Blob codec behaviour beyond the vectors: protocol choice, refusals, compression rule, writable
results, squeeze, 32-bit dimensions, the codec registry."""

from __future__ import annotations

import datetime
import struct
import zlib

import numpy as np
import pytest

import dj_flows
from dj_flows.codecs import BlobCodec, MatCell, MatStruct, get_codec, pack, unpack
from dj_flows.codecs import blob as blob_module
from dj_flows.errors import BlobError

from .blob_cases import chars
from .same import assert_same


def u64(n: int) -> bytes:
    return struct.pack("<Q", n)


def cell(*elements: object) -> MatCell:
    array = np.empty(len(elements), dtype=object)
    for i, element in enumerate(elements):
        array[i] = element
    return array.view(MatCell)


# ---- protocol and python-native blobs


@pytest.mark.parametrize(
    "value",
    [np.arange(3.0), np.zeros((2, 0)), np.array([1 + 2j]), chars(b"ab"),
     np.array(b"x", dtype="S1"), cell(np.ones(2), chars(b"ab"))],
    ids=["float", "empty", "complex", "char", "char_0d", "cell"],
)  # fmt: skip
def test_matlab_compatible_values_use_mym_even_when_native_blobs_are_off(value: object) -> None:
    with dj_flows.config.override(enable_python_native_blobs=False):
        assert pack(value)[:4] == b"mYm\0"
    assert pack(value, native=False) == pack(value, native=True)


@pytest.mark.parametrize(
    "value",
    [{"a": 1}, [1], 1.5, "text", None, np.float64(2.0), np.array(3.0), np.array(["u"]),
     np.array([1], dtype="M8[s]"), np.zeros(2, dtype=[("a", "f8")]),
     cell(np.float64(1.0))],
    ids=["dict", "list", "float", "str", "none", "np_scalar", "0d", "unicode", "datetime64",
         "structured", "cell_of_scalar_array"],
)  # fmt: skip
def test_python_native_values_need_dj0(value: object) -> None:
    with dj_flows.config.override(enable_python_native_blobs=False):
        with pytest.raises(BlobError, match="enable_python_native_blobs"):
            pack(value)
    assert pack(value, native=True)[:4] == b"dj0\0"


@pytest.mark.parametrize(
    "value",
    [object(), np.float16(1), np.array([1], "S2"), np.array([1], "m8[s]"), np.longdouble(1),
     np.array([1], "clongdouble"), np.void(b"ab"), np.zeros(2, dtype=[]), 2 ** (8 * 65535),
     "\ud800", np.zeros(2).view(MatStruct), np.array(["NaT"], "M8")],
    ids=["object", "float16", "S2", "timedelta", "longdouble", "clongdouble", "void",
         "no_fields", "int_too_long", "surrogate", "struct_without_fields", "generic_datetime"],
)  # fmt: skip
def test_values_the_format_cannot_hold_raise_blob_error(value: object) -> None:
    with pytest.raises(BlobError):
        pack(value)


def test_big_endian_arrays_pack_as_their_little_endian_values() -> None:
    array = np.arange(12.0).reshape(3, 4)
    assert pack(array.astype(">f8")) == pack(array)
    assert pack(np.array([1 + 2j], ">c16")) == pack(np.array([1 + 2j]))


def test_large_c_order_arrays_are_written_in_fortran_order() -> None:
    image = np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    strided = np.random.default_rng(2).random((700, 500))[::2, 1::3]
    for array in (image, strided, image.transpose(1, 0, 2)):
        data = pack(array, compress=False)
        assert data.endswith(array.tobytes(order="F"))
        assert_same(array, unpack(data))


# ---- compression rule


def test_small_blobs_compress_exactly_as_datajoint() -> None:
    plain = pack(np.arange(1000.0), compress=False)
    assert pack(np.arange(1000.0)) == b"ZL123\0" + u64(len(plain)) + zlib.compress(plain)
    tiny = np.zeros(120)  # 989 bytes: never compressed
    assert pack(tiny) == pack(tiny, compress=False)
    noise = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)
    assert pack(noise) == pack(noise, compress=False)  # zlib would make it longer


def test_large_compressible_blobs_compress_exactly_as_datajoint() -> None:
    value = {"zeros": np.zeros(200_000), "ramp": np.arange(50_000, dtype="int32"), "n": 1}
    plain = pack(value, compress=False)
    assert len(plain) > blob_module.SAMPLE_ABOVE
    assert pack(value) == b"ZL123\0" + u64(len(plain)) + zlib.compress(plain)


def test_large_marginally_compressible_blobs_stay_uncompressed() -> None:
    """The one allowed difference from DataJoint: zlib shrinks random floats by ~5%, and
    DataJoint would store them compressed; the sample says it does not pay."""
    value = np.random.default_rng(0).random(100_000)
    plain = pack(value, compress=False)
    assert len(zlib.compress(plain)) + 14 < len(plain)  # DataJoint would compress it
    assert len(zlib.compress(plain)) > blob_module.SAMPLE_MAX_RATIO * len(plain)
    assert pack(value) == plain


# ---- unpack results


def _arrays(value: object) -> list[np.ndarray]:
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, dict):
        return [a for v in value.values() for a in _arrays(v)]
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in _arrays(v)]
    return []


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    "value",
    [np.arange(10.0), np.zeros((300, 400)), np.arange(100_000, dtype="int16"),
     np.array([[1 + 1j, 2]]), chars(b"abc"), np.arange(5).astype("M8[D]"),
     {"x": np.zeros(5000), "y": [np.ones(3, "u1")]},
     np.zeros(3000, dtype=[("a", "f8"), ("b", "i2")])],
    ids=["float", "big2d", "int16", "complex", "char", "datetime", "nested", "recarray"],
)  # fmt: skip
def test_returned_arrays_are_writable(value: object, compress: bool) -> None:
    for data in (pack(value, compress=compress), memoryview(pack(value, compress=compress))):
        result = unpack(data)
        arrays = _arrays(result)
        assert arrays
        for array in arrays:
            assert array.flags.writeable
            array[...] = array  # really writable


def test_arrays_of_a_decompressed_blob_are_aligned_views() -> None:
    result = unpack(pack(np.zeros((500, 400))))
    assert result.flags.aligned and result.flags.writeable and not result.flags.owndata


def test_copy_false_gives_views_of_the_blob() -> None:
    data = pack(np.arange(50_000.0), compress=False)
    view = unpack(data, copy=False)
    assert not view.flags.writeable and not view.flags.owndata
    assert_same(np.arange(50_000.0), view)
    owned = bytearray(data)
    assert unpack(owned, copy=False).flags.writeable


def test_squeeze() -> None:
    assert unpack(pack(np.array([[2.5]])), squeeze=True) == 2.5
    assert type(unpack(pack(np.array([[2.5]])), squeeze=True)) is float
    assert unpack(pack(chars(b"text")), squeeze=True) == "text"
    assert unpack(pack(np.arange(3.0).reshape(1, 3)), squeeze=True).shape == (3,)
    squeezed = unpack(pack(cell(chars(b"ab"), chars(b"cd")).reshape(1, 2)), squeeze=True)
    assert isinstance(squeezed, MatCell) and squeezed.tolist() == ["ab", "cd"]


def test_none_and_not_bytes() -> None:
    assert unpack(None) is None
    with pytest.raises(BlobError):
        unpack("mYm")  # type: ignore[arg-type]


def test_values_datajoint_cannot_read_come_back_naturally() -> None:
    record = np.array([(1, [2.5, 3.0])], dtype=[("a", "i4"), ("v", "f8", (2,))])
    result = unpack(pack(record))
    assert result.dtype == np.dtype((np.record, record.dtype)) and result.shape == (1,)
    assert result.v.tolist() == [[2.5, 3.0]]


def test_compressed_blob_with_32bit_dimensions() -> None:
    body = b"mYm\0A" + struct.pack("<III", 2, 1, 300) + struct.pack("<II", 6, 0)
    body += np.zeros(300).tobytes()
    data = b"ZL123\0" + struct.pack("<I", len(body)) + zlib.compress(body)
    assert_same(np.zeros((1, 300)), unpack(data, dims32=True))
    with pytest.raises(BlobError):
        unpack(data)


def test_dates_and_times() -> None:
    for value in (datetime.date(1, 1, 1), datetime.datetime(9999, 12, 31, 23, 59, 59, 999999)):
        assert unpack(pack(value)) == value
    aware = datetime.datetime(2020, 1, 1, 12, tzinfo=datetime.timezone.utc)
    assert unpack(pack(aware)) == aware.replace(tzinfo=None)  # DataJoint drops the zone


# ---- registry


def test_registry_round_trip() -> None:
    codec = get_codec("djblob")
    assert codec == BlobCodec()
    assert get_codec(codec.to_dict()) == codec
    custom = BlobCodec(compress=False, native=True, squeeze=True)
    assert get_codec(custom.to_dict()) == custom
    assert custom.decode(custom.encode(np.array([[7.0]]))) == 7.0
    with pytest.raises(BlobError, match="Unknown codec"):
        get_codec("nope")
