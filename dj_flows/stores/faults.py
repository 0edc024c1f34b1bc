"""Sorting store failures: missing object, transient fault, or plain error.

Retry policies (the Prefect layer) must tell "try again later" from "this will never work"
without parsing messages, so every exception from fsspec/s3fs/botocore/aiohttp/the OS is
classified here once. Library exception types are recognised by their module and class name,
so this module imports none of those libraries.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Iterator

TRANSIENT_ERRNOS = {
    errno.ETIMEDOUT,
    errno.ECONNRESET,
    errno.ECONNREFUSED,
    errno.ECONNABORTED,
    errno.EPIPE,
    errno.EAGAIN,
    errno.EBUSY,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ENETDOWN,
    getattr(errno, "EREMOTEIO", -1),
    getattr(errno, "ESTALE", -1),
}
TRANSIENT_S3_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
    "RequestTimeTooSkewed",
}
# botocore / aiohttp classes (matched by name along the MRO) that mean the network, not the request
TRANSIENT_CLASS_NAMES = {
    "HTTPClientError",  # botocore: ReadTimeoutError, ConnectionClosedError, ...
    "ConnectionError",  # botocore's own ConnectionError: EndpointConnectionError, ConnectTimeout...
    "ClientConnectionError",  # aiohttp
    "ClientPayloadError",  # aiohttp
    "IncompleteRead",
    "ResponseParserError",  # s3fs treats rate-limit garbage as retryable; so do we
}
MISSING_BUCKET_CODES = {"NoSuchBucket"}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its causes/contexts (bounded, cycle-safe)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen and len(seen) < 10:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def s3_error(exc: BaseException) -> tuple[str | None, int | None]:
    """(error code, HTTP status) of a botocore ClientError anywhere in the chain."""
    for item in _chain(exc):
        response = getattr(item, "response", None)
        if isinstance(response, dict) and "Error" in response:
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return response["Error"].get("Code"), status
    return None, None


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same request later may succeed."""
    code, status = s3_error(exc)
    if code is not None or status is not None:
        return (status or 0) >= 500 or code in TRANSIENT_S3_CODES
    for item in _chain(exc):
        if isinstance(item, TimeoutError | asyncio.TimeoutError | ConnectionError):
            return True
        if isinstance(item, OSError) and item.errno in TRANSIENT_ERRNOS:
            return True
        for cls in type(item).__mro__:
            if cls.__module__.split(".")[0] in ("botocore", "aiohttp", "urllib3", "http"):
                if cls.__name__ in TRANSIENT_CLASS_NAMES:
                    return True
    return False


def is_missing_bucket(exc: BaseException) -> bool:
    code, _ = s3_error(exc)
    return code in MISSING_BUCKET_CODES or "bucket does not exist" in str(exc).lower()


def is_missing(exc: BaseException) -> bool:
    """True when the object itself does not exist (not its bucket, not its store)."""
    return isinstance(exc, FileNotFoundError) and not is_missing_bucket(exc)


def is_denied(exc: BaseException) -> bool:
    code, status = s3_error(exc)
    return isinstance(exc, PermissionError) or status in (401, 403)


def describe(exc: BaseException, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """A one-line reason for a message, with any secret masked."""
    text = str(exc) or type(exc).__name__
    text = f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text
    for secret in secrets:
        text = text.replace(secret, "********")
    return text if len(text) <= 300 else text[:297] + "..."
