"""File attachments: DataJoint's byte layout and its download rule, with hostile names made safe.

An internal attachment is stored as `filename + b"\\0" + contents`; its checksum is the MD5-derived
UUID of those bytes, which equals the checksum of a file with the same name and contents. On fetch,
an existing file with the same content is reused and a different one is never overwritten: a numbered
alias (`name_0000.ext`, `name_0001.ext`, ...) is chosen instead, as DataJoint 0.14 does.

Stored names are data, not paths: whatever a row holds (`/`, `..`, quotes, NUL, a drive letter, a
name too long for the file system), `safe_name` reduces it to one file name directly inside the
download folder. The checksum still uses the stored name, so content checks match DataJoint's.
A new file is published with a hard link from a temporary file, which fails rather than replace a
file another process created meanwhile; readers never see a half-written file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import re
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

from ..errors import DataValueError

UNSAFE_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
CHUNK = 1 << 20
MAX_NAME_BYTES = 200  # room for an alias suffix and the temporary-file prefix within 255 bytes
NOT_A_FILE_NAME = "attachment"


def safe_name(name: str) -> str:
    """The last path component of `name`, with control characters, drive letters and dot-only names
    replaced and its UTF-8 length bounded, so that it can only ever name a file directly inside the
    download folder."""
    name = UNSAFE_CHARACTERS.sub("_", str(name))
    name = PureWindowsPath(PurePosixPath(name).name).name
    name = name.replace(":", "_").strip()
    name = name.encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> '?'
    if name in ("", ".", "..") or set(name) == {"."}:
        return NOT_A_FILE_NAME
    if len(name.encode()) > MAX_NAME_BYTES:
        stem, suffix = os.path.splitext(name)
        if len(suffix.encode()) > 32:
            stem, suffix = name, ""
        budget = MAX_NAME_BYTES - len(suffix.encode())
        stem = stem.encode()[:budget].decode("utf-8", "ignore")
        name = stem + suffix
    return name


def content_uuid(data: bytes | memoryview, init_string: str = "") -> uuid.UUID:
    """DataJoint's MD5-derived UUID of bytes (optionally prefixed by `init_string`)."""
    digest = hashlib.md5(init_string.encode(errors="surrogateescape"))
    digest.update(data)
    return uuid.UUID(bytes=digest.digest())


# (real path, init string) -> (file identity when hashed or written, its checksum). A file whose
# size, inode, mtime and ctime (ns) are unchanged has not been written since: its checksum is known
# without reading it again. ctime cannot be set back by a writer, so any change is seen.
_known_checksums: dict[tuple[str, str], tuple[tuple[int, ...], uuid.UUID]] = {}
_KNOWN_LIMIT = 100_000


def _status_identity(status: os.stat_result) -> tuple[int, ...]:
    return (status.st_size, status.st_ino, status.st_dev, status.st_mtime_ns, status.st_ctime_ns)


def _identity(path: str | os.PathLike) -> tuple[str, tuple[int, ...]]:
    return os.path.realpath(path), _status_identity(os.stat(path))


def _remember(real: str, init_string: str, identity: tuple[int, ...], checksum: uuid.UUID) -> None:
    if len(_known_checksums) >= _KNOWN_LIMIT:
        _known_checksums.clear()
    _known_checksums[(real, init_string)] = (identity, checksum)


def remember_checksum(path: str | os.PathLike, init_string: str, checksum: uuid.UUID) -> None:
    """Record the checksum of a file just written or verified (see `file_uuid`)."""
    real, identity = _identity(path)
    _remember(real, init_string, identity, checksum)


def file_uuid(path: str | os.PathLike, init_string: str = "") -> uuid.UUID:
    """DataJoint's checksum of a file (MD5 of `init_string` + contents); a file unchanged since this
    process last hashed or wrote it is not read again."""
    real, identity = _identity(path)
    return _checksum(path, real, identity, init_string)


def _checksum(
    path: str | os.PathLike, real: str, identity: tuple[int, ...], init_string: str
) -> uuid.UUID:
    """file_uuid for a file whose real path and identity the caller has just looked up."""
    known = _known_checksums.get((real, init_string))
    if known is not None and known[0] == identity:
        return known[1]
    digest = hashlib.md5(init_string.encode(errors="surrogateescape"))
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    checksum = uuid.UUID(bytes=digest.digest())
    if _status_identity(os.stat(path)) == identity:  # not written while we read it
        _remember(real, init_string, identity, checksum)
    return checksum


def read_attachment(path: str | os.PathLike, attribute: str) -> tuple[str, bytes]:
    """The attachment name and contents of a file to insert."""
    if not isinstance(path, str | os.PathLike):
        raise DataValueError(
            f"attribute {attribute!r}: an attachment is given as a file path, got {type(path).__name__}"
        )
    file = Path(path)
    name = file.name
    if "\x00" in name:
        raise DataValueError(f"attribute {attribute!r}: attachment name contains a NUL character")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise DataValueError(
            f"attribute {attribute!r}: attachment name {name!r} is not valid UTF-8"
        ) from None
    try:
        return name, file.read_bytes()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise DataValueError(
            f"attribute {attribute!r}: attachment {os.fspath(path)!r} is not a readable file ({reason})"
        ) from None


def encode_internal(name: str, contents: bytes) -> bytes:
    return name.encode() + b"\0" + contents


def decode_internal(data: bytes) -> tuple[str, memoryview]:
    data = bytes(data)
    name, separator, _ = data.partition(b"\0")
    if not separator:
        raise DataValueError("stored attachment is malformed: no name separator")
    return name.decode(errors="replace"), memoryview(data)[len(name) + 1 :]


def write_atomic(path: Path, contents: bytes | memoryview) -> None:
    """Write a file so that no reader ever sees it half-written (replacing any file there)."""
    temporary = _write_temporary(Path(path), contents)
    try:
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _write_temporary(path: Path, contents: bytes | memoryview) -> str:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".dj-", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(contents)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return temporary


def _publish(temporary: str, target: Path) -> bool:
    """Give the complete temporary file its final name unless that name is taken (False)."""
    try:
        os.link(temporary, target)
    except FileExistsError:
        return False
    except OSError as error:  # no hard links here (some network/FAT mounts): exclusive create
        if error.errno not in (
            errno.EPERM,
            errno.ENOTSUP,
            errno.EOPNOTSUPP,
            errno.EXDEV,
            errno.EMLINK,
        ):
            raise
        try:
            handle = os.open(
                target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666
            )
        except FileExistsError:
            return False
        with os.fdopen(handle, "wb") as stream, open(temporary, "rb") as source:
            while chunk := source.read(CHUNK):
                stream.write(chunk)
    return True


def _candidates(name: str) -> Iterator[str]:
    """The plain name, then DataJoint's aliases name_0000.ext, name_0001.ext, ..."""
    yield name
    stem, suffix = Path(name).stem, Path(name).suffix
    for number in itertools.count():
        yield f"{stem}_{number:04x}{suffix}"


class DownloadFolder:
    """A download folder resolved once: its path as `Path` spells it and its real path (the key
    of the checksum memo), so that finding each of many attachments costs one lstat, not a
    realpath and several stats."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(Path(path))
        self.real = os.path.realpath(self.path)
        self._prefix = "" if self.path == "." else os.path.join(self.path, "")  # as Path joins

    def find(self, name: str, checksum: uuid.UUID) -> tuple[str | None, Path]:
        """See `find_attachment`."""
        existing, free = self._scan(name, checksum, known_only=False)
        return existing, Path(existing if free is None else free)

    def known(self, name: str, checksum: uuid.UUID) -> str | None:
        """The file holding this attachment if that is known without reading any file (the
        names before it and itself unchanged since this process hashed or wrote them), else None."""
        return self._scan(name, checksum, known_only=True)[0]

    def _scan(
        self, name: str, checksum: uuid.UUID, known_only: bool
    ) -> tuple[str | None, str | None]:
        """(existing file, None) or (None, first free name); (None, None) when known_only and a
        file would have to be read to decide."""
        init = name + "\0"
        for candidate in _candidates(safe_name(name)):
            path = self._prefix + candidate
            try:
                status = os.lstat(path)
            except (OSError, ValueError):
                return None, path
            if stat.S_ISLNK(status.st_mode):  # followed, as DataJoint's is_file() does
                if known_only:
                    return None, None
                if os.path.isfile(path) and file_uuid(path, init) == checksum:
                    return path, None
            elif stat.S_ISREG(status.st_mode):
                real = os.path.join(self.real, candidate)
                identity = _status_identity(status)
                if known_only:
                    known = _known_checksums.get((real, init))
                    if known is None or known[0] != identity:
                        return None, None
                    if known[1] == checksum:
                        return path, None
                elif _checksum(path, real, identity, init) == checksum:
                    return path, None
        raise AssertionError("unreachable")  # pragma: no cover


def find_attachment(
    name: str, checksum: uuid.UUID, download_path: str | os.PathLike | DownloadFolder
) -> tuple[str | None, Path]:
    """(path of an existing file in download_path holding this attachment or None, first free name).

    Follows DataJoint's scan: the plain name, then its aliases, until a free name."""
    if not isinstance(download_path, DownloadFolder):
        download_path = DownloadFolder(download_path)
    return download_path.find(name, checksum)


def place_attachment(
    name: str,
    checksum: uuid.UUID,
    download_path: str | os.PathLike | DownloadFolder,
    contents: Callable[[], bytes | memoryview],
) -> str:
    """Return a path in `download_path` holding the attachment, reusing a file with the same
    content and never overwriting a different one. `contents` is called only if a write is needed."""
    folder = download_path
    if not isinstance(folder, DownloadFolder):
        folder = DownloadFolder(folder)
    Path(folder.path).mkdir(parents=True, exist_ok=True)
    existing, target = folder.find(name, checksum)
    if existing is not None:
        return existing
    temporary = _write_temporary(target, contents())
    try:
        while not _publish(temporary, target):  # another writer took the name meanwhile
            existing, target = folder.find(name, checksum)
            if existing is not None:
                return existing
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    identity = _status_identity(os.stat(target))
    _remember(os.path.join(folder.real, target.name), name + "\0", identity, checksum)  # verified
    return str(target)
