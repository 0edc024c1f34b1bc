"""Flow: garbage-collect the external stores of a schema (meant for a schedule).

A dry run by default: it reports what would go (count, bytes, by last reference) as a markdown
artifact per store and removes nothing. With `dry_run=False` it removes unused objects older
than the grace period (default: dj.config['gc.grace_seconds']), never one that is in use; with
`delete_orphans` also objects in the store that no tracking row knows (e.g. left by a crash).

Observability: the flow run is named `gc-<schema>`, each store's task run `gc-<schema>-<store>`
with the tags `schema:<schema>` and `store:<store>`, and one Prefect event per store says how it
went (`dj-flows.gc.completed` or `.failed`; see dj_flows.prefect.events).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, tags
from prefect.futures import wait

from ..prefect.blocks import DataJointDatabase, DataJointStore, resolve_blocks
from ..prefect.events import emit_gc_event
from ..prefect.runtime import configured, engine
from ..prefect.tasks import gc_task


@flow(name="external-gc", flow_run_name="gc-{schema_name}")
def external_gc_flow(
    schema_name: str,
    store_names: list[str] | None = None,
    grace_seconds: int | None = None,
    dry_run: bool = True,
    delete_orphans: bool = False,
    delete_files: bool = True,
    limit: int | None = None,
    database: DataJointDatabase | str | None = None,
    stores: list[DataJointStore | str] | None = None,
) -> list[dict[str, Any]]:
    """Collect the named stores (default: every configured store the schema uses).
    `database` and `stores` are blocks or the names of saved blocks."""
    database, stores = resolve_blocks(database, stores)
    with configured(database, stores):
        if store_names is None:
            from ..schema import Schema

            with engine(database, stores) as connection:
                store_names = list(Schema(schema_name, connection=connection, create_schema=False).external)
        futures = {}
        for name in store_names:
            with tags(f"schema:{schema_name}", f"store:{name}"):
                futures[name] = gc_task.submit(
                    schema_name, name, grace_seconds=grace_seconds, dry_run=dry_run,
                    delete_orphans=delete_orphans, delete_files=delete_files, limit=limit, database=database, stores=stores,
                )
        wait(list(futures.values()))
        for name, future in futures.items():
            state = future.state
            if state.is_completed():
                emit_gc_event(schema_name, name, future.result())
            else:
                emit_gc_event(schema_name, name, None, error=state.message or state.name)
        # a store whose task failed raises its own error here, after every store was tried
        return [future.result() for future in futures.values()]
