"""Prefect tasks over the dj-flows engine. Thin: each one configures, connects, calls the engine.

Every task takes only JSON-able values (pipeline module path, schema and table names,
restrictions, keys, URLs, paths) plus optional blocks (configuration, never a live connection),
opens its own thread's connection, and returns plain JSON. Without blocks a task uses the worker's
`dj_flows.config` (the same sources as the engine: defaults, dj_local_conf.json, DJ_* variables).

Retries: task-level retries fire only on transient failures (see runtime.is_transient) and the
connection is closed before the next attempt so that it reconnects. Failed make() calls are not
task failures: `populate_task` retries transient ones per key a bounded number of times and reports
the rest in its result and its table artifact; the calling flow decides whether that fails the run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from .. import pipelines
from .blocks import DataJointDatabase, DataJointStore
from .populating import DEFAULT_CHUNK_SIZE, DEFAULT_KEY_RETRIES, populate_in_chunks
from .runtime import artifact_key, engine, in_prefect_run, jsonable, retry_on_transient

logger = logging.getLogger("dj_flows.prefect.tasks")
TASK_RETRIES = 2
TASK_RETRY_DELAYS = [2.0, 10.0]
ARTIFACT_ROWS = 200

Stores = Sequence[DataJointStore] | None


def task_options(name: str, **extra: Any) -> dict[str, Any]:
    """The dj-flows task policy, for `@task(**task_options("name"))` on your own tasks too:
    bounded retries of transient failures only, no result caching (tasks write to a database)."""
    return {
        "name": name,
        "retries": TASK_RETRIES,
        "retry_delay_seconds": TASK_RETRY_DELAYS,
        "retry_condition_fn": retry_on_transient,
        "cache_policy": NO_CACHE,
        **extra,
    }


def _restrictions(restriction: Any) -> tuple:
    """A JSON restriction (dict, list of dicts = OR, SQL string) or None as populate's *args."""
    if restriction is None or restriction == [] or restriction == {}:
        return ()
    return (restriction,)


# -- pipeline set-up ----------------------------------------------------------------------------
@task(**task_options("declare-pipeline"))
def declare_task(
    pipeline: str,
    schema_name: str,
    *,
    database: DataJointDatabase | None = None,
    stores: Stores = None,
) -> list[str]:
    """Declare the pipeline's tables in `schema_name` (creating it if needed); return their names."""
    with engine(database, stores):
        return sorted(cls.table_name for cls in pipelines.tables(pipeline, schema_name).values())


@task(**task_options("load-catalog"))
def load_catalog_task(
    schema_name: str,
    entries: list[dict],
    *,
    database: DataJointDatabase | None = None,
    stores: Stores = None,
) -> dict[str, int]:
    """Insert image catalog entries into the image pipeline's WebImage (see images.load_catalog)."""
    from ..pipelines import images

    with engine(database, stores):
        return images.load_catalog(images.activate(schema_name), entries)


@task(**task_options("contact-sheet"))
def contact_sheet_task(
    schema_name: str,
    path: str,
    *,
    restriction: Any = None,
    database: DataJointDatabase | None = None,
    stores: Stores = None,
) -> dict[str, Any]:
    """Draw the image pipeline's slides into one PNG at `path`; returns its path and contents."""
    from ..pipelines import images

    with engine(database, stores):
        return images.contact_sheet(images.activate(schema_name), path, restriction=restriction)


# -- populate -----------------------------------------------------------------------------------
@task(**task_options("populate", task_run_name="populate-{table}"))
def populate_task(
    pipeline: str,
    schema_name: str,
    table: str,
    *,
    restriction: Any = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    reserve_jobs: bool = False,
    key_retries: int = DEFAULT_KEY_RETRIES,
    max_calls: int | None = None,
    database: DataJointDatabase | None = None,
    stores: Stores = None,
) -> dict[str, Any]:
    """populate() one table of `pipeline` in `schema_name`, chunk by chunk, with progress and table
    artifacts; returns the JSON report (made/existing/errors/remaining counts and keys)."""
    with engine(database, stores):
        cls = pipelines.table(pipeline, schema_name, table)
        progress = _Progress(schema_name, cls.__name__)
        report = populate_in_chunks(
            cls,
            _restrictions(restriction),
            chunk_size=chunk_size,
            reserve_jobs=reserve_jobs,
            key_retries=key_retries,
            max_calls=max_calls,
            on_progress=progress.update,
        )
    result = report.to_dict()
    progress.finish(report.summary())
    _publish_table(result)
    return result


class _Progress:
    """A Prefect progress artifact for one populate task (a no-op outside a Prefect run)."""

    def __init__(self, schema_name: str, name: str) -> None:
        self.key = artifact_key("populate", schema_name, name)
        self.name = name
        self.id = None
        if in_prefect_run():
            from prefect.artifacts import create_progress_artifact

            self.id = create_progress_artifact(
                0.0, key=self.key, description=f"populate {schema_name}.{name}"
            )

    def update(self, done: int, todo: int) -> None:
        if self.id is not None:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(self.id, 100.0 * done / todo if todo else 100.0)

    def finish(self, summary: str) -> None:
        if self.id is not None:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(self.id, 100.0, description=summary)


def _publish_table(result: dict[str, Any]) -> None:
    """A table artifact with one row per key: made, or failed with its message."""
    if not in_prefect_run():
        return
    from prefect.artifacts import create_table_artifact

    rows = [{"key": k, "status": "made", "message": ""} for k in result["made_keys"]]
    rows += [
        {"key": e["key"], "status": "error", "message": f"{e['error']} (tries: {e['tries']})"}
        for e in result["errors"]
    ]
    shown = rows[:ARTIFACT_ROWS]
    description = (
        f"populate {result['schema']}.{result['class_name']}: {result['made']} made, "
        f"{len(result['errors'])} failed, {result['existing']} already made, "
        f"{result['remaining']} remaining"
    )
    if len(rows) > len(shown):
        description += f" (first {len(shown)} of {len(rows)} keys shown)"
    if not shown:
        shown = [{"key": "", "status": "nothing to do", "message": description}]
    create_table_artifact(
        [{**row, "key": str(row["key"])} for row in shown],
        key=artifact_key("populate-result", result["schema"], result["class_name"]),
        description=description,
    )


# -- status, export, GC -------------------------------------------------------------------------
@task(**task_options("table-status"))
def status_task(
    schema_name: str,
    *,
    database: DataJointDatabase | None = None,
    stores: Stores = None,
) -> list[dict[str, Any]]:
    """Per auto-populated table of `schema_name`: total, remaining, reserved, error and ignore counts."""
    from ..pipelines.status import schema_status

    with engine(database, stores):
        return schema_status(schema_name)


@task(**task_options("export-parquet", task_run_name="export-{schema_name}"))
def export_task(
    schema_name: str,
    tables: list[str],
    url: str,
    *,
    restriction: Any = None,
    attributes: list[str] | None = None,
    options: Mapping[str, Any] | None = None,
    database: DataJointDatabase | None = None,
    stores: Stores = None,
) -> dict[str, Any]:
    """Export the join of `tables` (restricted, projected to `attributes`) to a Parquet file at
    `url` (a path or any fsspec URL) with the engine's `export.to_parquet`; returns its report."""
    from .. import export
    from ..pipelines.status import query_of

    with engine(database, stores) as connection:
        query = query_of(connection, schema_name, tables, _restrictions(restriction), attributes)
        result = export.to_parquet(query, url, **dict(options or {}))
    return _export_report(result, url, len(query))


def _export_report(result: Any, url: str, rows: int) -> dict[str, Any]:
    """The JSON part of the engine's ExportResult (the Arrow schema stays behind)."""
    report: dict[str, Any] = {"url": url, "rows": rows}
    for name in ("url", "rows", "files", "bytes", "seconds"):
        if hasattr(result, name):
            report[name] = jsonable(getattr(result, name))
    return report


@task(**task_options("external-gc", task_run_name="gc-{schema_name}-{store}"))
def gc_task(
    schema_name: str,
    store: str,
    *,
    grace_seconds: int | None = None,
    dry_run: bool = True,
    delete_orphans: bool = False,
    delete_files: bool = True,
    limit: int | None = None,
    database: DataJointDatabase | None = None,
    stores: Stores = None,
) -> dict[str, Any]:
    """Collect unused objects of one external store of `schema_name` with the engine's `run_gc`
    (a dry-run report by default); publishes the printable report as a markdown artifact."""
    from ..stores.gc import run_gc

    with engine(database, stores) as connection:
        result = run_gc(
            schema_name, store, grace_seconds, dry_run, delete_orphans,
            delete_files=delete_files, limit=limit, connection=connection,
        )
    if in_prefect_run():
        from prefect.artifacts import create_markdown_artifact

        verb = "dry run" if dry_run else "collection"
        create_markdown_artifact(
            f"```\n{result['text']}\n```",
            key=artifact_key("gc", schema_name, store),
            description=f"external GC {verb} of store {store!r} in {schema_name}",
        )
    return jsonable(result)
