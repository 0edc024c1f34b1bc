"""populate(processes=N): N worker processes, each with its own database connection.

The parent fetches the keys and hands them out one at a time, each child over its own pipe, so each
key goes to exactly one process; with `reserve_jobs=True` each process also reserves its key in
`~jobs` under a lease it renews, so several parents, hosts or DataJoint workers can share the queue.

Why not multiprocessing.Pool: a pool child killed with SIGKILL takes its task with it and the
parent waits forever. Here the parent watches every child's sentinel: a child that dies reports its
key as failed ("worker process ... died"), a new child takes its place, and the other keys go on.
With `reserve_jobs=True` the dead child's reservation lapses with its lease and a later populate
takes the key over. A make() that raises without `suppress_errors` stops the hand-out; the children
finish the keys they hold, then the error is raised (nothing is cut off mid-transaction).

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

import collections
import dataclasses
import importlib
import logging
import multiprocessing
import multiprocessing.connection
import pickle
import signal
from typing import Any

from .errors import DataJointError, PopulateError
from .progress import ProgressBar
from .settings import config

logger = logging.getLogger("dj_flows.parallel")
STOP_GRACE_SECONDS = 30


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


@dataclasses.dataclass
class _Child:
    process: Any
    conn: Any
    key: dict | None = None  # the key it is making


class _Workers:
    """The parent's side: start children, hand out keys, collect outcomes, notice deaths."""

    def __init__(self, table: Any, keys: list[dict], processes: int, run: Any, bar: ProgressBar | None) -> None:
        self.method = start_method()
        self.context = multiprocessing.get_context(self.method)
        self.spec = table if self.method == "fork" else TableRef.of(table)
        self.options = dataclasses.replace(run, jobs=None, keeper=None)
        self.name = table.table_name
        self.pending = collections.deque(keys)
        self.processes = processes
        self.suppress_errors = run.suppress_errors
        self.bar = bar
        self.children: list[_Child] = []
        self.success = 0
        self.errors: list[tuple] = []
        self.raised: BaseException | None = None

    def start_child(self) -> None:
        parent_end, child_end = self.context.Pipe()
        process = self.context.Process(
            target=_child_main, args=(child_end, self.spec, self.options), name="dj-flows-populate"
        )
        process.start()
        child_end.close()
        child = _Child(process, parent_end)
        self.children.append(child)
        self.give(child)

    def give(self, child: _Child) -> None:
        """Send the child its next key, or None (stop) when there is none or an error stops us."""
        child.key = self.pending.popleft() if self.pending and self.raised is None else None
        try:
            child.conn.send(child.key)
        except (BrokenPipeError, ConnectionResetError, EOFError):
            pass  # it died: its sentinel tells

    def run(self) -> None:
        for _ in range(self.processes):
            self.start_child()
        while True:
            busy = [c for c in self.children if c.key is not None]
            if not busy:
                return
            waitables = [c.conn for c in busy] + [c.process.sentinel for c in busy]
            ready = set(multiprocessing.connection.wait(waitables))
            for child in busy:
                if child.conn in ready or child.conn.poll():
                    self.receive(child)
                elif child.process.sentinel in ready:
                    self.died(child)

    def receive(self, child: _Child) -> None:
        try:
            kind, value = child.conn.recv()
        except (EOFError, ConnectionResetError):
            self.died(child)
            return
        if kind == "raised":
            self.raised = self.raised or value
        elif value is True:
            self.success += 1
        elif isinstance(value, tuple):
            self.errors.append(value)
        if self.bar is not None:
            self.bar.update()
        self.give(child)

    def died(self, child: _Child) -> None:
        child.process.join(timeout=5)
        key, code = child.key, child.process.exitcode
        self.children.remove(child)
        child.conn.close()
        error = PopulateError(
            f"{self.name}: worker process {child.process.pid} died (exit code {code}) while making {key}"
        )
        logger.error("%s", error)
        if self.suppress_errors:
            self.errors.append((key, error if self.options.return_exception_objects else f"PopulateError: {error}"))
        else:
            self.raised = self.raised or error
        if self.bar is not None:
            self.bar.update()
        if self.pending and self.raised is None:
            self.start_child()

    def stop(self, force: bool) -> None:
        """Let the children exit (they were sent None); force: SIGTERM first (rolls back, records)."""
        for child in self.children:
            if force and child.process.is_alive():
                child.process.terminate()
        for child in self.children:
            child.process.join(timeout=STOP_GRACE_SECONDS)
            if child.process.is_alive():
                child.process.kill()
                child.process.join()
            child.conn.close()


def populate_in_processes(table: Any, keys: list[dict], processes: int, run: Any, display_progress: bool) -> dict:
    """Make `keys` in `processes` child processes; DataJoint's result dict."""
    backend = table.connection.backend
    if backend.name == "sqlite" and str(backend.settings.get("database.sqlite_path") or "").startswith(":memory:"):
        raise DataJointError(
            "populate(processes>1) needs a database the processes can share; an in-memory SQLite "
            "database is private to one process: set database.sqlite_path to a file"
        )
    from .termination import sigterm_as_exit

    bar = ProgressBar(len(keys), type(table).__name__) if display_progress else None
    workers = _Workers(table, keys, processes, run, bar)
    finished = False
    try:
        with sigterm_as_exit(run.reserve_jobs, immediate=True):  # the children handle it cleanly
            workers.run()
        finished = True
    finally:
        workers.stop(force=not finished)
        if bar is not None:
            bar.close()
    if workers.raised is not None:
        raise workers.raised
    return {"success_count": workers.success, "error_list": workers.errors}


def _child_main(conn: Any, spec: Any, run: Any) -> None:
    """A worker process: bind the table, then make the keys the parent sends until None."""
    from .termination import check, sigterm_as_exit

    table = spec.load() if isinstance(spec, TableRef) else spec
    keeper = None
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # without reservations the database rolls back
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    if run.reserve_jobs:
        from .jobs import JobTable, LeaseKeeper

        run.jobs = JobTable(table.connection, table.database)
        keeper = run.keeper = LeaseKeeper(run.jobs, run.lease).__enter__()
    try:
        with sigterm_as_exit(run.reserve_jobs):
            while True:
                key = conn.recv()
                if key is None:
                    return
                try:
                    conn.send(("done", _sendable(table._populate1(key, run))))
                except BaseException as error:  # noqa: BLE001 - the parent raises it
                    conn.send(("raised", _sendable_error(error)))
                    if not isinstance(error, Exception):
                        return
                check()
    except (EOFError, KeyboardInterrupt, SystemExit):
        return
    finally:
        if keeper is not None:
            keeper.__exit__(None, None, None)
        table.connection.close()


def _sendable(outcome: Any) -> Any:
    if isinstance(outcome, tuple) and not isinstance(outcome[1], str):
        return (outcome[0], _sendable_error(outcome[1]))
    return outcome


def _sendable_error(error: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - send what can cross the process boundary
        return DataJointError(f"{type(error).__name__}: {error}")
