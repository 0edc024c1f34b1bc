"""How fetched external objects sit in the cache: verified once, cheap to check again.

The cache (cache.py) keeps bytes by key. An object fetched from a store has already been verified
against its tracking row (size and MD5), so it is written as `{hash}.dj`: a 25-byte header (magic,
payload kind, the object's hash, CRC-32 of the payload) and a payload that is either the object as
stored or, for a zlib-compressed blob that compresses poorly, the blob inflated. A hit then costs a
CRC-32 (several times faster than MD5) and, for such blobs, no inflate, which is the slowest step of
unpacking random-looking data (floats shrink by a few percent and inflate at ~100 MB/s). Blobs that
compress well are kept compressed: they inflate fast and would take much more room inflated.

A hit whose header, hash or CRC does not match is discarded by the cache and the object fetched
again. DataJoint's own entries (`{hash}` holding the stored bytes, as DataJoint 0.14 writes them
in a cache folder both share) are read too, and verified by the full MD5 as before.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

from ..codecs.blob_format import ZL123
from .cache import Blocks, ObjectCache

MAGIC = b"DJFC"
STORED, INFLATED = 0, 1
HEADER = struct.Struct("<4sB16sI")  # magic, payload kind, object hash, CRC-32 of the payload
SUFFIX = ".dj"
INFLATE_ABOVE_RATIO = 0.5  # keep a blob inflated when it compressed to more than half its size
_LENGTH = struct.Struct("<Q")
BLOB_PHASE = 3  # an uncompressed blob puts a top-level array's data 21 + 8 * ndim bytes in


def inflated(stored: bytes) -> bytes | None:
    """The uncompressed blob when `stored` is a ZL123 blob that compresses poorly, else None.

    `stored` has been verified against its tracking row; the declared length still bounds the
    output, and a stream that does not inflate to exactly that length gives None (unpack then
    reports the corrupt blob as it always does)."""
    start = len(ZL123) + _LENGTH.size
    if len(stored) <= start or not stored.startswith(ZL123):
        return None
    (size,) = _LENGTH.unpack_from(stored, len(ZL123))
    if len(stored) <= INFLATE_ABOVE_RATIO * size:
        return None
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(memoryview(stored)[start:], size)
    except zlib.error:
        return None
    if len(data) != size or not inflater.eof:
        return None
    return data


def entry(hash_: bytes, stored: bytes, blob_inflated: bytes | None = None) -> bytes:
    """The cache entry for a verified object (its inflated form when given)."""
    payload = stored if blob_inflated is None else blob_inflated
    kind = STORED if blob_inflated is None else INFLATED
    return HEADER.pack(MAGIC, kind, hash_, zlib.crc32(payload)) + payload


def _payload(hash_: bytes, data: bytes, size: int, check_crc: bool = True) -> memoryview | None:
    if len(data) < HEADER.size:
        return None
    magic, kind, stored_hash, stored_crc = HEADER.unpack_from(data)
    payload = memoryview(data)[HEADER.size :]
    if magic != MAGIC or stored_hash != hash_ or kind not in (STORED, INFLATED):
        return None
    if kind == STORED and len(payload) != size:
        return None
    if not check_crc:
        return payload
    return payload if zlib.crc32(payload) == stored_crc else None


def lookup(
    cache: ObjectCache,
    hash_: bytes,
    size: int,
    verify_stored: Callable[[bytes], bool],
    blocks: Blocks | None = None,
    known_only: bool = False,
) -> memoryview | bytes | None:
    """A verified hit: the object as stored, or (blobs) inflated; None on a miss (or, with
    known_only, for an entry this process has not checked: see ObjectCache.get).

    blocks: buffers to read into, from `reader()`: the payload of an uncompressed blob then starts
    3 bytes past an 8-byte boundary, so its arrays (21 + 8 * ndim bytes in) are aligned views."""
    hex_ = hash_.hex()  # the UUID's hex
    found: list[memoryview] = []

    def check(data: bytes) -> bool:
        payload = _payload(hash_, data, size)
        if payload is not None:
            found.append(payload)
        return payload is not None

    data = cache.get(hex_ + SUFFIX, verify=check, allocate=blocks, known_only=known_only)
    if data is not None:  # a known-good entry skips `check`: its header is still read
        return found[0] if found else _payload(hash_, data, size, check_crc=False)
    allocate = None if blocks is None else blocks.shifted(HEADER.size)
    return cache.get(
        hex_, expected_size=size, verify=verify_stored, allocate=allocate, known_only=known_only
    )


def reader() -> Blocks:
    """Buffers for the hits of one fetch (see `lookup`)."""
    return Blocks(phase=(BLOB_PHASE - HEADER.size) % 16)


def keep(
    cache: ObjectCache, hash_: bytes, stored: bytes, blob_inflated: bytes | None = None
) -> None:
    cache.put(hash_.hex() + SUFFIX, entry(hash_, stored, blob_inflated))
