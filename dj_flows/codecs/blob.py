"""The blob codec: DataJoint's `longblob` / `blob@store` byte format, read and written.

`pack` writes exactly the bytes datajoint 0.14.10 writes (mYm or dj0 protocol chosen as DataJoint
chooses it, same zlib stream), with one documented difference in *when* it compresses:

Compression rule. A blob is compressed (`ZL123\\0` + uint64 length + zlib at the default level)
only if `compress` is true, the blob is longer than 1000 bytes, and compression makes it smaller —
DataJoint's rule. Blobs up to SAMPLE_ABOVE (64 KiB) follow it exactly. For larger blobs, four
windows spread over the blob (each 1/16 of it, at most 32 KiB) are compressed first; if they do not
shrink by at least 10% (SAMPLE_MAX_RATIO), the blob is stored uncompressed without compressing the
rest. So a large,
marginally compressible blob (random floats shrink by ~5%) may be stored uncompressed where
DataJoint would compress it; whenever the blob is compressed, the bytes are DataJoint's.

`unpack` reads everything DataJoint 0.12-2.x and mYm write: both protocols, compressed or not,
and blobs with 32-bit dimensions (with `dims32=True`, or `use_32bit_dims = True` as in DataJoint;
not guessed, because a truncated 64-bit blob can parse as a valid 32-bit one). Arrays it returns
are writable: copied out of an uncompressed blob (once), views of the buffer it decompresses into
otherwise (`copy=False` returns DataJoint's read-only views instead). Truncated, mutated or random
bytes raise BlobError, never another exception, a huge allocation or a hang.

The codec is pure: it imports no database or store code.
"""

from __future__ import annotations

import zlib
from bisect import bisect_right
from typing import Any

import numpy as np

from ..errors import BlobError, DataJointError
from . import blob_format as fmt
from .blob_decode import Decoder
from .blob_encode import Encoder

__all__ = ["pack", "unpack"]

COMPRESS_ABOVE = 1000  # DataJoint never compresses blobs of 1000 bytes or fewer
SAMPLE_ABOVE = 64 << 10  # larger blobs decide from a sample whether compression pays
SAMPLE_WINDOWS = 4
SAMPLE_WINDOW = 32 << 10  # at most; a window is 1/16 of the blob (a quarter of it sampled)
SAMPLE_MAX_RATIO = 0.9  # compress only if the sample shrinks to 90% or less
# DataJoint's runtime switch for blobs written by the 32-bit build of mYm (read side only)
use_32bit_dims = False
MAX_DEFLATE_RATIO = 1032  # zlib cannot expand data more than this (plus a small constant)
_FRAME = len(fmt.ZL123) + 8  # the compression header: prefix and uint64 length
_BATCH = 1 << 16  # small parts are joined into batches this big before deflating
_IN_CHUNK = 1 << 16
_OUT_CHUNK = 1 << 18


def pack(obj: Any, compress: bool = True, *, native: bool | None = None) -> bytes:
    """Serialize `obj` into DataJoint's blob format.

    native: allow the Python-only dj0 protocol; None reads config['enable_python_native_blobs'].
    Raises BlobError for values the format cannot hold.
    """
    if native is None:
        from ..settings import config

        native = bool(config.get("enable_python_native_blobs", True))
    encoder = Encoder(native)
    try:
        encoder.value(obj)
    except DataJointError:
        raise
    except RecursionError:
        raise BlobError(f"Cannot pack a value nested deeper than {fmt.MAX_DEPTH} levels.") from None
    except Exception as exc:
        raise BlobError(f"Cannot pack a {type(obj).__name__}: {type(exc).__name__}: {exc}") from exc
    parts = encoder.parts
    parts.insert(0, fmt.DJ0 if encoder.dj0 else fmt.MYM)
    size = encoder.size + 4
    if not compress or size <= COMPRESS_ABOVE:
        return b"".join(parts)
    if size <= SAMPLE_ABOVE:  # small: DataJoint's decision, exactly
        plain = b"".join(parts)
        packed = zlib.compress(plain)
        return _framed(size, [packed]) if _FRAME + len(packed) < size else plain
    if _sample_pays(parts, size):
        stream = _deflate(parts)
        if _FRAME + sum(map(len, stream)) < size:
            return _framed(size, stream)
    return b"".join(parts)


def _framed(size: int, stream: list[bytes]) -> bytes:
    return b"".join([fmt.ZL123, fmt.U64.pack(size), *stream])


def _deflate(parts: list) -> list[bytes]:
    """zlib.compress(b"".join(parts)), byte for byte, without joining the large parts first."""
    compressor = zlib.compressobj()
    stream: list[bytes] = []
    batch: list = []
    batched = 0
    for part in parts:
        if len(part) < _BATCH:
            batch.append(part)
            batched += len(part)
            if batched < _BATCH:
                continue
        if batch:
            stream.append(compressor.compress(b"".join(batch)))
            batch, batched = [], 0
        if len(part) >= _BATCH:
            stream.append(compressor.compress(part))
    if batch:
        stream.append(compressor.compress(b"".join(batch)))
    stream.append(compressor.flush())
    return stream


def _sample_pays(parts: list, size: int) -> bool:
    """Whether SAMPLE_WINDOWS windows spread over the blob compress to SAMPLE_MAX_RATIO or less."""
    starts = [0]
    for part in parts[:-1]:
        starts.append(starts[-1] + len(part))
    window = min(SAMPLE_WINDOW, size // 16)
    step = (size - window) // (SAMPLE_WINDOWS - 1)
    sample = bytearray()
    for w in range(SAMPLE_WINDOWS):
        lo = w * step
        hi = lo + window
        i = bisect_right(starts, lo) - 1
        while lo < hi and i < len(parts):
            part = memoryview(parts[i])
            chunk = part[lo - starts[i] : hi - starts[i]]
            sample += chunk
            lo += len(chunk)
            i += 1
    return len(zlib.compress(sample)) <= SAMPLE_MAX_RATIO * len(sample)


def unpack(
    blob: bytes | bytearray | memoryview | None,
    squeeze: bool = False,
    *,
    dims32: bool | None = None,
    copy: bool = True,
) -> Any:
    """Deserialize a blob written by DataJoint, mYm or `pack`.

    squeeze: drop singleton dimensions of arrays and turn 0-d results into Python scalars.
    dims32: read 32-bit dimensions and lengths (blobs from the 32-bit mYm build); None follows
    the module switch `use_32bit_dims` (DataJoint's `dj.blob.use_32bit_dims`), False by default.
    copy: True (default) returns arrays that own or share only memory private to the result, so
    they are writable. False lets arrays view `blob` itself, as DataJoint's do: no copy, but
    read-only when `blob` is bytes, and tied to its memory when it is a bytearray.
    None unpacks to None, as in DataJoint. Raises BlobError for anything that is not a valid blob.
    """
    if blob is None:
        return None
    try:
        view = memoryview(blob)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
    except (TypeError, ValueError) as exc:
        raise BlobError(
            f"Cannot unpack a {type(blob).__name__}: not a contiguous byte buffer."
        ) from exc
    wide = use_32bit_dims if dims32 is None else dims32
    try:
        return _unpack(view, squeeze, bool(wide), copy)
    except BlobError:
        raise
    except Exception as exc:  # a check we missed must still surface as BlobError
        raise BlobError(f"Corrupt blob: {type(exc).__name__}: {exc}") from exc


def _unpack(view: memoryview, squeeze: bool, dims32: bool, copy: bool) -> Any:
    owned = None
    if view[: len(fmt.ZL123)] == fmt.ZL123:
        owned = _inflate(view, len(fmt.ZL123), dims32)
        view = memoryview(owned)
    if view[:4] != fmt.MYM and view[:4] != fmt.DJ0:
        raise BlobError("Not a DataJoint blob: it starts with neither mYm nor dj0 nor ZL123.")
    decoder = Decoder(view, 4, squeeze=squeeze, dims32=dims32, owned=owned, copy=copy)
    return decoder.value(len(view) - 4)


def _inflate(view: memoryview, pos: int, dims32: bool) -> np.ndarray:
    """Decompress the zlib stream after `ZL123\\0`+length into a writable buffer of that length.

    The buffer starts 3 bytes into an aligned allocation so that the data of a top-level array
    (at offset 29 + 8*ndim) is 8-byte aligned and can be returned as a view.
    """
    length = fmt.U32 if dims32 else fmt.U64
    if len(view) < pos + length.size:
        raise BlobError("Corrupt blob: truncated compression header.")
    (size,) = length.unpack_from(view, pos)
    stream = view[pos + length.size :]
    if size > MAX_DEFLATE_RATIO * len(stream) + 64:
        raise BlobError(
            f"Corrupt blob: claims {size} bytes uncompressed from {len(stream)} compressed bytes."
        )
    try:
        holder = np.empty(size + 3, np.uint8)
    except MemoryError:
        raise BlobError(f"Cannot unpack: no memory for {size} uncompressed bytes.") from None
    out = holder[3:]
    target = memoryview(out)
    filled = 0
    inflater = zlib.decompressobj()
    try:
        for start in range(0, len(stream), _IN_CHUNK):
            data = stream[start : start + _IN_CHUNK]
            while data and not inflater.eof:
                chunk = inflater.decompress(data, _OUT_CHUNK)
                filled = _store(target, filled, chunk, size)
                data = inflater.unconsumed_tail
            if inflater.eof:
                break
        while not inflater.eof:
            chunk = inflater.decompress(b"", _OUT_CHUNK)
            if not chunk:
                break
            filled = _store(target, filled, chunk, size)
    except zlib.error as exc:
        raise BlobError(f"Corrupt blob: bad zlib stream: {exc}") from None
    if not inflater.eof or filled != size:
        raise BlobError(f"Corrupt blob: decompressed to {filled} bytes, header says {size}.")
    return out


def _store(target: memoryview, filled: int, chunk: bytes, size: int) -> int:
    end = filled + len(chunk)
    if end > size:
        raise BlobError(f"Corrupt blob: decompresses to more than the {size} bytes it claims.")
    target[filled:end] = chunk
    return end
