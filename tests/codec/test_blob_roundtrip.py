"""Property-based round trip: unpack(pack(v)) gives v back (up to DataJoint's normalizations)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from dj_flows.codecs import pack, unpack

from .same import assert_same
from .strategies import expected, values


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_round_trip(value: Any) -> None:
    want = expected(value)
    assert_same(want, unpack(pack(value)))
    assert_same(want, unpack(pack(value, compress=False)))
