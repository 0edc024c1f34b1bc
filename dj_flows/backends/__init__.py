"""Backend adapters: one per SQL dialect, chosen by `database.backend`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .base import PH, Backend, ForeignKeyEdge, TableInfo


def make_backend(settings: Mapping[str, Any]) -> Backend:
    """Build the backend that `settings['database.backend']` names."""
    name = settings.get("database.backend", "sqlite")
    if name == "sqlite":
        from .sqlite import SQLiteBackend

        return SQLiteBackend(settings)
    if name == "mysql":
        from .mysql import MySQLBackend

        return MySQLBackend(settings)
    raise ConfigError(f"unknown database.backend {name!r}: use 'sqlite' or 'mysql'")


__all__ = ["PH", "Backend", "ForeignKeyEdge", "TableInfo", "make_backend"]
