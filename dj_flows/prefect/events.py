"""Prefect events that say a populate or an external GC finished, so automations can chain flows.

Events (emitted by the populate and external GC flows when their tasks are done):

    dj-flows.populate.completed / dj-flows.populate.failed   one per table
        resource  dj-flows.table.<schema>.<Class>, label dj-flows.changed "true" when rows were made
        payload   made, failed, existing, remaining, workers
    dj-flows.gc.completed / dj-flows.gc.failed               one per store
        resource  dj-flows.store.<schema>.<store>
        payload   the GC report's counts (count, bytes, swept, deleted_rows, ..., errors, dry_run)

Each event's related resources include the schema (`dj-flows.schema.<schema>`, role `schema`)
and, inside a run, the flow run, flow, deployment and tags (Prefect adds those). An automation
that runs an export after a populate, for example, matches
`{"prefect.resource.id": "dj-flows.table.<schema>.*", "dj-flows.changed": "true"}` and expects
`dj-flows.populate.completed` (deployments/prefect.yaml does so for the hourly export).
Payloads hold counts only, never keys or secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

logger = logging.getLogger("dj_flows.prefect.events")

POPULATE_COMPLETED = "dj-flows.populate.completed"
POPULATE_FAILED = "dj-flows.populate.failed"
GC_COMPLETED = "dj-flows.gc.completed"
GC_FAILED = "dj-flows.gc.failed"
GC_COUNTS = (
    "count", "bytes", "swept", "deleted_rows", "deleted_files", "deleted_bytes", "skipped",
    "vanished", "grace_seconds",
)


def _schema(schema_name: str) -> dict[str, str]:
    return {
        "prefect.resource.id": f"dj-flows.schema.{schema_name}",
        "prefect.resource.role": "schema",
        "prefect.resource.name": schema_name,
    }


def _emit(event: str, resource: dict[str, str], schema_name: str, payload: dict[str, Any]) -> None:
    from prefect.events import emit_event

    if emit_event(event, resource=resource, related=[_schema(schema_name)], payload=payload) is None:
        logger.debug("event %s for %s not emitted (events are off)", event, resource)


def emit_populate_events(schema_name: str, reports: Iterable[Mapping[str, Any]]) -> None:
    """One event per table report of the populate flow: completed, or failed when a task
    failed or a make() call failed."""
    for report in reports:
        name = report.get("class_name") or report["table"]
        errors = report.get("errors", [])
        failed = bool(errors) or "state" in report
        payload = {
            "schema": schema_name,
            "table": name,
            "made": report.get("made", 0),
            "failed": len(errors),
            "existing": report.get("existing", 0),
            "remaining": report.get("remaining"),
            "workers": report.get("workers", 1),
        }
        if "state" in report:
            payload["state"] = report["state"]
            payload["message"] = str(report.get("message", ""))[:500]
        resource = {
            "prefect.resource.id": f"dj-flows.table.{schema_name}.{name}",
            "prefect.resource.name": f"{schema_name}.{name}",
            "dj-flows.schema": schema_name,
            "dj-flows.table": name,
            "dj-flows.changed": "true" if payload["made"] else "false",
        }
        _emit(POPULATE_FAILED if failed else POPULATE_COMPLETED, resource, schema_name, payload)


def emit_gc_event(
    schema_name: str, store: str, report: Mapping[str, Any] | None, error: str | None = None
) -> None:
    """The event for one store's GC (the report of `run_gc`: counts of its unused-object part,
    and of its orphan part if any), or the failure's message; failed
    when the task failed or objects could not be removed."""
    resource = {
        "prefect.resource.id": f"dj-flows.store.{schema_name}.{store}",
        "prefect.resource.name": f"{schema_name}:{store}",
        "dj-flows.schema": schema_name,
        "dj-flows.store": store,
    }
    payload: dict[str, Any] = {"schema": schema_name, "store": store}
    if report is not None:
        unused = report.get("unused", report)
        payload.update({k: unused[k] for k in GC_COUNTS if k in unused})
        payload["errors"] = len(unused.get("errors", []))
        payload["dry_run"] = bool(report.get("dry_run", not unused.get("swept", False)))
        orphans = report.get("orphans")
        if orphans:
            payload["orphans"] = {k: v for k, v in orphans.items() if isinstance(v, int | float)}
    if error is not None:
        payload["message"] = error[:500]
    failed = error is not None or payload.get("errors", 0) > 0
    _emit(GC_FAILED if failed else GC_COMPLETED, resource, schema_name, payload)
