"""Flow: populate every auto-populated table of a schema, parents before children.

Each table is `workers` populate tasks (one by default), submitted to the flow's task runner with
`wait_for` on the tasks of the planned tables it depends on, so tables that do not depend on each
other run at the same time. The runner is threads by default; `with_task_runner()` gives the flow
another one, e.g. `dask_task_runner()` (prefect-dask, the `dask` extra) for a Dask cluster, where
the tasks of one table run in different worker processes or machines.

With `workers > 1` the tasks of a table share its keys through job reservation (`~jobs` with
renewed leases, forced on): each key is made once, whichever process or machine takes it, and a
key whose worker died is taken over when its lease lapses. Their reports are merged per table.

Observability: the flow run is named `populate-<schema>`, task runs carry the tags
`schema:<schema>` and `table:<Class>`, and on completion the flow emits one Prefect event per
table (`dj-flows.populate.completed` or `.failed`; see dj_flows.prefect.events), so automations
can chain flows. make() failures are reported per key by the tasks; the flow fails at the end,
after every table that could run has run, unless `allow_errors`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from prefect import Flow, flow, tags
from prefect.futures import wait
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from .. import pipelines
from ..errors import ConfigError, PopulateError
from ..prefect.blocks import DataJointDatabase, DataJointStore, resolve_blocks
from ..prefect.events import emit_populate_events
from ..prefect.runtime import configured, engine
from ..prefect.tasks import populate_task

MAX_WORKERS = 4
DASK_WORKERS = 2


@flow(
    name="populate",
    flow_run_name="populate-{schema_name}",
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS),
)
def populate_flow(
    pipeline: str,
    schema_name: str,
    tables: list[str] | None = None,
    restriction: Any = None,
    chunk_size: int = 25,
    reserve_jobs: bool = False,
    workers: int = 1,
    allow_errors: bool = False,
    database: DataJointDatabase | str | None = None,
    stores: list[DataJointStore | str] | None = None,
) -> list[dict[str, Any]]:
    """Populate the auto-populated tables of `pipeline` (a module path) in `schema_name` (all, or
    those named in `tables`) with `workers` tasks per table; returns one report per table.
    `database` and `stores` are blocks or the names of saved blocks."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    database, stores = resolve_blocks(database, stores)
    with configured(database, stores):
        with engine(database, stores):
            plan = pipelines.populate_plan(pipeline, schema_name, tables)
        return run_plan(
            plan, pipeline, schema_name, restriction=restriction, chunk_size=chunk_size,
            reserve_jobs=reserve_jobs or workers > 1, workers=workers, allow_errors=allow_errors,
            database=database, stores=stores,
        )


def run_plan(
    plan: list[dict[str, Any]],
    pipeline: str,
    schema_name: str,
    *,
    allow_errors: bool = False,
    workers: int = 1,
    **options: Any,
) -> list[dict[str, Any]]:
    """Submit `workers` populate tasks per planned table, each waiting for its planned
    ancestors' tasks; merge their reports per table and emit the completion events."""
    futures: dict[str, list[Any]] = {}
    for step in plan:
        after = [f for ancestor in step["after"] for f in futures[ancestor]]
        with tags(f"schema:{schema_name}", f"table:{step['table']}"):
            futures[step["table"]] = [
                populate_task.submit(pipeline, schema_name, step["table"], wait_for=after, **options)
                for _ in range(workers)
            ]
    wait([f for table_futures in futures.values() for f in table_futures])
    reports, problems = [], []
    for name, table_futures in futures.items():
        done = [f.result() for f in table_futures if f.state.is_completed()]
        failed = [f.state for f in table_futures if not f.state.is_completed()]
        report = merge_reports(done) if done else {"table": name, "class_name": name}
        if failed:
            report.update(state=failed[0].name, message=failed[0].message or "")
            problems += [f"{name}: {state.name}: {state.message or ''}" for state in failed]
        reports.append(report)
        problems += [f"{name} {e['key']}: {e['error']}" for e in report.get("errors", [])]
    emit_populate_events(schema_name, reports)
    if problems and not allow_errors:
        raise PopulateError(
            f"populate of schema {schema_name!r} finished with {len(problems)} failures:\n  "
            + "\n  ".join(problems[:20])
        )
    return reports


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One table's report from the reports of its worker tasks (each made its own keys)."""
    if len(reports) == 1:
        return reports[0]
    merged = dict(reports[0])
    merged.update(
        made=sum(r["made"] for r in reports),
        made_keys=[k for r in reports for k in r["made_keys"]],
        errors=[e for r in reports for e in r["errors"]],
        retried=sum(r["retried"] for r in reports),
        existing=min(r["existing"] for r in reports),  # before the first worker began
        todo=max(r["todo"] for r in reports),
        remaining=min(r["remaining"] for r in reports),  # after the last one finished
        seconds=max(r["seconds"] for r in reports),
        workers=len(reports),
    )
    return merged


# -- task runners -------------------------------------------------------------------------------
def with_task_runner(runner: TaskRunner) -> Flow:
    """The populate flow on another task runner (e.g. `dask_task_runner()`)."""
    return populate_flow.with_options(task_runner=runner)


def dask_task_runner(
    address: str | None = None, n_workers: int = DASK_WORKERS, **cluster_kwargs: Any
) -> TaskRunner:
    """A prefect-dask runner: the Dask scheduler at `address` (a cluster of any size, on any
    machines), or else a LocalCluster of `n_workers` single-threaded worker processes."""
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise ConfigError(
            "the Dask task runner needs prefect-dask: pip install 'dj-flows[dask]'"
        ) from None
    if address:
        return DaskTaskRunner(address=address)
    options = {"n_workers": n_workers, "threads_per_worker": 1, "processes": True}
    return DaskTaskRunner(cluster_kwargs={**options, **cluster_kwargs})


def task_runner_from_environment(environ: Mapping[str, str] | None = None) -> TaskRunner:
    """The runner a worker's environment asks for: `DJ_FLOWS_TASK_RUNNER` = threads (default) or
    dask; for dask, `DJ_FLOWS_DASK_ADDRESS` (scheduler) or `DJ_FLOWS_DASK_WORKERS` (local
    processes, default 2)."""
    environ = os.environ if environ is None else environ
    kind = environ.get("DJ_FLOWS_TASK_RUNNER", "threads").strip().lower()
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=MAX_WORKERS)
    if kind != "dask":
        raise ConfigError(f"DJ_FLOWS_TASK_RUNNER must be 'threads' or 'dask', got {kind!r}")
    address = environ.get("DJ_FLOWS_DASK_ADDRESS") or None
    try:
        n_workers = int(environ.get("DJ_FLOWS_DASK_WORKERS", DASK_WORKERS))
    except ValueError:
        raise ConfigError("DJ_FLOWS_DASK_WORKERS must be a whole number") from None
    return dask_task_runner(address, n_workers=n_workers)
