"""Download one file from a URL into a folder, whole or not at all; and its Prefect task.

`download()` is a plain function (usable without Prefect) for http(s) and any fsspec URL (s3://,
file://, memory://, ...). It streams into a hidden temporary file next to the destination and renames
it into place only after the bytes are checked, so a failed or interrupted download never leaves a
partial file under the final name.

http(s) goes through urllib rather than fsspec's HTTP filesystem: urllib needs no event loop or
aiohttp, reports the exact status code (which decides whether a retry can help) and lets us compare
the bytes received with Content-Length. Other protocols go through fsspec.

Failures are split by whether a retry can cure them:
- `TransientDownloadError`: connection refused/reset, timeout, HTTP 408/425/429/5xx, truncated body;
- `DownloadError` (and not transient): HTTP 404/403/other 4xx, too big, size or checksum mismatch,
  unknown protocol.
`download_task` retries only the transient ones (Prefect's `retry_condition_fn`).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import posixpath
import re
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.tasks import exponential_backoff

from dj_flows.errors import DataJointError, TransientStoreError

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_SECONDS = 2.0
CHUNK = 256 * 1024
MAX_NAME = 200
TRANSIENT_STATUS = frozenset({408, 425, 429})

logger = logging.getLogger("dj_flows.download")


class DownloadError(DataJointError):
    """A download failed for good (missing, forbidden, too big, wrong size or checksum)."""


class TransientDownloadError(DownloadError, TransientStoreError):
    """A download failed in a way a retry may cure (timeout, reset, 5xx, 429, truncated body)."""


# -- names --------------------------------------------------------------------------------------
def display_url(url: str) -> str:
    """The URL without user info, query or fragment, for messages (they may carry credentials)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def safe_filename(name: str, default: str = "download") -> str:
    """A plain file name: no folders, no leading dots, only [A-Za-z0-9._-], at most 200 chars."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[^\w.-]+", "_", name, flags=re.ASCII).strip("._ ")
    if not name:
        return default
    if len(name) > MAX_NAME:
        stem, dot, suffix = name.rpartition(".")
        suffix = suffix[:20] if dot else ""
        name = (stem if dot else name)[: MAX_NAME - len(suffix) - 1].rstrip("._") + (
            "." + suffix if suffix else ""
        )
    return name


def filename_from_url(url: str) -> str:
    """The sanitised last path segment of `url` ('download' if it has none)."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    return safe_filename(posixpath.basename(path.rstrip("/")))


# -- opening a source ---------------------------------------------------------------------------
def _http_status_error(url: str, status: int) -> DownloadError:
    message = f"download of {display_url(url)} failed: HTTP {status}"
    if status in TRANSIENT_STATUS or status >= 500:
        return TransientDownloadError(message)
    return DownloadError(message)


def _network_error(url: str, exc: BaseException) -> DownloadError:
    """Classify a network-level failure (no HTTP status) as transient or permanent."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    message = f"download of {display_url(url)} failed: {type(reason).__name__}: {reason}"
    if isinstance(reason, ssl.SSLCertVerificationError | FileNotFoundError | PermissionError):
        return DownloadError(message)
    if isinstance(reason, OSError | http.client.HTTPException):
        return TransientDownloadError(message)
    if any(word in cls.__name__ for cls in type(reason).__mro__ for word in ("Timeout", "Connect")):
        return TransientDownloadError(message)  # e.g. botocore/aiohttp errors outside OSError
    return DownloadError(message)


@contextlib.contextmanager
def _open_http(
    url: str, timeout: float, options: dict[str, Any]
) -> Iterator[tuple[BinaryIO, int | None]]:
    headers = {"User-Agent": "dj-flows", **options.get("headers", {})}
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise _http_status_error(url, exc.code) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _network_error(url, exc) from None
    with response:
        length = response.headers.get("Content-Length")
        yield response, int(length) if length and length.strip().isdigit() else None


@contextlib.contextmanager
def _open_fsspec(
    url: str, timeout: float, options: dict[str, Any]
) -> Iterator[tuple[BinaryIO, int | None]]:
    import fsspec

    options = dict(options)
    if urllib.parse.urlsplit(url).scheme in ("s3", "s3a"):
        config = {"connect_timeout": timeout, "read_timeout": timeout}
        options["config_kwargs"] = {**config, **options.get("config_kwargs", {})}
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except (ImportError, ValueError, TypeError) as exc:
        raise DownloadError(f"cannot open {display_url(url)}: {exc}") from None
    try:
        info = fs.info(path)
        if info.get("type") == "directory":
            raise DownloadError(f"download of {display_url(url)} failed: it is a folder")
        stream = fs.open(path, "rb")
    except DataJointError:
        raise
    except Exception as exc:
        raise _network_error(url, exc) from None
    with stream:
        size = info.get("size")
        yield stream, int(size) if size is not None else None


# -- the download -------------------------------------------------------------------------------
def download(
    url: str,
    dest_folder: str | os.PathLike,
    *,
    filename: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    expected_size: int | None = None,
    expected_sha256: str | None = None,
    timeout: float = 30,
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Fetch `url` into `dest_folder` and return the local path.

    The file is named after the URL's last path segment (sanitised) unless `filename` is given.
    `timeout` bounds each connect and each read stall, not the whole transfer. `storage_options`
    go to fsspec (for http(s): only 'headers' is used). An existing file of the same name is
    replaced only once the new bytes are complete and verified.
    """
    if expected_size is not None and expected_size > max_bytes:
        raise DownloadError(
            f"download of {display_url(url)}: expected size {expected_size} bytes exceeds the "
            f"limit of {max_bytes} bytes"
        )
    folder = Path(dest_folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / safe_filename(filename or filename_from_url(url))
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    opener = _open_http if scheme in ("http", "https") else _open_fsspec

    with opener(url, timeout, storage_options or {}) as (stream, announced):
        _check_announced(url, announced, max_bytes, expected_size)
        partial, received, digest = _save(url, stream, target, max_bytes)
    try:
        _verify(url, received, digest, announced, expected_size, expected_sha256)
        os.replace(partial, target)
    except BaseException:
        _discard(partial)
        raise
    logger.info("downloaded %s (%d bytes) to %s", display_url(url), received, target)
    return str(target.resolve())


def _check_announced(url: str, announced: int | None, max_bytes: int, expected: int | None) -> None:
    if announced is None:
        return
    if announced > max_bytes:
        raise DownloadError(
            f"download of {display_url(url)}: {announced} bytes exceeds the limit of {max_bytes}"
        )
    if expected is not None and announced != expected:
        raise DownloadError(
            f"download of {display_url(url)}: the source has {announced} bytes, expected {expected}"
        )


def _save(url: str, stream: BinaryIO, target: Path, max_bytes: int) -> tuple[str, int, str]:
    """Copy the stream to a hidden temporary file beside `target`, stopping past `max_bytes`.

    Returns the temporary path, the byte count and the sha256; removes the file on any failure.
    """
    handle, partial = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name[:60]}.", suffix=".part"
    )
    digest = hashlib.sha256()
    received = 0
    try:
        with os.fdopen(handle, "wb") as out:
            while True:
                try:
                    chunk = stream.read(CHUNK)
                except Exception as exc:  # socket/http.client errors, or an fsspec backend's own
                    raise _network_error(url, exc) from None
                if not chunk:
                    return partial, received, digest.hexdigest()
                received += len(chunk)
                if received > max_bytes:
                    raise DownloadError(
                        f"download of {display_url(url)}: more than {max_bytes} bytes "
                        "(the limit); aborted"
                    )
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        _discard(partial)
        raise


def _discard(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _verify(
    url: str,
    received: int,
    digest: str,
    announced: int | None,
    expected_size: int | None,
    expected_sha256: str | None,
) -> None:
    where = display_url(url)
    if announced is not None and received != announced:
        raise TransientDownloadError(
            f"download of {where} was truncated: {received} of {announced} bytes arrived"
        )
    if expected_size is not None and received != expected_size:
        if announced is None and received < expected_size:
            raise TransientDownloadError(
                f"download of {where} was truncated: {received} of {expected_size} bytes arrived"
            )
        raise DownloadError(f"download of {where}: got {received} bytes, expected {expected_size}")
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise DownloadError(f"download of {where}: sha256 {digest} != expected {expected_sha256}")


# -- the Prefect task ---------------------------------------------------------------------------
def retry_on_transient(task: Task, task_run: TaskRun, state: State) -> bool:
    """Prefect retry condition: retry only when the run failed with a TransientDownloadError."""
    try:
        state.result()
    except TransientDownloadError:
        return True
    except Exception:
        return False
    return False


download_task = task(
    download,
    name="download",
    retries=DEFAULT_RETRIES,
    retry_delay_seconds=exponential_backoff(backoff_factor=DEFAULT_BACKOFF_SECONDS),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_on_transient,
    cache_policy=NO_CACHE,
)
"""`download()` as a Prefect task; returns the local path. Change the retry policy per use with
`download_task.with_options(retries=..., retry_delay_seconds=...)`."""
