"""Flow: garbage-collect the external stores of a schema_name (meant for a schedule).

A dry run by default: it reports what would go (count, bytes, by last reference) as a markdown
artifact per store and removes nothing. With `dry_run=False` it removes unused objects older
than the grace period (default: dj.config['gc.grace_seconds']), never one that is in use.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from ..prefect.blocks import DataJointDatabase, DataJointStore
from ..prefect.runtime import configured, engine
from ..prefect.tasks import gc_task


@flow(name="external-gc")
def external_gc_flow(
    schema_name: str,
    store_names: list[str] | None = None,
    grace_seconds: int | None = None,
    dry_run: bool = True,
    delete_files: bool = True,
    limit: int | None = None,
    database: DataJointDatabase | None = None,
    stores: list[DataJointStore] | None = None,
) -> list[dict[str, Any]]:
    """Collect the named stores (default: every configured store the schema_name uses)."""
    with configured(database, stores):
        if store_names is None:
            from ..schema import Schema

            with engine(database, stores) as connection:
                store_names = list(Schema(schema_name, connection=connection, create_schema=False).external)
        futures = [
            gc_task.submit(
                schema_name, name, grace_seconds=grace_seconds, dry_run=dry_run,
                delete_files=delete_files, limit=limit, database=database, stores=stores,
            )
            for name in store_names
        ]
        return [future.result() for future in futures]
