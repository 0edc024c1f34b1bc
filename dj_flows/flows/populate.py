"""Flow: populate every auto-populated table of a schema_name, parents before children.

Each table is one `populate_task`, submitted to the flow's task runner with `wait_for` on the
planned tables it depends on, so tables that do not depend on each other run at the same time
(threads by default; pass another runner with `populate_flow.with_options(task_runner=...)`).
make() failures are reported per key by the tasks; the flow fails at the end, after every table
that could run has run, unless `allow_errors`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner

from .. import pipelines
from ..errors import PopulateError
from ..prefect.blocks import DataJointDatabase, DataJointStore
from ..prefect.runtime import configured, engine
from ..prefect.tasks import populate_task

MAX_WORKERS = 4


@flow(name="populate", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS))
def populate_flow(
    pipeline: str,
    schema_name: str,
    tables: list[str] | None = None,
    restriction: Any = None,
    chunk_size: int = 25,
    reserve_jobs: bool = False,
    allow_errors: bool = False,
    database: DataJointDatabase | None = None,
    stores: list[DataJointStore] | None = None,
) -> list[dict[str, Any]]:
    """Populate the auto-populated tables of `pipeline` (a module path) in `schema_name` (all, or
    those named in `tables`); returns one report per table."""
    with configured(database, stores):
        with engine(database, stores):
            plan = pipelines.populate_plan(pipeline, schema_name, tables)
        return run_plan(
            plan, pipeline, schema_name, restriction=restriction, chunk_size=chunk_size,
            reserve_jobs=reserve_jobs, allow_errors=allow_errors, database=database, stores=stores,
        )


def run_plan(
    plan: list[dict[str, Any]],
    pipeline: str,
    schema_name: str,
    *,
    allow_errors: bool = False,
    **options: Any,
) -> list[dict[str, Any]]:
    """Submit one populate task per planned table, each waiting for its planned ancestors."""
    futures: dict[str, Any] = {}
    for step in plan:
        futures[step["table"]] = populate_task.submit(
            pipeline, schema_name, step["table"], wait_for=[futures[a] for a in step["after"]], **options
        )
    wait(list(futures.values()))
    reports, problems = [], []
    for name, future in futures.items():
        state = future.state
        if state.is_completed():
            report = future.result()
            reports.append(report)
            problems += [f"{name} {e['key']}: {e['error']}" for e in report["errors"]]
        else:
            reports.append({"table": name, "class_name": name, "state": state.name,
                            "message": state.message or ""})
            problems.append(f"{name}: {state.name}: {state.message or ''}")
    if problems and not allow_errors:
        raise PopulateError(
            f"populate of schema {schema_name!r} finished with {len(problems)} failures:\n  "
            + "\n  ".join(problems[:20])
        )
    return reports
