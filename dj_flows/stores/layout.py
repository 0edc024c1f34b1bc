"""DataJoint 0.14's content hashing and object path layout, as pure functions.

A lab can point dj-flows at a store that DataJoint 0.14 wrote (and the other way round) only if
both compute the same UUID for the same bytes and put it at the same path:

- blob:        uuid = MD5(contents)                       key = {database}/{h0h1}/{h2h3}/{hex}
- attachment:  uuid = MD5(filename + "\\0" + contents)     key = ... /{hex}.{filename}
- filepath:    uuid = MD5(relative path)                  (the object keeps its relative path)

Keys here are relative to the store's root; the root (`location`, or `bucket/location` on S3) is
the Store's business (see `location_prefix`).
"""

from __future__ import annotations

import hashlib
import ntpath
import os
import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

DEFAULT_SUBFOLDING: tuple[int, ...] = (2, 2)
_CHUNK = 1 << 16


def uuid_from_buffer(data: bytes = b"", init_string: str = "") -> uuid.UUID:
    """The MD5 of `init_string` (UTF-8) followed by `data`, as a UUID (DataJoint's content hash)."""
    hashed = hashlib.md5(init_string.encode())
    hashed.update(data)
    return uuid.UUID(bytes=hashed.digest())


def uuid_from_stream(stream: BinaryIO, init_string: str = "") -> uuid.UUID:
    """Like `uuid_from_buffer`, reading the stream in chunks (large attachments)."""
    hashed = hashlib.md5(init_string.encode())
    while chunk := stream.read(_CHUNK):
        hashed.update(chunk)
    return uuid.UUID(bytes=hashed.digest())


def uuid_from_file(path: str | os.PathLike, init_string: str = "") -> uuid.UUID:
    with open(path, "rb") as stream:
        return uuid_from_stream(stream, init_string)


def attachment_init_string(filename: str) -> str:
    """DataJoint hashes an attachment as its file name, a NUL, then its contents."""
    return filename + "\0"


def attachment_uuid(filename: str, data: bytes) -> uuid.UUID:
    """The UUID DataJoint 0.14 gives an attachment named `filename` holding `data`."""
    return uuid_from_buffer(data, attachment_init_string(filename))


def filepath_uuid(relative_path: str) -> uuid.UUID:
    """The UUID of a filepath@store entry: the hash of its relative path, not its contents."""
    return uuid_from_buffer(b"", relative_path)


def subfold(name: str, folds: Sequence[int] = DEFAULT_SUBFOLDING) -> tuple[str, ...]:
    """Leading folder names cut from `name`: subfold('aBCdefg', (2, 3)) -> ('ab', 'cde')."""
    parts = []
    start = 0
    for width in folds:
        parts.append(name[start : start + width].lower())
        start += width
    return tuple(parts)


def object_key(
    database: str,
    uuid_hex: str,
    folds: Sequence[int] = DEFAULT_SUBFOLDING,
    attachment_name: str | None = None,
) -> str:
    """The key of a hash-addressed object under the store root, as DataJoint 0.14 lays it out.

    `{database}/{h[0:2]}/{h[2:4]}/{hex}`, plus `.{attachment_name}` for attachments.
    """
    if not database or "/" in database:
        raise ValueError(f"invalid database name {database!r} for an object key")
    name = uuid_hex + ("." + attachment_name if attachment_name else "")
    if attachment_name is not None and ("/" in attachment_name or "\\" in attachment_name):
        raise ValueError(f"attachment name {attachment_name!r} must not contain a path separator")
    folders = [part for part in subfold(uuid_hex, folds) if part]
    return "/".join([database, *folders, name])


def location_prefix(protocol: str, location: str) -> str:
    """The path prefix a store's `location` gives every key, as DataJoint 0.14 computes it.

    For S3 the location is read as a Windows-or-POSIX path and its anchor (a drive, a root '/',
    or a first part holding ':') is dropped, so keys are relative to the bucket. For files the
    location is normalised as a local path. '' means the root itself; no trailing slash.
    """
    location = str(location or "")
    if not location:
        return ""
    if protocol == "s3":
        drive, rest = ntpath.splitdrive(location)
        parts = [part for part in re.split(r"[\\/]", rest) if part not in ("", ".")]
        anchored = bool(drive) or rest[:1] in ("/", "\\")
        if not anchored and parts and ":" in parts[0]:
            parts = parts[1:]  # DataJoint drops a first part holding ':' as if it were a drive
        return "/".join(parts)
    return Path(location).as_posix()
