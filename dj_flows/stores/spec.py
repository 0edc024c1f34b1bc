"""Store specs: `dj.config['stores'][name]` checked once and frozen into a `StoreSpec`.

The accepted keys are DataJoint 0.14's (file: location; s3: endpoint, bucket, access_key,
secret_key, location, secure, proxy_server; both: subfolding, stage) plus dj-flows'
`storage_options` (passed to fsspec) and any other fsspec protocol ('memory', 'gcs', ...).
A bad spec fails here, naming the store and the key, and never echoing a secret.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .layout import DEFAULT_SUBFOLDING

COMMON_KEYS = {"protocol", "location", "subfolding", "stage", "storage_options"}
REQUIRED = {
    "file": ("location",),
    "s3": ("endpoint", "bucket", "access_key", "secret_key", "location"),
}
ALLOWED = {
    "file": COMMON_KEYS,
    "s3": COMMON_KEYS
    | {"endpoint", "bucket", "access_key", "secret_key", "secure", "proxy_server"},
}
HIDDEN = {"access_key", "secret_key", "storage_options", "proxy_server"}


@dataclasses.dataclass(frozen=True)
class StoreSpec:
    """A validated store spec. Credentials are kept out of repr."""

    name: str
    protocol: str
    location: str = ""
    endpoint: str | None = None
    bucket: str | None = None
    access_key: str | None = dataclasses.field(default=None, repr=False)
    secret_key: str | None = dataclasses.field(default=None, repr=False)
    secure: bool = False
    proxy_server: str | None = dataclasses.field(default=None, repr=False)
    subfolding: tuple[int, ...] = DEFAULT_SUBFOLDING
    stage: str | None = None
    storage_options: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def endpoint_url(self) -> str | None:
        """The endpoint as a URL: 'host:port' gets http:// (https:// when secure)."""
        if self.endpoint is None:
            return None
        if "://" in self.endpoint:
            return self.endpoint
        return ("https://" if self.secure else "http://") + self.endpoint

    def secrets(self) -> list[str]:
        """Values that must never appear in a message."""
        found = [self.secret_key] if self.secret_key else []
        found += _secret_values(self.storage_options)
        return [value for value in found if isinstance(value, str) and len(value) >= 4]


def _secret_values(options: Any) -> list[str]:
    from ..settings import SECRET_NAME

    if not isinstance(options, Mapping):
        return []
    values = []
    for key, value in options.items():
        if isinstance(value, Mapping):
            values += _secret_values(value)
        elif isinstance(value, str) and SECRET_NAME.search(str(key)):
            values.append(value)
    return values


def _where(name: str, key: str | None = None) -> str:
    return f"dj.config['stores'][{name!r}]" + (f"[{key!r}]" if key else "")


def _string(name: str, spec: Mapping, key: str, *, empty_ok: bool = True) -> str | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, os.PathLike) and key in ("location", "stage"):
        value = os.fspath(value)
    if not isinstance(value, str):
        shown = "" if key in HIDDEN else f" {value!r}"
        raise ConfigError(
            f"{_where(name, key)} must be a string, got {type(value).__name__}{shown}"
        )
    if not empty_ok and not value:
        raise ConfigError(f"{_where(name, key)} must not be empty")
    return value


def _subfolding(name: str, value: Any) -> tuple[int, ...]:
    if value is None:
        return DEFAULT_SUBFOLDING
    ok = isinstance(value, collections.abc.Sequence) and not isinstance(value, str | bytes)
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    if not ok:
        raise ConfigError(
            f"{_where(name, 'subfolding')} must be a sequence of positive integers such as (2, 2),"
            f" got {value!r}"
        )
    return tuple(value)


def parse_spec(name: str, spec: Mapping[str, Any]) -> StoreSpec:
    """Validate a store spec from the config and return it frozen."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"store name must be a non-empty string, got {name!r}")
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{_where(name)} must be a dict, got {type(spec).__name__}")
    protocol = spec.get("protocol")
    if not isinstance(protocol, str) or not protocol:
        raise ConfigError(f"{_where(name, 'protocol')} is missing or not a string")
    protocol = protocol.lower()
    if protocol not in ALLOWED:
        _check_fsspec_protocol(name, protocol)
    allowed = ALLOWED.get(protocol, COMMON_KEYS)
    unknown = sorted(str(key) for key in spec if key not in allowed)
    if unknown:
        raise ConfigError(
            f"{_where(name)} has unknown key(s) {', '.join(map(repr, unknown))} for protocol"
            f" {protocol!r}; allowed: {', '.join(sorted(allowed))}"
        )
    missing = [key for key in REQUIRED.get(protocol, ()) if key not in spec]
    if missing:
        raise ConfigError(f"{_where(name)} is missing {', '.join(map(repr, missing))}")

    options = spec.get("storage_options") or {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"{_where(name, 'storage_options')} must be a dict")
    secure = spec.get("secure", False)
    if not isinstance(secure, bool):
        raise ConfigError(f"{_where(name, 'secure')} must be True or False, got {secure!r}")
    location = _string(name, spec, "location", empty_ok=protocol != "file") or ""
    if protocol == "s3" and ".." in location.replace("\\", "/").split("/"):
        raise ConfigError(f"{_where(name, 'location')} must not contain '..'")
    strict = protocol == "s3"
    return StoreSpec(
        name=name,
        protocol=protocol,
        location=location,
        endpoint=_string(name, spec, "endpoint", empty_ok=not strict),
        bucket=_string(name, spec, "bucket", empty_ok=not strict),
        access_key=_string(name, spec, "access_key"),
        secret_key=_string(name, spec, "secret_key"),
        secure=secure,
        proxy_server=_string(name, spec, "proxy_server"),
        subfolding=_subfolding(name, spec.get("subfolding")),
        stage=_string(name, spec, "stage"),
        storage_options=dict(options),
    )


def _check_fsspec_protocol(name: str, protocol: str) -> None:
    import fsspec

    if protocol not in fsspec.available_protocols():
        raise ConfigError(
            f"{_where(name, 'protocol')}: unknown protocol {protocol!r}; use 'file', 's3' or an"
            " fsspec protocol such as 'memory' or 'gcs'"
        )
