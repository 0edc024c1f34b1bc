"""File attachments: DataJoint's byte layout and its download rule, with hostile names made safe.

An internal attachment is stored as `filename + b"\\0" + contents`; its checksum is the MD5-derived
UUID of those bytes, which equals the checksum of a file with the same name and contents. On fetch,
an existing file with the same content is reused and a different one is never overwritten: a numbered
alias (`name_0000.ext`, `name_0001.ext`, ...) is chosen instead, as DataJoint 0.14 does.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath

from ..errors import DataValueError

UNSAFE_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
CHUNK = 1 << 20


def safe_name(name: str) -> str:
    """The last path component of `name`, with control characters, drive letters and dot-only names
    replaced, so that it can only ever name a file directly inside the download folder."""
    name = UNSAFE_CHARACTERS.sub("_", name)
    name = PureWindowsPath(PurePosixPath(name).name).name
    name = name.replace(":", "_").strip()
    if name in ("", ".", "..") or set(name) == {"."}:
        return "attachment"
    return name[:255]


def content_uuid(data: bytes | memoryview, init_string: str = "") -> uuid.UUID:
    """DataJoint's MD5-derived UUID of bytes (optionally prefixed by `init_string`)."""
    digest = hashlib.md5(init_string.encode())
    digest.update(data)
    return uuid.UUID(bytes=digest.digest())


def file_uuid(path: str | os.PathLike, init_string: str = "") -> uuid.UUID:
    digest = hashlib.md5(init_string.encode())
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return uuid.UUID(bytes=digest.digest())


def read_attachment(path: str | os.PathLike, attribute: str) -> tuple[str, bytes]:
    """The attachment name and contents of a file to insert."""
    file = Path(path)
    if not file.is_file():
        raise DataValueError(f"attribute {attribute!r}: attachment {str(path)!r} is not a readable file")
    name = file.name
    if "\x00" in name:
        raise DataValueError(f"attribute {attribute!r}: attachment name contains a NUL character")
    return name, file.read_bytes()


def encode_internal(name: str, contents: bytes) -> bytes:
    return name.encode() + b"\0" + contents


def decode_internal(data: bytes) -> tuple[str, memoryview]:
    data = bytes(data)
    name, separator, _ = data.partition(b"\0")
    if not separator:
        raise DataValueError("stored attachment is malformed: no name separator")
    return name.decode(errors="replace"), memoryview(data)[len(name) + 1 :]


def write_atomic(path: Path, contents: bytes | memoryview) -> None:
    """Write a file so that no reader ever sees it half-written."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(contents)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def place_attachment(
    name: str,
    checksum: uuid.UUID,
    download_path: str | os.PathLike,
    contents: Callable[[], bytes | memoryview],
) -> str:
    """Return a path in `download_path` holding the attachment, reusing a file with the same
    content and never overwriting a different one. `contents` is called only if a write is needed."""
    stored_name = name
    name = safe_name(name)
    folder = Path(download_path)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    init = stored_name + "\0"
    if target.is_file():
        if file_uuid(target, init) == checksum:
            return str(target)
        for number in itertools.count():
            candidate = folder / f"{target.stem}_{number:04x}{target.suffix}"
            if not candidate.is_file():
                target = candidate
                break
            if file_uuid(candidate, init) == checksum:
                return str(candidate)
    write_atomic(target, contents())
    return str(target)
