"""External storage hooks (placeholder until the ~external tables land)."""

from __future__ import annotations

from typing import Any

from ..errors import DataJointError


def add_external_references(table: Any, spec: Any) -> Any:
    if any(a.is_external for a in spec.attributes):
        raise DataJointError(f"table {table.table_name!r}: external stores are not available yet")
    return spec


def encode_external_columns(table: Any, attributes: Any, rows: Any) -> None:
    raise DataJointError("external stores are not available yet")


def decode_external_column(query: Any, attribute: Any, values: Any, **kwargs: Any) -> Any:
    raise DataJointError("external stores are not available yet")


class ExternalMapping(dict):
    def __init__(self, schema: Any) -> None:
        super().__init__()
