"""Live cross-check with datajoint 0.14.10 (skipped when it is not installed): same bytes for
generated values, and each library reads the other's blobs, including the large-blob paths
(sampled compression decision, slab transposition) that the small vectors do not reach."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dj_flows.codecs import pack, unpack
from dj_flows.codecs.blob import SAMPLE_ABOVE
from dj_flows.errors import BlobError

from .dj_types import from_datajoint, to_datajoint
from .same import assert_same, diff
from .strategies import cells, expected, structured_arrays, values

djblob = pytest.importorskip("datajoint.blob")
pytestmark = pytest.mark.interop


def _complex_infinity(value: Any) -> bool:
    """DataJoint reads complex arrays as real + 1j*imag, which turns 0+inf*j into nan+inf*j;
    dj_flows keeps the stored parts, so such values are compared with the original only."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.dtype.kind == "c" and bool(np.isinf(value).any())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(map(_complex_infinity, value))
    if isinstance(value, dict):
        return any(map(_complex_infinity, value.values()))
    return False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_same_bytes_as_datajoint_and_each_reads_the_other(value: Any) -> None:
    for compress in (False, True):
        ours = pack(value, compress=compress)
        assert ours == djblob.pack(value, compress=compress)
        assert_same(expected(value), unpack(ours))
        if not _complex_infinity(value):
            assert_same(djblob.unpack(ours), unpack(ours))


def test_complex_infinity_kept_where_datajoint_makes_nan() -> None:
    value = np.array([complex(0, np.inf), complex(np.inf, 1)])
    assert_same(value, unpack(pack(value)))
    with np.errstate(invalid="ignore"):
        assert np.isnan(djblob.unpack(pack(value))[0].real)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(structured_arrays(), cells()), st.booleans())
def test_structs_cells_and_records_match_datajoint(value: Any, squeeze: bool) -> None:
    """Same bytes; same values wherever datajoint can read its own blob (it cannot read ragged
    cells, or struct fields squeezed to None), and there dj_flows still reads it."""
    dj = pytest.importorskip("datajoint")
    for compress in (False, True):
        ours = pack(value, compress=compress)
        assert ours == djblob.pack(to_datajoint(value, dj), compress=compress)
        result = unpack(ours, squeeze=squeeze)
        try:
            theirs = djblob.unpack(ours, squeeze=squeeze)
        except Exception:
            continue
        assert diff(from_datajoint(theirs, dj), result) is None


def _large_values() -> dict[str, Any]:
    rng = np.random.default_rng(3)
    return {
        "random_floats_kept_plain": rng.random(60_000),
        "zeros_dict_compressed": {"z": np.zeros(100_000), "i": np.arange(1000)},
        "image_c_order": rng.integers(0, 256, (300, 400, 3), dtype=np.uint8),
        "image_compressible": np.tile(np.arange(256, dtype=np.uint8), (400, 12)).reshape(
            400, 1024, 3
        ),
        "complex_c_order": (rng.random((400, 300)) + 1j).astype("complex64"),
        "strided": rng.integers(0, 1000, (900, 700))[::3, ::2],
        "many_records": [{"k": i, "v": np.full(4, i, "int16"), "s": f"r{i}"} for i in range(2500)],
    }


@pytest.mark.parametrize("name", sorted(_large_values()))
def test_large_blobs_read_by_datajoint(name: str) -> None:
    value = _large_values()[name]
    if name == "many_records":
        assert len(pack(value, compress=False)) > SAMPLE_ABOVE
    assert pack(value, compress=False) == djblob.pack(value, compress=False)
    ours = pack(value)
    theirs = djblob.pack(value)
    if name == "random_floats_kept_plain":  # the documented difference: kept uncompressed
        assert ours[:4] == b"mYm\0" and theirs[:6] == b"ZL123\0"
    else:
        assert ours == theirs
    assert_same(djblob.unpack(ours), unpack(ours))
    assert_same(djblob.unpack(theirs), unpack(theirs))


@pytest.mark.parametrize(
    "value",
    [np.float16(1), np.array([1], "S2"), np.array([1], "m8[s]"), np.zeros(2, dtype=[]), object()],
    ids=["float16", "S2", "timedelta", "no_fields", "object"],
)
def test_refuses_what_datajoint_refuses(value: Any) -> None:
    with pytest.raises(Exception):  # noqa: B017 - datajoint raises DataJointError or others
        djblob.pack(value)
    with pytest.raises(BlobError):
        pack(value)
