"""Hostile bytes: unpack raises BlobError — never another exception, a large allocation or a hang.

The mutation fuzzer is seeded and bounded. For a longer campaign raise the case count (and pick
another seed) through the environment:

    DJ_FLOWS_FUZZ_CASES=2000000 DJ_FLOWS_FUZZ_SEED=7 \\
        .venv/bin/python -m pytest tests/codec/test_blob_hostile.py -k fuzz -p no:cacheprovider
"""

from __future__ import annotations

import os
import random
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

from dj_flows.codecs import pack, unpack
from dj_flows.errors import BlobError, DataJointError

from .vectors import blob, manifest

FUZZ_CASES = int(os.environ.get("DJ_FLOWS_FUZZ_CASES", "20000"))
FUZZ_SEED = int(os.environ.get("DJ_FLOWS_FUZZ_SEED", "20240501"))
HUGE = (1 << 64) - 1


def u64(n: int) -> bytes:
    return struct.pack("<Q", n)


def u32(n: int) -> bytes:
    return struct.pack("<I", n)


def unpack_or_blob_error(data: bytes) -> None:
    try:
        unpack(data)
    except BlobError:
        pass


def corpus() -> list[bytes]:
    blobs = [blob(e) for e in manifest()]
    blobs += [
        pack([{"k": np.arange(5.0), "s": "x" * 30}] * 3, compress=False),
        pack(np.zeros(3000), compress=True),
    ]
    return blobs


MUTATIONS = ("flip", "byte", "insert", "delete", "truncate", "length", "splice", "duplicate")


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        kind = rng.choice(MUTATIONS)
        at = rng.randrange(len(b) + 1)
        if kind == "flip" and b:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif kind == "byte" and b:
            b[rng.randrange(len(b))] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif kind == "insert":
            b[at:at] = rng.randbytes(rng.randrange(1, 9))
        elif kind == "delete":
            del b[at : at + rng.randrange(1, 9)]
        elif kind == "truncate":
            del b[at:]
        elif kind == "length":  # plant a plausible or absurd length/dimension
            value = rng.choice((0, 1, 2, 255, 1 << 31, 1 << 32, 1 << 40, HUGE, rng.getrandbits(64)))
            b[at : at + 8] = struct.pack("<Q", value)[: max(0, min(8, len(b) - at))] or b""
        elif kind == "splice":
            other = rng.choice(pool)
            lo = rng.randrange(len(other) + 1)
            b[at:at] = other[lo : lo + rng.randrange(1, 64)]
        elif kind == "duplicate" and b:
            lo = rng.randrange(len(b))
            b[at:at] = b[lo : lo + rng.randrange(1, 32)]
    return bytes(b)


@pytest.mark.timeout(120)
def test_fuzz_mutations_raise_only_blob_error() -> None:
    rng = random.Random(FUZZ_SEED)
    pool = corpus()
    for case in range(FUZZ_CASES):
        data = mutate(rng, rng.choice(pool), pool)
        try:
            unpack(data)
        except BlobError:
            pass
        except BaseException as exc:  # report the reproducer
            raise AssertionError(f"case {case}: {type(exc).__name__}: {exc}\n{data!r}") from exc


def test_fuzz_random_bytes_raise_only_blob_error() -> None:
    rng = random.Random(FUZZ_SEED + 1)
    for _ in range(3000):
        head = rng.choice((b"", b"mYm\0", b"dj0\0", b"ZL123\0"))
        unpack_or_blob_error(head + rng.randbytes(rng.randrange(0, 64)))


@pytest.mark.parametrize(
    "entry",
    [e for e in manifest() if e["size"] < 1500][::4]
    + [e for e in manifest() if e["protocol"] == "ZL123"],
    ids=lambda e: e["file"],
)
def test_every_truncation_raises_blob_error(entry: dict) -> None:
    data = blob(entry)
    for cut in range(len(data)):
        with pytest.raises(BlobError):
            unpack(data[:cut])


def test_not_a_blob() -> None:
    for data in (b"", b"mYm", b"xyz\0A", b"MYM\0\xff", b"dj0\0", b"ZL123\0"):
        with pytest.raises(BlobError):
            unpack(data)
    with pytest.raises(BlobError):
        unpack(12345)  # type: ignore[arg-type]
    with pytest.raises(BlobError):
        unpack(b"dj0\0\xff\xff")  # trailing byte after the value
    assert issubclass(BlobError, DataJointError)


def nested_lists(levels: int) -> bytes:
    """A list holding a list holding ... None, `levels` deep, with correct length prefixes."""
    inner = [1]  # size of the innermost value (None)
    for _ in range(levels - 1):
        inner.append(17 + inner[-1])
    parts = [b"dj0\0"]
    for level in range(levels - 1, 0, -1):
        parts.append(b"\x02" + u64(1) + u64(inner[level - 1]))
    parts.append(b"\xff")
    return b"".join(parts)


def test_depth_bomb_raises_blob_error() -> None:
    value = unpack(nested_lists(50))
    for _ in range(49):
        value = value[0]
    assert value is None
    with pytest.raises(BlobError, match="nested deeper"):
        unpack(nested_lists(100_000))


def test_packing_too_deep_or_cyclic_raises_blob_error() -> None:
    deep: list = []
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(BlobError, match="nested deeper"):
        pack(deep)
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(BlobError):
        pack(cyclic)


def array_header(shape: tuple[int, ...], type_id: int = 6) -> bytes:
    return b"A" + u64(len(shape)) + b"".join(map(u64, shape)) + u32(type_id) + u32(0)


HUGE_CLAIMS = {
    "array_elements": b"mYm\0" + array_header((1 << 40,)) + b"\0" * 64,
    "array_shape_product": b"mYm\0" + array_header((1 << 32, 1 << 32)) + b"\0" * 64,
    "array_max_dims": b"mYm\0" + array_header((HUGE,)),
    "array_ndim": b"mYm\0A" + u64(1 << 60) + b"\0" * 64,
    "zero_size_giant_dims": b"mYm\0" + array_header((0, 1 << 62, 1 << 62)),
    "object_elements": b"dj0\0" + array_header((1 << 50,), 5) + b"\0" * 64,
    "char_elements": b"mYm\0" + array_header((1, 1 << 45), 4),
    "string_length": b"dj0\0\x05" + u64(1 << 60) + b"abc",
    "bytes_length": b"dj0\0\x06" + u64(HUGE) + b"abc",
    "list_count": b"dj0\0\x02" + u64(1 << 58) + u64(1) + b"\xff",
    "dict_count": b"dj0\0\x04" + u64(1 << 58),
    "item_length": b"dj0\0\x02" + u64(1) + u64(1 << 62) + b"\xff",
    "struct_fields": b"mYm\0S" + u64(1) + u64(1 << 40) + u32(0xFFFFFFFF) + b"a\0",
    "cell_elements": b"mYm\0C" + u64(2) + u64(1 << 31) + u64(1 << 31),
    "recarray_fields": b"dj0\0F" + u32(0xFFFFFFFF) + b"a\0b\0",
    "int_bytes": b"dj0\0\x0a" + struct.pack("<H", 0xFFFF) + b"\1",
    "compressed_size": b"ZL123\0" + u64(1 << 60) + zlib.compress(b"mYm\0\xff"),
    "compressed_size_lie": b"ZL123\0" + u64(4000) + zlib.compress(b"dj0\0\xff"),
    "zip_bomb": b"ZL123\0" + u64(4 << 20) + zlib.compress(b"dj0\0" + bytes(8 << 20)),
}


@pytest.mark.parametrize("name", sorted(HUGE_CLAIMS))
def test_huge_claims_fail_without_allocating(name: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(BlobError):
            unpack(HUGE_CLAIMS[name])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 << 20, f"{name}: peak {peak} bytes"  # the zip bomb may fill its 4 MiB


def test_cell_of_padded_strings_does_not_blow_up() -> None:
    """np.array(cell) would pad 20,000 strings to the longest (2 MB): 160 GB. Stored as objects."""
    from dj_flows.codecs import MatCell

    cell = np.empty((1, 20_001), dtype=object)
    cell[0, 0] = "x" * (2 << 20)
    for i in range(1, 20_001):
        cell[0, i] = ""
    data = pack(cell.view(MatCell))
    tracemalloc.start()
    try:
        value = unpack(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert value.dtype == object and value.shape == (1, 20_001) and value[0, 0] == "x" * (2 << 20)
    assert peak < 200 << 20
