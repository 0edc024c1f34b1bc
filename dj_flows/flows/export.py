"""Flow: export a join of a schema's tables to Parquet (a path or any fsspec URL).

The flow run is named `export-<schema>` and its task run carries the tags `schema:<schema>` and
`table:<Class>` for each exported table.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, tags

from ..prefect.blocks import DataJointDatabase, DataJointStore, resolve_blocks
from ..prefect.runtime import configured
from ..prefect.tasks import export_task


@flow(name="export-parquet", flow_run_name="export-{schema_name}")
def export_flow(
    schema_name: str,
    tables: list[str],
    url: str,
    restriction: Any = None,
    attributes: list[str] | None = None,
    options: dict[str, Any] | None = None,
    database: DataJointDatabase | str | None = None,
    stores: list[DataJointStore | str] | None = None,
) -> dict[str, Any]:
    """Write the join of `tables` (class or table names) of `schema_name` to `url`.
    `database` and `stores` are blocks or the names of saved blocks."""
    database, stores = resolve_blocks(database, stores)
    with configured(database, stores), tags(
        f"schema:{schema_name}", *(f"table:{name}" for name in tables)
    ):
        return export_task(
            schema_name, tables, url, restriction=restriction, attributes=attributes,
            options=options, database=database, stores=stores,
        )
