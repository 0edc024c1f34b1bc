"""dj_flows' blob codec against the vectors written by datajoint 0.14.10: same bytes, same values."""

from __future__ import annotations

import hashlib

import pytest

from dj_flows.codecs import blob as blob_module
from dj_flows.codecs import pack, unpack

from .blob_cases import CASES
from .same import assert_same
from .vectors import blob, expected, manifest

PACKED = [e for e in manifest() if "case" in e and not e.get("dims32")]
ALL = manifest()


def _id(entry: dict) -> str:
    return entry["file"]


def test_vectors_cover_every_case_and_are_intact() -> None:
    assert {e["case"] for e in PACKED} == set(CASES)
    for entry in ALL:
        assert hashlib.sha256(blob(entry)).hexdigest()[:16] == entry["sha256"], entry["file"]
    assert {e["protocol"] for e in ALL} == {"mYm", "dj0", "ZL123"}
    assert sum(1 for e in ALL if e.get("dims32")) >= 10


@pytest.mark.parametrize("entry", PACKED, ids=_id)
def test_pack_is_byte_identical_to_datajoint(entry: dict) -> None:
    modes = (False, True) if entry["compress"] == "either" else (entry["compress"],)
    for compress in modes:
        assert pack(CASES[entry["case"]](), compress=compress) == blob(entry)


@pytest.mark.parametrize("entry", [e for e in ALL if not e.get("dims32")], ids=_id)
def test_unpack_gives_datajoints_value(entry: dict) -> None:
    assert_same(expected(entry), unpack(blob(entry)))


@pytest.mark.parametrize("entry", [e for e in ALL if e.get("dims32")], ids=_id)
def test_32bit_dimensions_read_when_asked(entry: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_same(expected(entry), unpack(blob(entry), dims32=True))
    monkeypatch.setattr(blob_module, "use_32bit_dims", True)  # DataJoint's global switch
    assert_same(expected(entry), unpack(blob(entry)))


@pytest.mark.parametrize("entry", [e for e in ALL if not e.get("dims32")], ids=_id)
def test_unpack_of_memoryview_and_bytearray(entry: dict) -> None:
    data = blob(entry)
    assert_same(expected(entry), unpack(memoryview(data)))
    assert_same(expected(entry), unpack(bytearray(data)))
