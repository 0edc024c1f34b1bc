"""Prefect blocks that hold where a pipeline's database and external stores live.

A block is configuration only: it never holds a live connection, so it pickles to any worker and a
task connects inside itself (the engine's connection module owns connecting). `apply()` copies the
block's values into `dj_flows.config`, the one place the engine reads settings from.

Secrets (database password, store keys) are `SecretStr`, shown masked in every repr/str and
obfuscated by the Prefect API; plain `storage_options` entries whose names look secret are masked in
repr too, but only `secret_storage_options` is obfuscated in the Prefect UI, so credentials that do
not fit `access_key`/`secret_key` belong there.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from prefect.blocks.core import Block
from prefect.types import SecretDict
from pydantic import Field, SecretStr, field_validator, model_validator

from dj_flows.errors import ConfigError
from dj_flows.settings import Config, mask_secrets

DOCUMENTATION_URL = "https://docs.datajoint.com/core/datajoint-python/0.14/"
STORE_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def _target(config: Config | None) -> Config:
    if config is None:
        from dj_flows.settings import config as global_config

        return global_config
    return config


@contextlib.contextmanager
def _applied(values: dict[str, Any], config: Config | None) -> Iterator[Config]:
    """Set `values` in the config for the duration of a with-block, then restore the old ones."""
    config = _target(config)
    missing = object()
    saved = {key: config.get(key, missing) for key in values}
    try:
        config.update(values)
        yield config
    finally:
        for key, value in saved.items():
            if value is missing:
                del config[key]
            else:
                config[key] = value


class DataJointDatabase(Block):
    """Connection settings of a DataJoint pipeline database: an SQLite file or a MySQL server."""

    _block_type_name = "DataJoint Database"
    _block_type_slug = "datajoint-database"
    _description = (
        "Where a dj-flows pipeline keeps its tables: an embedded SQLite file or a MySQL/MariaDB "
        "server (compatible with DataJoint 0.14)."
    )
    _documentation_url = DOCUMENTATION_URL
    _code_example = """
    from dj_flows.prefect.blocks import DataJointDatabase

    datajoint_database = DataJointDatabase.load("BLOCK_NAME")
    datajoint_database.apply()  # writes the settings into dj_flows.config
    """

    backend: Literal["sqlite", "mysql"] = Field(
        default="sqlite", description="Database backend: 'sqlite' (embedded) or 'mysql'."
    )
    host: str = Field(default="localhost", description="MySQL server host name or address.")
    port: int = Field(default=3306, ge=1, le=65535, description="MySQL server TCP port.")
    user: str | None = Field(default=None, description="MySQL user name.")
    password: SecretStr | None = Field(default=None, description="MySQL password.")
    sqlite_path: str = Field(
        default="dj_flows.sqlite",
        description="Path of the SQLite database file (backend 'sqlite' only).",
    )
    use_tls: bool | None = Field(
        default=None,
        description="Use TLS for MySQL: true, false, or empty to let the server decide.",
    )

    def config_values(self) -> dict[str, Any]:
        """The dj.config keys this block sets; the password is in plain text for the engine."""
        return {
            "database.backend": self.backend,
            "database.host": self.host,
            "database.port": self.port,
            "database.user": self.user,
            "database.password": _secret(self.password),
            "database.sqlite_path": self.sqlite_path,
            "database.use_tls": self.use_tls,
        }

    def apply(self, config: Config | None = None) -> Config:
        """Write this block's settings into `config` (default: dj_flows.config) and return it."""
        config = _target(config)
        config.update(self.config_values())
        return config

    def applied(self, config: Config | None = None) -> contextlib.AbstractContextManager[Config]:
        """Apply the settings for a with-block only, restoring the previous values after it."""
        return _applied(self.config_values(), config)


class DataJointStore(Block):
    """An external store of a DataJoint pipeline: a folder, an S3 bucket or any fsspec location."""

    _block_type_name = "DataJoint Store"
    _block_type_slug = "datajoint-store"
    _description = (
        "An external store for blobs and attachments of a dj-flows pipeline: a local or network "
        "folder, an S3 bucket (AWS, MinIO, SeaweedFS) or another fsspec filesystem."
    )
    _documentation_url = DOCUMENTATION_URL
    _code_example = """
    from dj_flows.prefect.blocks import DataJointStore

    datajoint_store = DataJointStore.load("BLOCK_NAME")
    datajoint_store.apply()  # adds the store to dj_flows.config['stores']
    """

    name: str = Field(description="Store name used in table definitions (blob@name, attach@name).")
    protocol: str = Field(
        default="file", description="Storage protocol: 'file', 's3' or another fsspec protocol."
    )
    location: str = Field(
        default="",
        description="Folder (file) or key prefix inside the bucket (s3) where objects are kept.",
    )
    endpoint: str | None = Field(
        default=None, description="S3 endpoint as host:port (protocol 's3' only)."
    )
    bucket: str | None = Field(default=None, description="S3 bucket name (protocol 's3' only).")
    access_key: SecretStr | None = Field(default=None, description="S3 access key id.")
    secret_key: SecretStr | None = Field(default=None, description="S3 secret access key.")
    secure: bool = Field(default=False, description="Connect to the S3 endpoint over HTTPS.")
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra fsspec options; entries named like secrets are masked in repr.",
    )
    secret_storage_options: SecretDict | None = Field(
        default=None,
        description="Extra fsspec options holding credentials; hidden in the Prefect UI.",
    )
    subfolding: tuple[int, ...] | None = Field(
        default=None,
        description="Folder nesting of hash-addressed objects, e.g. [2, 2] (DataJoint's default).",
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not STORE_NAME.fullmatch(value):
            raise ValueError(
                f"store name {value!r} is invalid: use lowercase letters, digits and underscores"
            )
        return value

    @model_validator(mode="after")
    def _complete(self) -> DataJointStore:
        if self.protocol == "s3":
            missing = [f for f in ("endpoint", "bucket") if not getattr(self, f)]
            if missing:
                raise ValueError(
                    f"store {self.name!r}: protocol 's3' needs {' and '.join(missing)}"
                )
        elif self.protocol == "file" and not self.location:
            raise ValueError(f"store {self.name!r}: protocol 'file' needs a location")
        return self

    def __repr_args__(self) -> list[tuple[str | None, Any]]:
        return [
            (key, mask_secrets(value, "") if key == "storage_options" else value)
            for key, value in super().__repr_args__()
        ]

    def _options(self) -> dict[str, Any]:
        secret = self.secret_storage_options
        return {**self.storage_options, **(secret.get_secret_value() if secret else {})}

    def store_spec(self) -> dict[str, Any]:
        """The DataJoint store dict for config['stores'][name]; secrets in plain text."""
        spec: dict[str, Any] = {"protocol": self.protocol, "location": self.location}
        if self.protocol == "s3":
            spec.update(
                endpoint=self.endpoint,
                bucket=self.bucket,
                access_key=_secret(self.access_key),
                secret_key=_secret(self.secret_key),
                secure=self.secure,
            )
        if self.subfolding is not None:
            spec["subfolding"] = self.subfolding
        options = self._options()
        if options:
            spec["storage_options"] = options
        return spec

    def apply(self, config: Config | None = None) -> Config:
        """Add (or replace) this store in `config['stores']` (default: dj_flows.config)."""
        config = _target(config)
        config["stores"] = {**config["stores"], self.name: self.store_spec()}
        return config

    def applied(self, config: Config | None = None) -> contextlib.AbstractContextManager[Config]:
        """Add the store for a with-block only, restoring the previous stores after it."""
        config = _target(config)
        return _applied({"stores": {**config["stores"], self.name: self.store_spec()}}, config)


def _load(cls: type[Block], name: str) -> Any:
    try:
        return cls.load(name)
    except ValueError as error:  # Prefect: "Unable to find block document named ..."
        raise ConfigError(
            f"no saved {cls.get_block_type_name()} block named {name!r} on the Prefect API "
            f"({error}); save one with {cls.__name__}(...).save({name!r})"
        ) from None


def resolve_blocks(
    database: DataJointDatabase | str | None = None,
    stores: Sequence[DataJointStore | str] | None = None,
) -> tuple[DataJointDatabase | None, list[DataJointStore]]:
    """Blocks as given, or loaded by their saved names: a deployment's parameters name the blocks
    (`database: lab-mysql`, `stores: [lab-shared]`), so credentials stay in the blocks and the
    same deployment follows any change to them."""
    if isinstance(database, str):
        database = _load(DataJointDatabase, database)
    return database, [_load(DataJointStore, s) if isinstance(s, str) else s for s in stores or ()]
