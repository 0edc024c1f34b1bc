"""populate(processes=N): N worker processes, each with its own database connection.

The parent fetches the keys and hands them out one at a time (a multiprocessing pool, chunk size
1), so each key goes to exactly one process; with `reserve_jobs=True` each process also reserves
its key in `~jobs` under a lease it renews, so several parents, hosts or DataJoint workers can share
the queue.

Start method. `fork` where the platform has it: children inherit the table classes already bound
to their schemas, and `Connection` drops an inherited link by itself (it remembers the pid that
opened it) and opens its own. With `dj.config['populate.start_method'] = 'spawn'` (or
'forkserver'), or where fork does not exist, children import the table's module by name after
applying the parent's config, so that module must bind its schema at import
(`schema = dj.Schema('name')` at module level), as any worker script does.

SQLite. The database must be a file (':memory:' cannot be shared: a clear error). A make()
transaction holds SQLite's single write lock, so processes overlap only outside transactions:
waiting on I/O, or the compute step of a three-part make. Keys are still made exactly once.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import multiprocessing
import pickle
import signal
from typing import Any

from .errors import DataJointError
from .progress import ProgressBar
from .settings import config

logger = logging.getLogger("dj_flows.parallel")
_worker: dict[str, Any] = {}


@dataclasses.dataclass(frozen=True)
class TableRef:
    """How a spawned child finds the table: its class by import path, and the parent's config."""

    module: str
    qualname: str
    settings: dict

    @classmethod
    def of(cls, table: Any) -> TableRef:
        kind = type(table)
        if kind.__module__ == "__main__" or "<locals>" in kind.__qualname__:
            raise DataJointError(
                f"populate(processes=...) with the spawn start method needs {kind.__qualname__} "
                "defined at the top level of an importable module (not __main__ or a function)"
            )
        return cls(kind.__module__, kind.__qualname__, dict(config))

    def load(self) -> Any:
        for key, value in self.settings.items():
            config[key] = value
        target: Any = importlib.import_module(self.module)
        for part in self.qualname.split("."):
            target = getattr(target, part)
        return target()


def start_method() -> str:
    method = config.get("populate.start_method")
    available = multiprocessing.get_all_start_methods()
    if method is None:
        return "fork" if "fork" in available else "spawn"
    if method not in available:
        raise DataJointError(f"config['populate.start_method'] = {method!r} is not one of {available}")
    return method


def populate_in_processes(table: Any, keys: list[dict], processes: int, run: Any, display_progress: bool) -> dict:
    """Make `keys` in `processes` child processes; DataJoint's result dict."""
    backend = table.connection.backend
    if backend.name == "sqlite" and str(backend.settings.get("database.sqlite_path") or "").startswith(":memory:"):
        raise DataJointError(
            "populate(processes>1) needs a database the processes can share; an in-memory SQLite "
            "database is private to one process: set database.sqlite_path to a file"
        )
    from .populate import sigterm_as_exit

    method = start_method()
    spec = table if method == "fork" else TableRef.of(table)
    options = dataclasses.replace(run, jobs=None, keeper=None)
    bar = ProgressBar(len(keys), type(table).__name__) if display_progress else None
    success, errors = 0, []
    pool = multiprocessing.get_context(method).Pool(processes, _init_worker, (spec, options))
    try:
        with sigterm_as_exit(run.reserve_jobs):
            for outcome in pool.imap(_work, keys, chunksize=1):
                if outcome is True:
                    success += 1
                elif isinstance(outcome, tuple):
                    errors.append(outcome)
                if bar is not None:
                    bar.update()
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
        if bar is not None:
            bar.close()
    return {"success_count": success, "error_list": errors}


def _init_worker(spec: Any, run: Any) -> None:
    """In the child: bind the table, open the job queue and the lease keeper."""
    table = spec.load() if isinstance(spec, TableRef) else spec
    if run.reserve_jobs:
        from .jobs import JobTable, LeaseKeeper

        run.jobs = JobTable(table.connection, table.database)
        run.keeper = LeaseKeeper(run.jobs, run.lease).__enter__()

        def handler(signum: int, frame: Any) -> None:
            raise SystemExit("SIGTERM received")

        signal.signal(signal.SIGTERM, handler)
    else:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _worker["table"], _worker["run"] = table, run


def _work(key: dict) -> bool | tuple:
    table, run = _worker["table"], _worker["run"]
    outcome = table._populate1(key, run)
    if isinstance(outcome, tuple) and not isinstance(outcome[1], str):
        try:
            pickle.dumps(outcome[1])
        except Exception:  # noqa: BLE001 - send what can cross the process boundary
            error = outcome[1]
            outcome = (outcome[0], DataJointError(f"{type(error).__name__}: {error}"))
    return outcome
