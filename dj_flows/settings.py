"""Configuration: `dj.config`, a flat dict of DataJoint 0.14's dotted keys plus dj-flows' own.

Sources, lowest precedence first: built-in defaults < `dj_local_conf.json` in the working folder (or
the file named by DJ_CONFIG) < DJ_* environment variables < assignment at run time. Secrets
(passwords, secret keys, tokens) are masked in every repr/str and scrubbed from log records, because
notebooks print `dj.config` and logs end up in the Prefect UI.
"""

from __future__ import annotations

import collections.abc
import contextlib
import copy
import json
import logging
import os
import pprint
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ConfigError

LOCAL_CONFIG = "dj_local_conf.json"
MASK = "********"
SECRET_NAME = re.compile(r"(password|secret|token|credential|passwd)", re.IGNORECASE)

DEFAULTS: dict[str, Any] = {
    "database.backend": "sqlite",
    "database.sqlite_path": "dj_flows.sqlite",
    "database.host": "localhost",
    "database.port": 3306,
    "database.user": None,
    "database.password": None,
    "database.reconnect": True,
    "database.use_tls": None,
    "connection.init_function": None,
    "connection.charset": "",
    "loglevel": "INFO",
    "safemode": True,
    "fetch_format": "array",
    "display.limit": 12,
    "display.width": 14,
    "display.show_tuple_count": True,
    "enable_python_native_blobs": True,
    "add_hidden_timestamp": False,
    "filepath_checksum_size_limit": None,
    "filepath_checksum_size_limit_insert": None,
    "query_cache": None,
    "stores": {},
    "cache": None,
    "cache_limit": None,
    "download_path": ".",
    "external.transfer_concurrency": 16,
    "jobs.lease_seconds": 300,
    "gc.grace_seconds": 3600,
}

ENVIRONMENT: dict[str, str] = {
    "DJ_BACKEND": "database.backend",
    "DJ_SQLITE_PATH": "database.sqlite_path",
    "DJ_HOST": "database.host",
    "DJ_PORT": "database.port",
    "DJ_USER": "database.user",
    "DJ_PASS": "database.password",
    "DJ_USE_TLS": "database.use_tls",
    "DJ_LOGLEVEL": "loglevel",
    "DJ_LOG_LEVEL": "loglevel",  # DataJoint's name
    "DJ_AWS_ACCESS_KEY_ID": "external.aws_access_key_id",
    "DJ_AWS_SECRET_ACCESS_KEY": "external.aws_secret_access_key",
    "DJ_SAFEMODE": "safemode",
    "DJ_CACHE": "cache",
    "DJ_CACHE_LIMIT": "cache_limit",
    "DJ_DOWNLOAD_PATH": "download_path",
}

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
logger = logging.getLogger("dj_flows")


def _parse_bool(key: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    if text in ("", "none", "null"):
        return None
    raise ConfigError(f"config[{key!r}] must be true or false, got {value!r}")


def _parse_int(key: str, value: Any, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"config[{key!r}] must be an integer, got {value!r}") from None
    if isinstance(value, float) and value != number:
        raise ConfigError(f"config[{key!r}] must be an integer, got {value!r}")
    return number


def _validate_backend(key: str, value: Any) -> str:
    if value not in ("sqlite", "mysql"):
        raise ConfigError(f"config[{key!r}] must be 'sqlite' or 'mysql', got {value!r}")
    return value


def _validate_loglevel(key: str, value: Any) -> str:
    level = str(value).upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"config[{key!r}] must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
    logger.setLevel(level)
    return level


def _validate_fetch_format(key: str, value: Any) -> str:
    if value not in ("array", "frame"):
        raise ConfigError(f"config[{key!r}] must be 'array' or 'frame', got {value!r}")
    return value


class MaskedDict(dict):
    """A plain dict whose repr/str masks secret-named entries, so that printing
    `dj.config['stores']` (or one store's spec) in a notebook shows no secret key."""

    def __repr__(self) -> str:
        return repr(mask_secrets(dict(self)))

    __str__ = __repr__

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython
        printer.text(repr(self))


def _validate_stores(key: str, value: Any) -> dict:
    if not isinstance(value, collections.abc.Mapping):
        raise ConfigError(f"config['stores'] must be a dict of store name -> spec, got {type(value).__name__}")
    for name, spec in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ConfigError(
                f"store name {name!r} is invalid: use lowercase letters, digits and underscores"
            )
        if not isinstance(spec, collections.abc.Mapping) or "protocol" not in spec:
            raise ConfigError(f"config['stores'][{name!r}] must be a dict with a 'protocol'")
    return MaskedDict({name: MaskedDict(spec) for name, spec in value.items()})


VALIDATORS = {
    "database.backend": _validate_backend,
    "database.port": _parse_int,
    "database.reconnect": _parse_bool,
    "database.use_tls": _parse_bool,
    "safemode": _parse_bool,
    "display.limit": _parse_int,
    "display.width": _parse_int,
    "display.show_tuple_count": _parse_bool,
    "enable_python_native_blobs": _parse_bool,
    "loglevel": _validate_loglevel,
    "fetch_format": _validate_fetch_format,
    "stores": _validate_stores,
    "cache_limit": lambda k, v: _parse_int(k, v, optional=True),
    "add_hidden_timestamp": _parse_bool,
    "filepath_checksum_size_limit": lambda k, v: _parse_int(k, v, optional=True),
    "filepath_checksum_size_limit_insert": lambda k, v: _parse_int(k, v, optional=True),
    "external.transfer_concurrency": _parse_int,
    "jobs.lease_seconds": _parse_int,
    "gc.grace_seconds": _parse_int,
}


def mask_secrets(value: Any, name: str = "") -> Any:
    """Return a deep copy of `value` with every secret-named entry replaced by a mask."""
    if isinstance(value, collections.abc.Mapping):
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_secrets(v, name) for v in value)
    if value is not None and SECRET_NAME.search(name):
        return MASK
    return value


def _secret_values(value: Any, name: str = "") -> Iterator[str]:
    if isinstance(value, collections.abc.Mapping):
        for k, v in value.items():
            yield from _secret_values(v, str(k))
    elif isinstance(value, str) and value and SECRET_NAME.search(name):
        yield value


class Config(collections.abc.MutableMapping):
    """A flat mapping of dotted keys with validation, layered sources and masked display."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self._values: dict[str, Any] = {}
        for key, value in copy.deepcopy(DEFAULTS).items():
            self[key] = value
        if values:
            self.update(values)

    # -- mapping protocol -------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise ConfigError(f"unknown config key {key!r}") from None

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise ConfigError(f"config keys are strings, got {key!r}")
        validator = VALIDATORS.get(key)
        self._values[key] = validator(key, value) if validator else value

    def __delitem__(self, key: str) -> None:
        if key in DEFAULTS:
            self._values[key] = copy.deepcopy(DEFAULTS[key])
        else:
            del self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    # -- display: never a secret ----------------------------------------------------------------
    def masked(self) -> dict[str, Any]:
        return {key: mask_secrets(value, key) for key, value in sorted(self._values.items())}

    def __repr__(self) -> str:
        return pprint.pformat(self.masked(), indent=4, width=100)

    __str__ = __repr__

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython
        printer.text(repr(self))

    def secret_values(self) -> list[str]:
        """Every secret currently configured (for scrubbing logs and messages)."""
        return [s for key, value in self._values.items() for s in _secret_values(value, key)]

    # -- sources --------------------------------------------------------------------------------
    def load(self, path: str | os.PathLike) -> None:
        """Merge a JSON config file (DataJoint's format: flat dotted keys, 'stores' a dict)."""
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {str(path)!r} does not exist") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {str(path)!r} must hold a JSON object")
        self.update(data)

    def load_environment(self, environ: collections.abc.Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        for variable, key in ENVIRONMENT.items():
            if variable in environ:
                self[key] = environ[variable]

    def save_local(self, path: str | os.PathLike = LOCAL_CONFIG, verbose: bool = False) -> None:
        """Write the current settings (secrets included: the file is the user's own) to JSON."""
        Path(path).write_text(json.dumps(self._values, indent=4, default=str))
        if verbose:
            logger.info("configuration saved to %s", path)

    save = save_local

    @contextlib.contextmanager
    def override(self, **changes: Any) -> Iterator[Config]:
        """Temporarily set keys (dots written as double underscores: database__host=...)."""
        changes = {key.replace("__", "."): value for key, value in changes.items()}
        saved = {key: self._values.get(key, KeyError) for key in changes}
        try:
            for key, value in changes.items():
                self[key] = value
            yield self
        finally:
            for key, value in saved.items():
                if value is KeyError:
                    self._values.pop(key, None)
                else:  # through the validator, so side effects (the log level) are undone too
                    self[key] = value

    def __call__(self, **changes: Any) -> contextlib.AbstractContextManager[Config]:
        """`with dj.config(safemode=False): ...` as in DataJoint."""
        return self.override(**changes)


class SecretScrubber(logging.Filter):
    """Replace any configured secret that reaches a log record with the mask."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self._config = config

    def filter(self, record: logging.LogRecord) -> bool:
        scrub(self._config, record)
        return True


def scrub(config: Config, record: logging.LogRecord) -> None:
    """Mask every configured secret in the record's message (formatted once, args dropped)."""
    secrets = config.secret_values()
    if not secrets:
        return
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed record: leave it to the handler to report
        return
    if any(secret in message for secret in secrets):
        for secret in secrets:
            message = message.replace(secret, MASK)
        record.msg, record.args = message, None


def _install_record_scrubbing(config: Config) -> None:
    """Scrub records of every `dj_flows.*` logger as they are created.

    A filter on the `dj_flows` logger alone would miss records of its children (`dj_flows.table`),
    which propagate to handlers without passing their ancestors' filters; the record factory sees
    them all. It chains to whatever factory was installed before.
    """
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if record.name == "dj_flows" or record.name.startswith("dj_flows."):
            scrub(config, record)
        return record

    logging.setLogRecordFactory(factory)


def _initial_config() -> Config:
    config = Config()
    path = os.environ.get("DJ_CONFIG") or (LOCAL_CONFIG if Path(LOCAL_CONFIG).exists() else None)
    if path:
        config.load(path)
    config.load_environment()
    return config


config = _initial_config()
logger.addFilter(SecretScrubber(config))
_install_record_scrubbing(config)
