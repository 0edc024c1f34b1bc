"""Flow: export a join of a schema's tables to Parquet (a path or any fsspec URL)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from ..prefect.blocks import DataJointDatabase, DataJointStore
from ..prefect.runtime import configured
from ..prefect.tasks import export_task


@flow(name="export-parquet")
def export_flow(
    schema_name: str,
    tables: list[str],
    url: str,
    restriction: Any = None,
    attributes: list[str] | None = None,
    options: dict[str, Any] | None = None,
    database: DataJointDatabase | None = None,
    stores: list[DataJointStore] | None = None,
) -> dict[str, Any]:
    """Write the join of `tables` (class or table names) of `schema_name` to `url`."""
    with configured(database, stores):
        return export_task(
            schema_name, tables, url, restriction=restriction, attributes=attributes,
            options=options, database=database, stores=stores,
        )
